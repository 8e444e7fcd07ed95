"""A dev build (a nightly) is upgrade-tested from the newest release, pulled from the release repository with that
repository's login: a nightly on staging failed with `no basic auth credentials` when the login was looked up among
the dev build's own (dev) repositories."""

import contextlib

from ac_release.clients import registry
from ac_release.model.config import load_settings
from ac_release.model.version import ACVersion
from ac_release.stages import test
from ac_release.world.context import ReleaseContext
from ac_release.world.released_images import PreviousRelease
from tests.helpers import REPO


def test_a_nightly_pulls_the_release_it_upgrades_from_with_the_release_repositorys_login(monkeypatch):
    ctx = ReleaseContext.create("2.2.4-2-dev2026120701", load_settings(REPO / "release.toml"), "staging")
    release_repository = ctx.release_target.registries[0]
    assert release_repository not in ctx.target.registries  # the nightly's own target: the -dev repositories
    seen = []

    @contextlib.contextmanager
    def authenticated(docker, repository):
        seen.append(repository)
        yield lambda *args, **kwargs: None

    monkeypatch.setattr(registry, "authenticated", authenticated)
    monkeypatch.setattr(ReleaseContext, "docker", None)
    previous = PreviousRelease(ACVersion.parse("2.2.4-1"), str(release_repository), "sha256:" + "0" * 64)
    test.pull_previous(ctx, previous)
    (repository,) = seen
    assert repository == release_repository
    assert repository.access.username == "ac-release+staging" and repository.access.password is not None
