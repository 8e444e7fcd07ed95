"""End-to-end tier fixtures: the integration tier's (real Docker, real local services, the real clients), and the
release workflow's run to staging under act, started with the session beside every other scenario."""

from __future__ import annotations

import pytest

from tests.integration.conftest import *  # noqa: F403  (the integration fixtures and the figures summary)


@pytest.fixture(scope="session")
def staging_release(staging, tmp_path_factory):
    """release.yml dispatched to staging under act, started in the background: `.wait()` gives its result."""
    from tests.staging_run import dispatch_in_background

    repo, _, env = staging
    run = dispatch_in_background(repo, env, tmp_path_factory.mktemp("act") / "cache")
    yield run
    run.stop()


@pytest.fixture(scope="session", autouse=True)
def staging_workflow_beside(request):
    """When test_staging.py is selected, its release workflow's run to staging starts with the session, beside every
    other module (it mostly waits on its jobs' bootstraps and builds), once the shared base image and build
    environment exist (`built` makes them: two builds of one base image at once would race for its tag)."""
    if any(item.path.name == "test_staging.py" for item in request.session.items):
        request.getfixturevalue("built")
        request.getfixturevalue("staging_release")
