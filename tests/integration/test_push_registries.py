"""Stage `push` to a target with two registries (the staging target's: TLS, each with its own credentials): each
image is pushed from the engine to the first registry, then copied registry to registry to the second (no layer is
compressed twice), every tag read back, the same digests recorded on both."""

from __future__ import annotations

import re

import pytest

from ac_release.clients import registry
from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.model.records import PushRecord
from ac_release.pipeline.run import run_stage
from ac_release.services.manager import LocalServices
from tests.helpers import STAGING_ENV, write_config
from tests.integration import test_push_stage
from tests.integration.test_push_stage import released

pytestmark = pytest.mark.integration

make_image = test_push_stage.make_image  # the fixture: small distinct images on the pipeline's Debian base
VERSION = "2.2.4-1"
TAGS = {"2.2.4-1", "2.2.4-1-bullseye", "2.2.4-1-onbuild", "2.2.4-1-bullseye-onbuild"}


@pytest.fixture
def staging(tmp_path, monkeypatch, docker_ready):
    for name in STAGING_ENV.values():
        monkeypatch.setenv(name, f"made-up-{name.lower()}")
    settings = load_settings(write_config(tmp_path, staging=True))
    services = LocalServices(settings.target("staging").services)
    services.up(log=lambda _: None)
    yield settings, services
    services.down(log=lambda _: None)


def _pointing(repository) -> dict[str, registry.RemoteImage]:
    return {tag: registry.remote_image(repository, tag) for tag in registry.tags(repository)}


def test_the_second_registry_gets_the_first_ones_manifests_by_copy_and_both_are_recorded(staging, make_image):
    settings, _ = staging
    first, second = settings.target("staging").registries
    a, a_on = make_image("a"), make_image("a-onbuild")
    ctx = released(settings, VERSION, a, a_on, target="staging")
    record = run_stage(ctx, "push")

    on_first, on_second = _pointing(first), _pointing(second)
    assert set(on_first) == set(on_second) == TAGS
    assert on_second == on_first  # the same manifests: same digests, same image ids
    assert {tag: remote.config for tag, remote in on_first.items()} == {
        "2.2.4-1": a,
        "2.2.4-1-bullseye": a,
        "2.2.4-1-onbuild": a_on,
        "2.2.4-1-bullseye-onbuild": a_on,
    }
    assert [(t.repository, t.tag, t.image, t.digest, t.action) for t in record.tags] == [
        (repository, t.tag, t.image, on_first[t.tag].digest, "pushed")
        for repository in (first, second)
        for t in record.tags
        if t.repository == first
    ]
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", t.digest) for t in record.tags)
    # the second registry's tags were written registry-side: the engine never named an image after them
    local = ctx.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", capture=True).stdout.decode().split()
    assert not [name for name in local if name.startswith(f"{second}:")]

    again = run_stage(ctx, "push")
    assert [t.action for t in again.tags] == ["present"] * 8
    assert [t.digest for t in again.tags] == [t.digest for t in record.tags]


def test_a_copy_that_fails_fails_the_stage_in_one_line_and_the_release_resumes(staging, make_image, monkeypatch):
    settings, services = staging
    monkeypatch.setattr("ac_release.clients.retry.time.sleep", lambda seconds: None)
    first, second = settings.target("staging").registries
    a = make_image("a")
    ctx = released(settings, VERSION, a, a, target="staging")
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
    digest = registry.remote_image(first, "2.2.4-1").digest
    assert message.startswith(f"copying {first}@{digest} to {second}:2.2.4-1 failed after 4 attempts: "), message
    assert "\n" not in message
    assert ctx.record(PushRecord) is None  # nothing recorded for a stage that failed

    monkeypatch.setattr(registry, "push", pushed)
    # staging's services stand on their host: a release refuses while one is down, and never starts it itself
    with pytest.raises(ReleaseError) as error:
        run_stage(ctx, "push")
    assert str(error.value) == (
        f"the services of target staging do not answer ({second_service.name}): they stand on their host, started "
        "once there with `invoke services.up --target staging`"
    )
    services.up(log=lambda _: None)  # the host brings it back
    record = run_stage(ctx, "push")  # pushes what is missing
    assert {(t.repository, t.action) for t in record.tags} == {(first, "present"), (second, "pushed")}
    assert {registry.remote_image(second, tag).config for tag in TAGS} == {a}
