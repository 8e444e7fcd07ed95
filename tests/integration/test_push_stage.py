"""Stage `push` against a real registry (Debian's docker-registry), with small images standing in for Airflow's:
immutable tags never move, floating tags follow the highest released build of their Airflow version only."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid

import pytest

from ac_release.building.baseimage import ensure_debian_base
from ac_release.building.image_state import flavour_state
from ac_release.clients import registry
from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.model.records import (
    Artifact,
    FlavourImages,
    FlavourTest,
    ImagesRecord,
    Session,
    SessionsRecord,
    VariantImage,
    WheelRecord,
)
from ac_release.pipeline.run import run_stage
from ac_release.services.manager import LocalServices
from ac_release.stages import push
from ac_release.world.context import flavours
from ac_release.world.released_images import previous_release
from tests.helpers import REPO, write_config
from tests.integration.conftest import make_context

pytestmark = pytest.mark.integration


@pytest.fixture
def lines_root(tmp_path):
    """A repository root with two release lines (2.2.3 and 2.2.4) and their image flavours."""
    root = tmp_path / "root"
    shutil.copytree(REPO / "wheel" / "2.2.4", root / "wheel" / "2.2.4")
    shutil.copytree(REPO / "wheel" / "2.2.4", root / "wheel" / "2.2.3")
    line = root / "wheel" / "2.2.3" / "line.toml"
    line.write_text(line.read_text().replace('airflow = "2.2.4"', 'airflow = "2.2.3"'))
    shutil.copytree(REPO / "images", root / "images")
    shutil.copytree(REPO / "products", root / "products")
    shutil.copytree(root / "images" / "2.2.4", root / "images" / "2.2.3")
    matrix = (REPO / "images" / "matrix.toml").read_text()
    start = matrix.index('[lines."2.2.4"]')
    end = matrix.find("\n[lines.", start + 1)  # the 2.2.4 block alone: other lines may follow it
    block = matrix[start : end if end >= 0 else len(matrix)]
    (root / "images" / "matrix.toml").write_text(matrix + "\n" + block.replace('"2.2.4"', '"2.2.3"'))
    return root


@pytest.fixture
def settings(tmp_path, lines_root, docker_ready):
    settings = load_settings(write_config(tmp_path, root=lines_root, dev_index=True))  # dev builds: <repo>-dev
    services = LocalServices(settings.services)
    services.up(log=lambda _: None)
    yield settings
    services.down(log=lambda _: None)


@pytest.fixture(scope="module")
def make_image():
    """Small distinct images (a label each) on the pipeline's Debian base."""
    from ac_release.clients.docker import Docker
    from ac_release.model.config import docker_command

    docker = Docker(docker_command("auto"))
    base = ensure_debian_base(docker, "bullseye", log=lambda _: None)
    repository = f"ac-release/push-test-{uuid.uuid4().hex[:12]}"  # this fixture's own: no other run tags it
    made = set()

    def build(label: str) -> str:
        dockerfile = f"FROM {base}\nLABEL ac-release.test={label}\n".encode()
        subprocess.run(
            [*docker.argv, "build", "--quiet", "--tag", f"{repository}:{label}", "-"],
            input=dockerfile,
            check=True,
            capture_output=True,
            env=docker.env,
        )
        made.add(f"{repository}:{label}")
        return docker.image_id(f"{repository}:{label}")

    yield build
    if made:
        docker("image", "rm", *sorted(made), capture=True, check=False)


def released(settings, version: str, base: str, onbuild: str, tested: bool = True, target: str | None = None):
    """A context whose manifest says the wheel and images stages built `base`/`onbuild` (tagged under the release's
    references, with the fingerprint of their inputs, so the images are current) and, optionally, that they passed."""
    ctx = make_context(settings, version, target=target)
    v = ctx.version
    pins = {
        f"apache_airflow-{v.wheel_version}-py3-none-any.whl": "a" * 64,
        f"astronomer_certified-{v.meta_version}-py3-none-any.whl": "b" * 64,
    }
    ctx.manifest.put(WheelRecord("0" * 64, {n: Artifact(d, 1) for n, d in pins.items()}, {}, "none", 0))
    (flavour,) = flavours(ctx)
    state = flavour_state(ctx, flavour)
    ids = {"base": base, "onbuild": onbuild}
    for variant, image in ids.items():
        ctx.docker("tag", image, state.refs[variant], capture=True)
    variants = {variant: VariantImage(image, state.refs[variant], 1, 0.0) for variant, image in ids.items()}
    ctx.save(ImagesRecord({flavour.name: FlavourImages(state.fingerprint, state.base, variants)}))
    if tested:
        ctx.save(
            SessionsRecord({flavour.name: FlavourTest(ids, None, Session("passed"), Session("no earlier release"))})
        )
    return ctx


