"""Stage `push` against a real registry (Debian's docker-registry), with small images standing in for Airflow's:
immutable tags never move, floating tags follow the highest released build of their Airflow version only."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from ac_release import registry
from ac_release.baseimage import ensure_debian_base
from ac_release.config import load_settings
from ac_release.errors import ReleaseError
from ac_release.released import previous_release
from ac_release.services.manager import LocalServices
from ac_release.stages import push
from tests.helpers import REPO, write_config
from tests.integration.conftest import make_context

pytestmark = pytest.mark.integration


@pytest.fixture
def lines_root(tmp_path):
    """A repository root with two release lines (2.2.3 and 2.2.4) and their image flavours."""
    root = tmp_path / "root"
    (root / "wheel" / "2.2.4").mkdir(parents=True)
    (root / "wheel" / "2.2.3").mkdir(parents=True)
    line = (REPO / "wheel" / "2.2.4" / "line.toml").read_text()
    (root / "wheel" / "2.2.4" / "line.toml").write_text(line)
    (root / "wheel" / "2.2.3" / "line.toml").write_text(line.replace('airflow = "2.2.4"', 'airflow = "2.2.3"'))
    (root / "images").mkdir()
    matrix = (REPO / "images" / "matrix.toml").read_text()
    block = matrix[matrix.index('[lines."2.2.4"]') :]
    (root / "images" / "matrix.toml").write_text(matrix + "\n" + block.replace('"2.2.4"', '"2.2.3"'))
    return root


@pytest.fixture
def settings(tmp_path, lines_root, docker_ready):
    settings = load_settings(write_config(tmp_path, root=lines_root))
    services = LocalServices(settings.services)
    services.up(log=lambda _: None)
    yield settings
    services.down(log=lambda _: None)


@pytest.fixture(scope="module")
def make_image():
    """Small distinct images (a label each) on the pipeline's Debian base."""
    from ac_release.config import docker_command
    from ac_release.docker import Docker

    docker = Docker(docker_command("auto"))
    base = ensure_debian_base(docker, "bullseye", log=lambda _: None)

    def build(label: str) -> str:
        dockerfile = f"FROM {base}\nLABEL ac-release.test={label}\n".encode()
        subprocess.run(
            [*docker.argv, "build", "--quiet", "--tag", f"ac-release/push-test:{label}", "-"],
            input=dockerfile,
            check=True,
            capture_output=True,
            env=docker.env,
        )
        return docker.image_id(f"ac-release/push-test:{label}")

    return build


def released(settings, version: str, base: str, onbuild: str, tested: bool = True):
    """A context whose manifest says the images stage built `base`/`onbuild` and (optionally) they passed."""
    ctx = make_context(settings, version)
    ctx.manifest.data["stages"]["images"] = {
        "bullseye": {"base": {"image": base, "ref": "unused"}, "onbuild": {"image": onbuild, "ref": "unused"}}
    }
    if tested:
        ctx.manifest.data["stages"]["test"] = {
            "bullseye": {"images": {"base": base, "onbuild": onbuild}, "result": "passed"}
        }
    return ctx


def pointing(settings) -> dict[str, str]:
    """Every tag of the registry and the image it points to."""
    (repository,) = settings.target(None).registries
    return {tag: registry.remote_image(repository, tag).config for tag in sorted(registry.tags(repository))}


def test_push_tags_then_a_rerun_pushes_nothing(settings, make_image):
    a, a_on = make_image("a"), make_image("a-onbuild")
    result = push.run(released(settings, "2.2.4-1", a, a_on))
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
    base = result[f"{repository} bullseye/base"]
    assert base["pushed"] == {"2.2.4-1": "pushed", "2.2.4-1-bullseye": "pushed"}
    assert base["floating"] == {"2.2.4": "moved", "2.2.4-bullseye": "moved"}
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", base["digest"])
    assert registry.remote_image(repository, "2.2.4-1").digest == base["digest"]
    again = push.run(released(settings, "2.2.4-1", a, a_on))
    assert {k: (v["pushed"], v["floating"]) for k, v in again.items()} == {
        f"{repository} bullseye/base": (
            {"2.2.4-1": "present", "2.2.4-1-bullseye": "present"},
            {"2.2.4": "present", "2.2.4-bullseye": "present"},
        ),
        f"{repository} bullseye/onbuild": (
            {"2.2.4-1-onbuild": "present", "2.2.4-1-bullseye-onbuild": "present"},
            {"2.2.4-onbuild": "present", "2.2.4-bullseye-onbuild": "present"},
        ),
    }


def test_an_immutable_tag_with_another_image_is_refused_naming_both(settings, make_image):
    a, b = make_image("a"), make_image("b")
    push.run(released(settings, "2.2.4-1", a, a))
    (repository,) = settings.target(None).registries
    digest = registry.remote_image(repository, "2.2.4-1").digest
    with pytest.raises(ReleaseError) as error:
        push.run(released(settings, "2.2.4-1", b, b))
    assert str(error.value) == (
        f"{repository}:2.2.4-1 already exists with digest {digest} (image {a}), this release's image is {b}: "
        f"immutable tags never move; release the next build number"
    )
    assert pointing(settings)["2.2.4-1"] == a


