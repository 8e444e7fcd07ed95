"""Each stage's refusals are decided in its `decide` alone: the dry run of `--stages <stage>` (pipeline `plan`) and the
run of that stage (`run_stage`) refuse the same steps for the same reasons, before the stage acts. A whole release's
plan does not refuse what an earlier stage of the same run makes good (images tested before they are pushed)."""

from __future__ import annotations

import pytest
from rich.console import Console

from ac_release.clients.index import IndexFile
from ac_release.core.errors import ReleaseError
from ac_release.model.names import line_build_names
from ac_release.pipeline import run as pipeline
from ac_release.pipeline.run import RELEASE, plan, run_stage, stage_names
from ac_release.stages import attest, preflight, wheel
from ac_release.world.context import ReleaseContext
from tests.unit.test_decisions import META, World


@pytest.fixture
def world(tmp_path, monkeypatch):
    world = World(tmp_path, monkeypatch)
    for module in (pipeline, preflight):  # where the services are started: a unit test starts none
        monkeypatch.setattr(module, "ensure_local_services", lambda ctx: None)
    for module in (preflight, attest):
        monkeypatch.setattr(module, "services_running", lambda ctx: True)
    return world


def refusals(steps, stage: str) -> list[tuple[str, str]]:
    return [(step.target, step.reason) for step in steps if step.stage == stage and step.action == "refuse"]


def run_refuses_as_planned(world: World, stage: str) -> list[tuple[str, str]]:
    """The dry run of `--stages <stage>` refuses; the run of the stage stops on its first refusal, naming how many
    more, with the dry run's target and reason (and never acts)."""
    planned = refusals(plan(world.ctx, stage_names(stage)), stage)
    assert planned, f"the dry run of --stages {stage} refuses nothing"
    with pytest.raises(ReleaseError) as refused:
        run_stage(world.ctx, stage)
    (target, reason), more = planned[0], len(planned) - 1
    more_line = f" (and {more} more: see `invoke release {world.ctx.version} --dry-run`)" if more else ""
    assert str(refused.value) == f"refused: {target}: {reason}{more_line}"
    return planned


def test_wheel_refuses_an_artifact_whose_bytes_changed(world):
    world.built()
    (world.ctx.dist / META).write_bytes(b"other bytes")
    ((target, reason),) = run_refuses_as_planned(world, "wheel")
    assert target == f"dist/2.2.4-1/{META}" and reason.startswith("sha256 ")


def test_sign_refuses_an_artifact_whose_bytes_are_not_the_wheel_stages(world):
    world.built().signed()
    (world.ctx.dist / META).write_bytes(b"swapped")
    planned = run_refuses_as_planned(world, "sign")
    assert len(planned) == 3 and all(reason.startswith(f"dist/2.2.4-1/{META} has sha256 ") for _, reason in planned)


def test_publish_refuses_other_bytes_on_the_index(world):
    world.built().signed().published()
    world.index[META] = IndexFile("f" * 64, "http://index/x")
    planned = run_refuses_as_planned(world, "publish")
    assert planned[0][0].endswith(f"/{META}") and "published files never change" in planned[0][1]


def test_publish_alone_refuses_release_files_of_unsigned_artifacts(world):
    """A fix: the dry run said `push ... once signed`, the run stopped at the gate."""
    world.built()
    ((target, reason),) = run_refuses_as_planned(world, "publish")
    assert target.endswith("/release-files:2.2.4-1")
    assert reason == "the artifacts are not all signed: run `invoke sign 2.2.4-1`"
    assert not refusals(plan(world.ctx, RELEASE), "publish")  # signed first in a whole release


def test_images_refuse_while_the_dockerfiles_drift(world):
    world.built()
    template = world.ctx.images_dir / "Dockerfile.j2"
    template.write_text(template.read_text() + "\n# x\n")
    assert run_refuses_as_planned(world, "images")[0][0] == "images/"


def test_the_test_stage_alone_refuses_a_flavour_without_images(world):
    """A fix: the dry run said `run`, the run stopped with `no bullseye images of 2.2.4-1 to test`."""
    world.built()
    assert run_refuses_as_planned(world, "test") == [
        (
            "smoke/bullseye/linux/amd64",
            "no bullseye/linux/amd64 images of 2.2.4-1 to test: run `invoke images 2.2.4-1`",
        )
    ]
    assert not refusals(plan(world.ctx, RELEASE), "test")  # built first in a whole release


def test_push_alone_refuses_untested_images_and_a_whole_release_tests_them_first(world):
    """A fix: `--stages push --dry-run` said push, the run refused the untested images."""
    world.built().imaged()
    planned = run_refuses_as_planned(world, "push")
    assert len(planned) == 2  # the platform's own tag of both variants
    assert {reason for _, reason in planned} == {
        "the bullseye linux/amd64 images of 2.2.4-1 have not passed their tests: run the release "
        "(`invoke release 2.2.4-1`), which tests before it pushes"
    }
    assert not refusals(plan(world.ctx, RELEASE), "push")  # the preflight's plan: the test stage runs before
    assert not refusals(plan(world.ctx, ["preflight", "test", "push"]), "push")
    world.tested()
    assert not refusals(plan(world.ctx, stage_names("push")), "push")