def push_release(settings, version: str, base: str, onbuild: str, tested: bool = True) -> dict[str, str]:
    """Run the push and promote stages of such a release; {tag: action} of what they recorded."""
    ctx = released(settings, version, base, onbuild, tested)
    pushed = run_stage(ctx, "push")
    promoted = run_stage(ctx, "promote")
    return {tag.tag: tag.action for tag in pushed.tags + promoted.tags}


def pointing(settings, dev_build: bool = False) -> dict[str, str]:
    """Every tag of the release repository (or the dev one) and the image it points to."""
    target = settings.target(None)
    (repository,) = target.for_dev_build().registries if dev_build else target.registries
    return {tag: registry.remote_image(repository, tag).config for tag in sorted(registry.tags(repository))}


def test_push_tags_then_a_rerun_pushes_nothing(settings, make_image):
    a, a_on = make_image("a"), make_image("a-onbuild")
    ctx = released(settings, "2.2.4-1", a, a_on)
    pushed = run_stage(ctx, "push")
    assert set(pointing(settings)) == {"2.2.4-1", "2.2.4-1-bullseye", "2.2.4-1-onbuild", "2.2.4-1-bullseye-onbuild"}
    promoted = run_stage(ctx, "promote")  # registry-side, to the digests of the immutable tags
    assert not any(t.floating for t in pushed.tags) and all(t.floating for t in promoted.tags)
    assert pointing(settings) == {
        "2.2.4": a,
        "2.2.4-1": a,
        "2.2.4-1-bullseye": a,
        "2.2.4-bullseye": a,
        "2.2.4-1-onbuild": a_on,
        "2.2.4-1-bullseye-onbuild": a_on,
        "2.2.4-onbuild": a_on,
        "2.2.4-bullseye-onbuild": a_on,
    }
    (repository,) = settings.target(None).registries
    result = pushed.tags + promoted.tags
    actions = {(t.tag, t.image): t.action for t in result}
    assert actions == {
        ("2.2.4-1", a): "pushed",
        ("2.2.4-1-bullseye", a): "pushed",
        ("2.2.4", a): "moved",
        ("2.2.4-bullseye", a): "moved",
        ("2.2.4-1-onbuild", a_on): "pushed",
        ("2.2.4-1-bullseye-onbuild", a_on): "pushed",
        ("2.2.4-onbuild", a_on): "moved",
        ("2.2.4-bullseye-onbuild", a_on): "moved",
    }
    for tag in result:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", tag.digest)
        assert registry.remote_image(repository, tag.tag).digest == tag.digest
    again = push_release(settings, "2.2.4-1", a, a_on)
    assert set(again.values()) == {"present"} and len(again) == 8


def test_an_immutable_tag_with_another_image_is_refused_naming_both(settings, make_image):
    a, b = make_image("a"), make_image("b")
    push_release(settings, "2.2.4-1", a, a)
    (repository,) = settings.target(None).registries
    digest = registry.remote_image(repository, "2.2.4-1").digest
    with pytest.raises(ReleaseError) as error:
        push_release(settings, "2.2.4-1", b, b)
    assert str(error.value) == (
        f"refused: {repository}:2.2.4-1: already holds {digest} (image {a}), this release's image is {b}: "
        f"immutable tags never move; release the next build number (and 3 more: see `invoke release 2.2.4-1 "
        f"--dry-run`)"
    )
    assert pointing(settings)["2.2.4-1"] == a


def test_floating_tags_follow_the_highest_build_and_never_go_back(settings, make_image):
    one, two, three = make_image("one"), make_image("two"), make_image("three")
    push_release(settings, "2.2.4-1", one, one)
    push_release(settings, "2.2.4-3", three, three)
    result = push_release(settings, "2.2.4-2", two, two)  # a late build of an older number
    tags = pointing(settings)
    assert (tags["2.2.4-1"], tags["2.2.4-2"], tags["2.2.4-3"]) == (one, two, three)
    assert {tags[t] for t in ("2.2.4", "2.2.4-bullseye", "2.2.4-onbuild", "2.2.4-bullseye-onbuild")} == {three}
    assert {tag: result[tag] for tag in ("2.2.4", "2.2.4-bullseye", "2.2.4-2")} == {
        "2.2.4": "kept",
        "2.2.4-bullseye": "kept",
        "2.2.4-2": "pushed",
    }


