"""Stages `push`, `index` and `promote` against a real registry (Debian's docker-registry), with small images of
each platform standing in for Airflow's: each platform's image goes to its own immutable tag, the flavour's immutable
tags are indexes of them, immutable tags never move, floating tags follow the highest released build of their Airflow
version only."""

from __future__ import annotations

import re
import shutil
import uuid

import pytest

from ac_release.building.baseimage import ensure_debian_base
from ac_release.building.image_state import flavour_state
from ac_release.clients import registry
from ac_release.clients.docker import Docker
from ac_release.core.errors import ReleaseError
from ac_release.model.config import docker_command, load_settings
from ac_release.model.flavours import AMD64, ARM64, Platform
from ac_release.model.records import (
    Artifact,
    FlavourImages,
    FlavourTest,
    ImagesRecord,
    IndexRecord,
    Session,
    SessionsRecord,
    VariantImage,
    WheelRecord,
)
from ac_release.pipeline.run import run_stage
from ac_release.services.manager import LocalServices
from ac_release.stages import push
from ac_release.supply_chain.image_attestations import cosign_tag
from ac_release.world.context import flavours, platforms
from ac_release.world.released_images import previous_release
from tests.helpers import REPO, write_config
from tests.integration.conftest import PLATFORMS, make_context, own_target, remove_names, tiny_image

pytestmark = pytest.mark.integration


@pytest.fixture
def lines_root(tmp_path):
    """A repository root with two release lines (2.2.3 and 2.2.4, both the repository's) and their image flavours."""
    root = tmp_path / "root"
    for line in ("2.2.3", "2.2.4"):
        shutil.copytree(REPO / "wheel" / line, root / "wheel" / line)
    shutil.copytree(REPO / "images", root / "images")
    shutil.copytree(REPO / "products", root / "products")
    return root


@pytest.fixture
def settings(tmp_path, lines_root, docker_ready):
    config = write_config(tmp_path, root=lines_root, dev_index=True)  # dev builds: <repo>-dev
    # local references of its own: a release of the machine's `local` target keeps its names
    target = own_target(config)
    settings = load_settings(config)
    services = LocalServices(settings.services)
    services.up(log=lambda _: None)
    yield settings
    services.down(log=lambda _: None)
    pushed = f"127.0.0.1:{settings.services.registry_port}/"
    remove_names(Docker(docker_command("auto")), pushed, f"ac-release/{target}/")


@pytest.fixture(scope="module")
def make_image(docker_ready):
    """Small distinct images, one of each platform of the line: {platform: image id} (tiny_image: a real linux/arm64
    image, built without an emulator). The bases are made too: the fingerprint of a flavour's images names its
    platform's base, so that the images `released` records are the current ones."""
    docker = Docker(docker_command("auto"))
    for platform in (AMD64, ARM64):
        ensure_debian_base(docker, "bullseye", log=lambda _: None, platform=platform)
    repository = f"ac-release/push-test-{uuid.uuid4().hex[:12]}"  # this fixture's own: no other run tags it
    made = []

    def build(label: str) -> dict[str, str]:
        images = {}
        for platform in PLATFORMS:
            reference = f"{repository}:{label}-{Platform.parse(platform).architecture}"
            images[platform] = tiny_image(docker, reference, f"{label} {platform}", platform)
            made.append(reference)
        return images

    yield build
    if made:
        docker("image", "rm", *made, capture=True, check=False)


def released(settings, version: str, base: dict[str, str], onbuild: dict[str, str], tested: bool = True, target=None):
    """A context whose manifest says the wheel and images stages built `base`/`onbuild` ({platform: image id}) for
    each platform of the release (tagged under the release's references, with the fingerprint of their inputs, so the
    images are current) and, optionally, that they passed."""
    ctx = make_context(settings, version, target=target)
    v = ctx.version
    pins = {
        f"apache_airflow-{v.wheel_version}-py3-none-any.whl": "a" * 64,
        f"astronomer_certified-{v.meta_version}-py3-none-any.whl": "b" * 64,
    }
    ctx.manifest.put(WheelRecord("0" * 64, {n: Artifact(d, 1) for n, d in pins.items()}, {}, "none", 0))
    (flavour,) = flavours(ctx)
    built, sessions = ImagesRecord({}), SessionsRecord({})
    for platform in platforms(ctx):
        state = flavour_state(ctx, flavour, platform)
        ids = {"base": base[str(platform)], "onbuild": onbuild[str(platform)]}
        for variant, image in ids.items():
            ctx.docker("tag", image, state.refs[variant], capture=True)
        variants = {variant: VariantImage(image, state.refs[variant], 1, 0.0) for variant, image in ids.items()}
        built.put(flavour.name, platform, FlavourImages(state.fingerprint, state.base, variants))
        sessions.put(flavour.name, platform, FlavourTest(ids, None, Session("passed"), Session("no earlier release")))
    ctx.save(built)
    if tested:
        ctx.save(sessions)
    return ctx


