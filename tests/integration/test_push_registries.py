"""Stage `push` to a target with two registries (the staging target's: TLS, each with its own credentials): each
platform's image is pushed from the engine to its own tag on the first registry, then copied registry to registry to
the second (no layer is compressed twice), every tag read back, the same digests recorded on both."""

from __future__ import annotations

import re

import pytest

from ac_release.clients import registry
from ac_release.clients.docker import Docker
from ac_release.core.errors import ReleaseError
from ac_release.model.config import docker_command, load_settings
from ac_release.model.records import PushRecord
from ac_release.pipeline.run import run_stage
from ac_release.services.manager import LocalServices
from tests.helpers import STAGING_ENV, write_config
from tests.integration import test_push_stage
from tests.integration.conftest import PLATFORMS, own_target, remove_names
from tests.integration.test_push_stage import held, platform_tags, released

pytestmark = pytest.mark.integration

make_image = test_push_stage.make_image  # the fixture: small distinct images, one of each platform
VERSION = "2.2.4-1"
TAGS = {"2.2.4-1-bullseye-amd64", "2.2.4-1-bullseye-arm64", "2.2.4-1-bullseye-onbuild-amd64"}
TAGS |= {"2.2.4-1-bullseye-onbuild-arm64"}  # each platform's own: the index stage makes the flavour's tags


@pytest.fixture
def staging(tmp_path, monkeypatch, docker_ready):
    for name in STAGING_ENV.values():
        monkeypatch.setenv(name, f"made-up-{name.lower()}")
    config = write_config(tmp_path, staging=True)
    target = own_target(config, "staging")  # local references of its own: the machine's staging keeps its names
    settings = load_settings(config)
    services = LocalServices(settings.target(target).services)
    services.up(log=lambda _: None)
    yield settings, target, services
    services.down(log=lambda _: None)
    first, _ = settings.target(target).registries
    remove_names(Docker(docker_command("auto")), f"{first.host}/", f"ac-release/{target}/")


def _pointing(repository) -> dict[str, registry.RemotePlatforms]:
    return {tag: registry.remote_platforms(repository, tag) for tag in registry.tags(repository)}


def test_the_second_registry_gets_the_first_ones_manifests_by_copy_and_both_are_recorded(staging, make_image):
    settings, target, _ = staging
    first, second = settings.target(target).registries
    a, a_on = make_image("a"), make_image("a-onbuild")
    ctx = released(settings, VERSION, a, a_on, target=target)
    record = run_stage(ctx, "push")

    on_first, on_second = _pointing(first), _pointing(second)
    assert set(on_first) == set(on_second) == TAGS
    assert on_second == on_first  # the same manifests: same digests, same platforms
    assert {tag: held(second, tag) for tag in TAGS} == platform_tags(VERSION, a, a_on)
    assert [(t.repository, t.tag, t.platform, t.image, t.digest, t.action) for t in record.tags] == [
        (repository, t.tag, t.platform, t.image, on_first[t.tag].digest, "pushed")
        for repository in (first, second)
        for t in record.tags
        if t.repository == first
    ]
    assert {t.platform for t in record.tags} == set(PLATFORMS)
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", t.digest) for t in record.tags)
    # the second registry's tags were written registry-side: the engine never named an image after them
    local = ctx.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", capture=True).stdout.decode().split()
    assert not [name for name in local if name.startswith(f"{second}:")]

    again = run_stage(ctx, "push")
    assert [t.action for t in again.tags] == ["present"] * 8
    assert [t.digest for t in again.tags] == [t.digest for t in record.tags]


def test_a_copy_that_fails_fails_the_stage_in_one_line_and_the_release_resumes(staging, make_image, monkeypatch):
    settings, target, services = staging
    monkeypatch.setattr("ac_release.clients.retry.backoff_sleep", lambda seconds: None)
    first, second = settings.target(target).registries
    a = make_image("a")
    ctx = released(settings, VERSION, a, a, target=target)
    second_service = next(s for s in services.services() if f":{s.port}/" in f"{second}/")
    pushed = registry.push

    def push_then_lose_the_second_registry(*args, **kwargs):
        digest = pushed(*args, **kwargs)
        services._stop(second_service, log=lambda _: None)
        return digest

    monkeypatch.setattr(registry, "push", push_then_lose_the_second_registry)
    with pytest.raises(ReleaseError) as error:
        run_stage(ctx, "push")
    message = str(error.value)
    digest = registry.remote_image(first, "2.2.4-1-bullseye-amd64").digest  # the first copy: amd64's base
    assert message.startswith(
        f"copying {first}@{digest} to {second}:2.2.4-1-bullseye-amd64 failed after 4 attempts: "
    ), message
    assert "\n" not in message
    assert ctx.record(PushRecord) is None  # nothing recorded for a stage that failed

    monkeypatch.setattr(registry, "push", pushed)
    # staging's services stand on their host: a release refuses while one is down, and never starts it itself
    with pytest.raises(ReleaseError) as error:
        run_stage(ctx, "push")
    assert str(error.value) == (
        f"the services of target {target} do not answer ({second_service.name}): they stand on their host, started "
        f"once there with `invoke services.up --target {target}`"
    )
    services.up(log=lambda _: None)  # the host brings it back
    record = run_stage(ctx, "push")  # pushes what is missing
    assert {(t.repository, t.action) for t in record.tags} == {(first, "present"), (second, "pushed")}
    assert {tag: held(second, tag) for tag in TAGS} == platform_tags(VERSION, a, a)
