"""The GitHub release: named after the product of the version, and `gh` bounded in time."""

import os
import stat

import pytest

from ac_release.commands import github_release as github
from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.world.context import ReleaseContext
from tests.helpers import REPO


@pytest.mark.parametrize(
    ("version", "title"),
    [("2.2.4-1", "Astronomer Certified 2.2.4-1"), ("runtime-4.2.0", "Astro Runtime 4.2.0")],
)
def test_the_release_is_named_after_the_product_of_the_version(version, title):
    assert github.release_title(ReleaseContext.create(version, load_settings(REPO / "release.toml"))) == title


def test_a_gh_call_that_hangs_is_ended_in_one_line(tmp_path, monkeypatch):
    gh = tmp_path / "gh"
    gh.write_text("#!/bin/sh\nexec sleep 30\n")
    gh.chmod(gh.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(github, "GH_TIMEOUT_S", 1)
    with pytest.raises(ReleaseError) as error:
        github._gh("release", "view", "v2.2.4-1")
    assert str(error.value) == ("gh release view did not finish in 1 s: check GitHub's status and run the step again")