def push_release(settings, version: str, base, onbuild, tested: bool = True) -> dict[str, str]:
    """Run the push, index and promote stages of such a release, in order; {tag: action} of what they recorded."""
    ctx = released(settings, version, base, onbuild, tested)
    pushed = run_stage(ctx, "push")
    indexed = run_stage(ctx, "index")
    promoted = run_stage(ctx, "promote")
    return {tag.tag: tag.action for tag in pushed.tags + indexed.tags + promoted.tags}


def held(repository: str, tag: str) -> dict[str, str]:
    """{platform: image id} of what `repository:tag` holds: every platform of an index, or one platform's image."""
    remote = registry.remote_platforms(repository, tag)
    return {platform: registry.remote_image(repository, digest).config for platform, digest in remote.platforms.items()}


def pointing(settings, dev_build: bool = False) -> dict[str, dict[str, str]]:
    """Every tag of the release repository (or the dev one) but cosign's, and what it holds (held)."""
    target = settings.target(None)
    (repository,) = target.for_dev_build().registries if dev_build else target.registries
    return {tag: held(repository, tag) for tag in sorted(registry.tags(repository)) if not tag.startswith("sha256-")}


def of(images: dict[str, str], platform: str) -> dict[str, str]:
    """One platform's image of `images`, as `held` reads a platform's own tag."""
    return {platform: images[platform]}


def platform_tags(version: str, base: dict[str, str], onbuild: dict[str, str]) -> dict[str, dict[str, str]]:
    """The platforms' own tags of a release of the bullseye flavour and what each holds."""
    tags = {}
    for platform in PLATFORMS:
        arch = Platform.parse(platform).architecture
        tags[f"{version}-bullseye-{arch}"] = of(base, platform)
        tags[f"{version}-bullseye-onbuild-{arch}"] = of(onbuild, platform)
    return tags


def test_each_platform_gets_its_own_tag_and_the_immutable_and_floating_tags_are_indexes_of_them(settings, make_image):
    a, a_on = make_image("a"), make_image("a-onbuild")
    ctx = released(settings, "2.2.4-1", a, a_on)
    (repository,) = settings.target(None).registries
    pushed = run_stage(ctx, "push")
    assert pointing(settings) == platform_tags("2.2.4-1", a, a_on)  # nothing under the flavour's tags yet
    indexed = run_stage(ctx, "index")
    promoted = run_stage(ctx, "promote")  # registry-side, to the digests of the indexes
    assert pointing(settings) == platform_tags("2.2.4-1", a, a_on) | {
        "2.2.4": a,
        "2.2.4-1": a,
        "2.2.4-1-bullseye": a,
        "2.2.4-bullseye": a,
        "2.2.4-1-onbuild": a_on,
        "2.2.4-1-bullseye-onbuild": a_on,
        "2.2.4-onbuild": a_on,
        "2.2.4-bullseye-onbuild": a_on,
    }
    assert {(t.tag, t.platform, t.image, t.action) for t in pushed.tags} == {
        (f"2.2.4-1-bullseye{variant}-{Platform.parse(platform).architecture}", platform, images[platform], "pushed")
        for variant, images in (("", a), ("-onbuild", a_on))
        for platform in PLATFORMS
    }
    assert not any(t.floating for t in pushed.tags + indexed.tags) and all(t.floating for t in promoted.tags)
    assert {t.tag: t.action for t in indexed.tags + promoted.tags} == {
        "2.2.4-1": "pushed",
        "2.2.4-1-bullseye": "pushed",
        "2.2.4-1-onbuild": "pushed",
        "2.2.4-1-bullseye-onbuild": "pushed",
        "2.2.4": "moved",
        "2.2.4-bullseye": "moved",
        "2.2.4-onbuild": "moved",
        "2.2.4-bullseye-onbuild": "moved",
    }
    own = {t.tag: t.digest for t in pushed.tags}  # each platform's manifest, listed by the index of its flavour tags
    for tag in pushed.tags + indexed.tags + promoted.tags:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", tag.digest)
        assert registry.remote_platforms(repository, tag.tag).digest == tag.digest
    for tag in indexed.tags + promoted.tags:
        variant = "-onbuild" if tag.tag.endswith("-onbuild") else ""
        assert tag.platforms == {
            platform: own[f"2.2.4-1-bullseye{variant}-{Platform.parse(platform).architecture}"]
            for platform in PLATFORMS
        }
        assert registry.remote_platforms(repository, tag.tag).platforms == tag.platforms
    # one index per image, signed once as the target's identity (cosign's signature beside it)
    indexes = {t.digest for t in indexed.tags}
    assert len(indexes) == 2
    assert indexed.signed == {f"{repository}@{digest}": "signed" for digest in indexes}
    assert {cosign_tag(digest, "sig") for digest in indexes} <= set(registry.tags(repository))


