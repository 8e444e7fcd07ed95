"""`invoke matrix`: the workflows' job matrix, computed from images/matrix.toml and the changelog."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from ac_release.commands.ci_matrix import ci_matrix
from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.model.flavours import ARM64
from ac_release.model.nox_sessions import session_params
from tests.helpers import REPO, write_config

INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]

TWO_LINES = """
[distros.bullseye]
runtime = ["tini"]
build = ["gcc"]

[distros.bookworm]
runtime = ["tini"]
build = ["gcc"]

[lines."2.2.4"]
pip = "22.0.3"
flavours = [{ distro = "bullseye", python = "3.9" }, { distro = "bookworm", python = "3.11" }]

[lines."2.3.0"]
pip = "22.0.4"
platforms = ["linux/amd64", "linux/arm64"]
flavours = [{ distro = "bookworm", python = "3.11" }]

[lines."2.4.0"]
pip = "22.0.4"
flavours = [{ distro = "bookworm", python = "3.11" }]
"""


def _changelog(airflow: str, *builds: str) -> str:
    entries = "".join(
        f"## {build}, 2026-11-2{len(builds) - 1 - n}\n\n### Bug Fixes\n- a fix\n\n" for n, build in enumerate(builds)
    )  # newest first, as the changelogs list them
    return f"# Astronomer Certified {airflow}\n\n{entries}"


@pytest.fixture
def root(tmp_path) -> Path:
    """Lines 2.2.4 (two flavours, two builds, amd64 only) and 2.3.0 (amd64 and arm64) with a changelog; 2.4.0 has
    flavours but no changelog yet."""
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "matrix.toml").write_text(TWO_LINES)
    (tmp_path / "changelog").mkdir()
    (tmp_path / "changelog" / "2.2.4.md").write_text(_changelog("2.2.4", "2.2.4-2", "2.2.4-1"))
    (tmp_path / "changelog" / "2.3.0.md").write_text(_changelog("2.3.0", "2.3.0-1"))
    return tmp_path


def test_a_version_gets_every_flavour_of_its_line(root):
    assert ci_matrix(root, "2.2.4-1") == {
        "include": [
            {"version": "2.2.4-1", "flavour": "bullseye", "platform": "linux/amd64"},
            {"version": "2.2.4-1", "flavour": "bookworm", "platform": "linux/amd64"},
        ]
    }
    assert ci_matrix(root, "2.4.0-1-dev") == {
        "include": [{"version": "2.4.0-1-dev", "flavour": "bookworm", "platform": "linux/amd64"}]
    }


def test_a_version_gets_every_flavour_on_every_platform_of_its_line(root):
    assert ci_matrix(root, "2.3.0-1") == {
        "include": [
            {"version": "2.3.0-1", "flavour": "bookworm", "platform": "linux/amd64"},
            {"version": "2.3.0-1", "flavour": "bookworm", "platform": "linux/arm64"},
        ]
    }


def test_a_target_naming_fewer_platforms_gets_those_only(root, tmp_path):
    local = load_settings(write_config(tmp_path)).target("local")
    assert ci_matrix(root, "2.3.0-1", local) == ci_matrix(root, "2.3.0-1")  # a target naming none builds them all
    arm_only = replace(local, platforms=(ARM64,))
    assert ci_matrix(root, "2.3.0-1", arm_only) == {
        "include": [{"version": "2.3.0-1", "flavour": "bookworm", "platform": "linux/arm64"}]
    }
    with pytest.raises(
        ReleaseError, match="target local builds linux/arm64 but Airflow 2.2.4's images are linux/amd64"
    ):
        ci_matrix(root, "2.2.4-1", arm_only)  # no empty matrix: GitHub would refuse it far from the cause


def test_newest_is_the_newest_build_of_every_line_with_a_changelog(root):
    # one row per nox smoke session (version, flavour): it builds its platforms itself, on one amd64 runner
    assert ci_matrix(root, "newest") == {
        "include": [
            {"version": "2.2.4-2", "flavour": "bullseye"},
            {"version": "2.2.4-2", "flavour": "bookworm"},
            {"version": "2.3.0-1", "flavour": "bookworm"},
        ]
    }


@pytest.mark.parametrize("root_of", [lambda root: root, lambda _: REPO], ids=["scratch", "repository"])
def test_newest_is_what_a_plain_nox_run_smoke_tests(root, root_of):
    where = root_of(root)
    plain_nox = [{"version": v, "flavour": f} for v, f, newest in session_params(where) if newest]
    assert ci_matrix(where, "newest")["include"] == plain_nox


def test_this_repository():
    assert ci_matrix(REPO, "2.2.4-1") == {
        "include": [
            {"version": "2.2.4-1", "flavour": "bullseye", "platform": "linux/amd64"},
            {"version": "2.2.4-1", "flavour": "bullseye", "platform": "linux/arm64"},
        ]
    }


def test_an_empty_matrix_is_refused(root):
    for changelog in (root / "changelog").iterdir():
        changelog.unlink()
    with pytest.raises(ReleaseError, match="no release line has both flavours in images/matrix.toml and a changelog"):
        ci_matrix(root, "newest")


def test_a_line_without_flavours_is_refused(root):
    with pytest.raises(ReleaseError, match=r'no image flavours for Airflow 9.9.9: add \[lines."9.9.9"\]'):
        ci_matrix(root, "9.9.9-1")


def _invoke(tmp_path: Path, *args: str, github_output: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_OUTPUT"}
    env |= {"AC_RELEASE_CONFIG": str(write_config(tmp_path)), "AC_RELEASE_CACHE": str(tmp_path / "cache")}
    if github_output:
        env["GITHUB_OUTPUT"] = str(github_output)
    return subprocess.run([*INVOKE, "matrix", *args], capture_output=True, text=True, env=env, cwd=tmp_path)


def test_invoke_matrix_prints_one_json_line(tmp_path):
    result = _invoke(tmp_path, "2.2.4-1")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == ci_matrix(REPO, "2.2.4-1")  # the default target names no platforms
    assert result.stdout.count("\n") == 1


def test_invoke_matrix_takes_the_release_target(tmp_path):
    result = _invoke(tmp_path, "2.2.4-1", "--target", "local")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == ci_matrix(REPO, "2.2.4-1")
    result = _invoke(tmp_path, "2.2.4-1", "--target", "nowhere")
    assert result.returncode == 1
    assert result.stderr.startswith("error: unknown target 'nowhere': choose one of ")


def test_invoke_matrix_appends_the_step_output(tmp_path):
    output = tmp_path / "github_output"
    output.write_text("earlier=step\n")
    result = _invoke(tmp_path, "newest", "--github-output", github_output=output)
    assert result.returncode == 0, result.stderr
    earlier, line = output.read_text().splitlines()
    assert earlier == "earlier=step"
    name, value = line.split("=", 1)
    assert name == "matrix"
    assert json.loads(value) == json.loads(result.stdout) == ci_matrix(REPO, "newest")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["v2.2.4-1", "--github-output"],
            "error: invalid AC version 'v2.2.4-1': expected X.Y.Z-N (release, N >= 1 without leading zeros), "
            "X.Y.Z-N-dev (dev) or X.Y.Z-N-devYYYYMMDDKK (nightly), e.g. "
            "2.2.4-1; or runtime-X.Y.Z for Astro Runtime; or `newest` for the newest build of every line",
        ),
        (
            ["9.9.9-1", "--github-output"],
            'error: no image flavours for Airflow 9.9.9: add [lines."9.9.9"] to images/matrix.toml',
        ),
        ([], "error: 'matrix' did not receive required positional arguments: 'version'"),
        (
            ["newest", "--target", "local", "--github-output"],
            "error: `invoke matrix newest` takes no --target: ci.yml's smoke sessions build on the default target",
        ),
    ],
)
def test_bad_input_one_line_and_no_output_written(tmp_path, args, error):
    output = tmp_path / "github_output"
    output.write_text("")
    result = _invoke(tmp_path, *args, github_output=output)
    assert result.returncode == 1
    assert (result.stdout, result.stderr.splitlines()) == ("", [error])
    assert output.read_text() == ""


def test_github_output_outside_github_actions_is_refused(tmp_path):
    result = _invoke(tmp_path, "2.2.4-1", "--github-output")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: --github-output needs $GITHUB_OUTPUT (set by GitHub Actions in every step); unset here"
    ]