def test_floating_tags_follow_the_highest_build_and_never_go_back(settings, make_image):
    one, two, three = make_image("one"), make_image("two"), make_image("three")
    push.run(released(settings, "2.2.4-1", one, one))
    push.run(released(settings, "2.2.4-3", three, three))
    result = push.run(released(settings, "2.2.4-2", two, two))  # a late build of an older number
    tags = pointing(settings)
    assert (tags["2.2.4-1"], tags["2.2.4-2"], tags["2.2.4-3"]) == (one, two, three)
    assert {tags[t] for t in ("2.2.4", "2.2.4-bullseye", "2.2.4-onbuild", "2.2.4-bullseye-onbuild")} == {three}
    (repository,) = settings.target(None).registries
    assert result[f"{repository} bullseye/base"]["floating"] == {
        "2.2.4": "kept: 2.2.4-3 is newer",
        "2.2.4-bullseye": "kept: 2.2.4-3 is newer",
    }


def test_another_line_and_dev_builds_never_move_a_lines_floating_tags(settings, make_image):
    new, old_line, dev = make_image("new"), make_image("old-line"), make_image("dev")
    push.run(released(settings, "2.2.4-1", new, new))
    push.run(released(settings, "2.2.3-7", old_line, old_line))
    push.run(released(settings, "2.2.4-2-dev", dev, dev))
    tags = pointing(settings)
    assert tags["2.2.4"] == tags["2.2.4-onbuild"] == new
    assert tags["2.2.3"] == tags["2.2.3-onbuild"] == old_line
    assert tags["2.2.4-2-dev"] == tags["2.2.4-2-dev-bullseye"] == dev
    assert sorted(t for t, image in tags.items() if image == dev) == [
        "2.2.4-2-dev",
        "2.2.4-2-dev-bullseye",
        "2.2.4-2-dev-bullseye-onbuild",
        "2.2.4-2-dev-onbuild",
    ]


def test_untested_images_are_refused_before_any_push(settings, make_image):
    a = make_image("a")
    with pytest.raises(ReleaseError, match=r"^the bullseye images of 2.2.4-1 have not passed their smoke tests"):
        push.run(released(settings, "2.2.4-1", a, a, tested=False))
    other = make_image("other")
    ctx = released(settings, "2.2.4-1", a, a)
    ctx.manifest.data["stages"]["test"]["bullseye"]["images"]["base"] = other  # tested another build
    with pytest.raises(ReleaseError, match=r"^the bullseye images of 2.2.4-1 have not passed their smoke tests"):
        push.run(ctx)
    assert pointing(settings) == {}
    shutil.rmtree(settings.dist_dir, ignore_errors=True)


def test_a_registry_down_mid_release_gives_one_clear_line_and_the_push_resumes(settings, make_image, monkeypatch):
    monkeypatch.setattr("ac_release.retry.time.sleep", lambda seconds: None)
    a = make_image("a")
    services = LocalServices(settings.services)
    (repository,) = settings.target(None).registries
    registry_service = next(s for s in services.services() if s.name == "registry")
    services._stop(registry_service)  # the registry fails after the release started
    with pytest.raises(ReleaseError) as error:  # (push.run itself would restart a local registry first)
        push._push_image(released(settings, "2.2.4-1", a, a), repository, a, ["2.2.4-1"], [])
    assert str(error.value).startswith(f"reading {repository}:2.2.4-1 failed after 4 attempts: ")
    assert "\n" not in str(error.value)
    services.up(log=lambda _: None)  # back again: the same release resumes
    push.run(released(settings, "2.2.4-1", a, a))
    assert pointing(settings)["2.2.4-1"] == a


def test_the_upgrade_starts_from_the_newest_earlier_release_on_the_registry(settings, make_image):
    one, three, old_line, dev = make_image("one"), make_image("three"), make_image("old-line"), make_image("dev")
    (repository,) = settings.target(None).registries
    assert previous_release(make_context(settings, "2.2.4-1")) is None  # a first release has nothing before it
    push.run(released(settings, "2.2.3-7", old_line, old_line))
    found = previous_release(make_context(settings, "2.2.4-1"))
    assert (str(found.version), found.reference) == (
        "2.2.3-7",
        f"{repository}@{registry.remote_image(repository, '2.2.3-7').digest}",
    )
    push.run(released(settings, "2.2.4-1", one, one))
    push.run(released(settings, "2.2.4-3", three, three))
    push.run(released(settings, "2.2.4-2-dev", dev, dev))
    # newer builds, dev builds, onbuild and distro tags are never a starting point
    assert str(previous_release(make_context(settings, "2.2.4-2")).version) == "2.2.4-1"
    assert str(previous_release(make_context(settings, "2.2.4-4")).version) == "2.2.4-3"
    assert str(previous_release(make_context(settings, "2.2.3-8")).version) == "2.2.3-7"