def test_a_rerun_pushes_indexes_signs_and_moves_nothing(settings, make_image):
    a, a_on = make_image("a"), make_image("a-onbuild")
    first = push_release(settings, "2.2.4-1", a, a_on)
    assert set(first.values()) == {"pushed", "moved"}
    again = push_release(settings, "2.2.4-1", a, a_on)
    assert again == dict.fromkeys(first, "present") and len(again) == 12  # 4 platform tags, 4 indexes, 4 floating
    assert set(make_context(settings).record(IndexRecord).signed.values()) == {"kept"}


def test_a_platform_tag_with_another_image_is_refused_naming_both(settings, make_image):
    a, b = make_image("a"), make_image("b")
    push_release(settings, "2.2.4-1", a, a)
    (repository,) = settings.target(None).registries
    digest = registry.remote_image(repository, "2.2.4-1-bullseye-amd64").digest
    with pytest.raises(ReleaseError) as error:
        push_release(settings, "2.2.4-1", b, b)
    assert str(error.value) == (
        f"refused: {repository}:2.2.4-1-bullseye-amd64: already holds {digest} (image {a['linux/amd64']}), this "
        f"release's image is {b['linux/amd64']}: immutable tags never move; release the next build number (and 3 "
        f"more: see `invoke release 2.2.4-1 --dry-run`)"
    )
    assert pointing(settings)["2.2.4-1"] == a


def test_an_index_tag_holding_other_platform_images_is_refused_naming_both(settings, make_image):
    a, b = make_image("a"), make_image("b")
    push_release(settings, "2.2.4-1", a, a)
    (repository,) = settings.target(None).registries
    before = registry.remote_platforms(repository, "2.2.4-1")
    # the arm64 tag is written again with another image (a platform's job that pushed over it): its index is another
    docker = Docker(docker_command("auto"))
    moved = registry.push(docker, b["linux/arm64"], repository, "2.2.4-1-bullseye-arm64")
    ctx = released(settings, "2.2.4-1", a, a)
    with pytest.raises(ReleaseError) as error:
        run_stage(ctx, "index")
    amd64 = before.platforms["linux/amd64"]
    assert str(error.value) == (
        f"refused: {repository}:2.2.4-1: already holds {before.digest} (linux/amd64 {amd64}, linux/arm64 "
        f"{before.platforms['linux/arm64']}), this release's platforms are linux/amd64 {amd64}, linux/arm64 {moved}: "
        f"immutable tags never move; release the next build number (and 1 more: see `invoke release 2.2.4-1 "
        f"--dry-run`)"
    )
    assert registry.remote_platforms(repository, "2.2.4-1") == before
    assert pointing(settings)["2.2.4"] == a


def test_floating_tags_follow_the_highest_build_and_never_go_back(settings, make_image):
    one, two, three = make_image("one"), make_image("two"), make_image("three")
    push_release(settings, "2.2.4-1", one, one)
    push_release(settings, "2.2.4-3", three, three)
    result = push_release(settings, "2.2.4-2", two, two)  # a late build of an older number
    tags = pointing(settings)
    assert (tags["2.2.4-1"], tags["2.2.4-2"], tags["2.2.4-3"]) == (one, two, three)
    assert [tags[t] for t in ("2.2.4", "2.2.4-bullseye", "2.2.4-onbuild", "2.2.4-bullseye-onbuild")] == [three] * 4
    assert {tag: result[tag] for tag in ("2.2.4", "2.2.4-bullseye", "2.2.4-2", "2.2.4-2-bullseye-arm64")} == {
        "2.2.4": "kept",
        "2.2.4-bullseye": "kept",
        "2.2.4-2": "pushed",
        "2.2.4-2-bullseye-arm64": "pushed",
    }