def test_push_alone_refuses_a_release_without_images(world):
    planned = run_refuses_as_planned(world, "push")
    assert {reason for _, reason in planned} == {"no linux/amd64 images of 2.2.4-1: run `invoke images 2.2.4-1`"}


def test_push_refuses_an_immutable_tag_holding_another_image_before_the_test_gate(world):
    world.built().imaged().pushed(ids=("sha256:" + "c" * 64, "sha256:" + "c" * 64))
    planned = run_refuses_as_planned(world, "push")
    assert all("immutable tags never move" in reason for _, reason in planned)


def test_attest_alone_refuses_images_that_are_not_pushed(world):
    """A fix: the dry run said `sign ... once pushed`, the run stopped with `not pushed yet`."""
    world.built().imaged().tested()
    planned = run_refuses_as_planned(world, "attest")
    assert {reason for _, reason in planned} == {"not pushed yet: run `invoke release 2.2.4-1`"}
    assert not refusals(plan(world.ctx, RELEASE), "attest")


def test_promote_alone_refuses_floating_tags_of_images_that_are_not_pushed(world):
    """A fix: the dry run said `move ... once it is pushed`, the run stopped with `is not pushed`."""
    world.built()
    planned = run_refuses_as_planned(world, "promote")
    assert len(planned) == 4
    assert planned[0][1] == (
        f"{world.repository}:2.2.4-1-bullseye is not pushed: the images of 2.2.4-1 are pushed (after their tests) "
        f"and indexed before a floating tag moves"
    )
    assert not refusals(plan(world.ctx, RELEASE), "promote")


def test_index_alone_refuses_immutable_tags_whose_platform_tags_are_not_pushed(world):
    """Its job (release.yml's `index`) runs after every platform's job pushed: a missing platform tag is refused, in
    the dry run and the run alike, naming the run that pushes it."""
    world.built().imaged().tested()
    planned = run_refuses_as_planned(world, "index")
    assert [target for target, _ in planned] == [
        f"{world.repository}:{tag}"
        for tag in ("2.2.4-1", "2.2.4-1-bullseye", "2.2.4-1-onbuild", "2.2.4-1-bullseye-onbuild")
    ]
    assert planned[0][1] == (
        f"{world.repository}:2.2.4-1-bullseye-amd64 is not pushed: push its linux/amd64 images first "
        f"(`invoke release 2.2.4-1 --platform linux/amd64 --stages images,test,push,attest`)"
    )
    assert not refusals(plan(world.ctx, RELEASE), "index")  # pushed first in a whole release


def test_tag_refuses_a_release_tag_at_another_commit(world):
    world.remote_tag = "2" * 40
    ((target, reason),) = run_refuses_as_planned(world, "tag")
    assert target.startswith("v2.2.4-1@") and "a tag never moves" in reason


def test_the_wheel_stage_reuses_a_line_build_whole_or_builds_it(tmp_path, monkeypatch):
    """A fix: with one of the line build's files already in dist/, the decision said `reuse` for the other while the
    run built both (it decided again). `act` follows the steps: reuse only when decide reuses every file."""
    ac = World(tmp_path, monkeypatch).built()
    runtime = ReleaseContext.create("runtime-4.2.0", ac.settings, console=Console(quiet=True))
    assert {
        step.action
        for step in wheel.decide(runtime)
        if step.target.rsplit("/", 1)[-1] in line_build_names(runtime.version)
    } == {"reuse"}
    sdist = next(name for name in line_build_names(runtime.version) if name.endswith(".tar.gz"))
    runtime.dist.mkdir(parents=True)
    (runtime.dist / sdist).write_bytes((ac.ctx.dist / sdist).read_bytes())  # present, not recorded
    assert {step.action for step in wheel.decide(runtime)} == {"build"}


def _support_ends(world: World, until: str) -> None:
    (world.settings.root / "wheel" / "support.toml").write_text(f'[lines."2.2.4"]\nuntil = {until}\n')


def test_a_release_of_a_line_past_its_support_is_refused_before_anything_runs(world):
    _support_ends(world, "2026-01-31")
    world.ctx.releasing = True
    ((target, reason),) = run_refuses_as_planned(world, "preflight")
    assert target == "support"
    assert reason == (
        "release line 2.2.4 is not supported since 2026-01-31 (support.toml): "
        "release it anyway with --force-unsupported"
    )
    assert not world.ctx.dist.exists()


def test_a_forced_release_or_a_supported_line_is_not_refused_for_support(world):
    _support_ends(world, "2026-01-31")
    world.ctx.releasing, world.ctx.force_unsupported = True, True
    assert refusals(plan(world.ctx, stage_names("preflight")), "preflight") == []
    _support_ends(world, "9999-12-31")
    world.ctx.force_unsupported = False
    assert refusals(plan(world.ctx, stage_names("preflight")), "preflight") == []


def test_a_build_that_is_not_a_release_is_not_refused_for_support(world):
    _support_ends(world, "2026-01-31")
    assert refusals(plan(world.ctx, stage_names("preflight")), "preflight") == []