def test_another_line_and_dev_builds_never_move_a_lines_floating_tags(settings, make_image):
    new, old_line, dev = make_image("new"), make_image("old-line"), make_image("dev")
    push_release(settings, "2.2.4-1", new, new)
    push_release(settings, "2.2.3-7", old_line, old_line)
    push_release(settings, "2.2.4-2-dev", dev, dev)
    tags = pointing(settings)
    assert tags["2.2.4"] == tags["2.2.4-onbuild"] == new
    assert tags["2.2.3"] == tags["2.2.3-onbuild"] == old_line
    assert dev not in tags.values()  # a dev build goes to the dev repository only
    dev_tags = pointing(settings, dev_build=True)
    assert sorted(t for t, image in dev_tags.items() if image == dev) == [
        "2.2.4-2-dev",
        "2.2.4-2-dev-bullseye",
        "2.2.4-2-dev-bullseye-onbuild",
        "2.2.4-2-dev-onbuild",
    ]


UNTESTED = r"^refused: \S+:2.2.4-1: the bullseye images of 2.2.4-1 have not passed their tests"


def test_untested_images_are_refused_before_any_push(settings, make_image):
    a = make_image("a")
    with pytest.raises(ReleaseError, match=UNTESTED):
        push_release(settings, "2.2.4-1", a, a, tested=False)
    other = make_image("other")
    ctx = released(settings, "2.2.4-1", a, a)
    record = ctx.record(SessionsRecord)
    record.flavours["bullseye"].images["base"] = other  # tested another build
    ctx.save(record)
    with pytest.raises(ReleaseError, match=UNTESTED):
        run_stage(ctx, "push")
    assert pointing(settings) == {}
    shutil.rmtree(settings.dist_dir, ignore_errors=True)


def test_a_registry_down_mid_release_gives_one_clear_line_and_the_push_resumes(settings, make_image, monkeypatch):
    monkeypatch.setattr("ac_release.clients.retry.time.sleep", lambda seconds: None)
    a = make_image("a")
    services = LocalServices(settings.services)
    (repository,) = settings.target(None).registries
    registry_service = next(s for s in services.services() if s.name == "registry")
    ctx = released(settings, "2.2.4-1", a, a)
    services._stop(registry_service)  # the registry fails after the release started
    with pytest.raises(ReleaseError) as error:  # (the stage itself would restart a local registry first)
        registry.remote_image(repository, "2.2.4-1")
    assert str(error.value).startswith(f"reading {repository}:2.2.4-1 failed after 4 attempts: ")
    assert "\n" not in str(error.value)
    assert {step.action for step in push.decide(ctx)} == {"unknown"}  # a dry run says so; a run never acts on it
    run_stage(ctx, "push")  # the same release resumes, the registry started again
    assert pointing(settings)["2.2.4-1"] == a


def test_the_upgrade_starts_from_the_newest_earlier_release_on_the_registry(settings, make_image):
    one, three, old_line, dev = make_image("one"), make_image("three"), make_image("old-line"), make_image("dev")
    (repository,) = settings.target(None).registries
    assert previous_release(make_context(settings, "2.2.4-1")) is None  # a first release has nothing before it
    push_release(settings, "2.2.3-7", old_line, old_line)
    found = previous_release(make_context(settings, "2.2.4-1"))
    assert (str(found.version), found.reference) == (
        "2.2.3-7",
        f"{repository}@{registry.remote_image(repository, '2.2.3-7').digest}",
    )
    push_release(settings, "2.2.4-1", one, one)
    push_release(settings, "2.2.4-3", three, three)
    push_release(settings, "2.2.4-2-dev", dev, dev)
    # newer builds, dev builds, onbuild and distro tags are never a starting point
    assert str(previous_release(make_context(settings, "2.2.4-2")).version) == "2.2.4-1"
    assert str(previous_release(make_context(settings, "2.2.4-4")).version) == "2.2.4-3"
    assert str(previous_release(make_context(settings, "2.2.3-8")).version) == "2.2.3-7"