def test_another_line_and_dev_builds_never_move_a_lines_floating_tags(settings, make_image):
    new, old_line, dev = make_image("new"), make_image("old-line"), make_image("dev")
    push_release(settings, "2.2.4-1", new, new)
    push_release(settings, "2.2.3-7", old_line, old_line)
    push_release(settings, "2.2.4-2-dev", dev, dev)
    tags = pointing(settings)
    assert tags["2.2.4"] == tags["2.2.4-onbuild"] == new
    assert tags["2.2.3"] == tags["2.2.3-onbuild"] == old_line
    # a dev build goes to the dev repository only
    assert not [tag for tag, images in tags.items() if set(images.values()) & set(dev.values())]
    dev_tags = pointing(settings, dev_build=True)
    assert sorted(t for t, images in dev_tags.items() if images == dev) == [
        "2.2.4-2-dev",
        "2.2.4-2-dev-bullseye",
        "2.2.4-2-dev-bullseye-onbuild",
        "2.2.4-2-dev-onbuild",
    ]
    assert {t: images for t, images in dev_tags.items() if images != dev} == platform_tags("2.2.4-2-dev", dev, dev)


UNTESTED = (
    r"^refused: \S+:2.2.4-1-bullseye-{arch}: the bullseye linux/{arch} images of 2.2.4-1 have not passed their tests"
)


def test_untested_images_are_refused_before_any_push(settings, make_image):
    a = make_image("a")
    with pytest.raises(ReleaseError, match=UNTESTED.format(arch="amd64")):
        push_release(settings, "2.2.4-1", a, a, tested=False)
    assert pointing(settings) == {}


def test_one_platform_tested_on_another_build_refuses_every_platforms_push(settings, make_image):
    a, other = make_image("a"), make_image("other")
    ctx = released(settings, "2.2.4-1", a, a)
    record = ctx.record(SessionsRecord)
    record.of("bullseye", ARM64).images["base"] = other["linux/arm64"]  # arm64's tests ran on another build
    ctx.save(record)
    with pytest.raises(ReleaseError, match=UNTESTED.format(arch="arm64")):
        run_stage(ctx, "push")
    assert pointing(settings) == {}  # linux/amd64's passed, and waits too
    shutil.rmtree(settings.dist_dir, ignore_errors=True)


def test_a_registry_down_mid_release_gives_one_clear_line_and_the_push_resumes(settings, make_image, monkeypatch):
    monkeypatch.setattr("ac_release.clients.retry.backoff_sleep", lambda seconds: None)
    a = make_image("a")
    services = LocalServices(settings.services)
    (repository,) = settings.target(None).registries
    registry_service = next(s for s in services.services() if s.name == "registry")
    ctx = released(settings, "2.2.4-1", a, a)
    services._stop(registry_service)  # the registry fails after the release started
    with pytest.raises(ReleaseError) as error:  # (the stage itself would restart a local registry first)
        registry.remote_image(repository, "2.2.4-1-bullseye-amd64")
    assert str(error.value).startswith(f"reading {repository}:2.2.4-1-bullseye-amd64 failed after 4 attempts: ")
    assert "\n" not in str(error.value)
    assert {step.action for step in push.decide(ctx)} == {"unknown"}  # a dry run says so; a run never acts on it
    run_stage(ctx, "push")  # the same release resumes, the registry started again
    assert pointing(settings) == platform_tags("2.2.4-1", a, a)


def test_the_upgrade_starts_from_the_newest_earlier_release_on_the_registry_as_each_platforms_image(
    settings, make_image
):
    one, three, old_line, dev = make_image("one"), make_image("three"), make_image("old-line"), make_image("dev")
    (repository,) = settings.target(None).registries
    assert previous_release(make_context(settings, "2.2.4-1")) is None  # a first release has nothing before it
    push_release(settings, "2.2.3-7", old_line, old_line)
    for platform in (AMD64, ARM64):  # the index's image of the platform the upgrade test runs on
        found = previous_release(make_context(settings, "2.2.4-1"), platform)
        own = registry.remote_image(repository, f"2.2.3-7-bullseye-{platform.architecture}").digest
        assert (str(found.version), found.reference) == ("2.2.3-7", f"{repository}@{own}")
        assert registry.remote_image(repository, own).config == old_line[str(platform)]
    push_release(settings, "2.2.4-1", one, one)
    push_release(settings, "2.2.4-3", three, three)
    push_release(settings, "2.2.4-2-dev", dev, dev)
    # newer builds, dev builds, onbuild, distro and platform tags are never a starting point
    assert str(previous_release(make_context(settings, "2.2.4-2")).version) == "2.2.4-1"
    assert str(previous_release(make_context(settings, "2.2.4-4")).version) == "2.2.4-3"
    assert str(previous_release(make_context(settings, "2.2.3-8")).version) == "2.2.3-7"
