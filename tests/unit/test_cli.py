"""The tasks as a release engineer calls them: bad input gives one line, exit 1, and writes nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, write_config

INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]


def _invoke(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    config = write_config(tmp_path, cache_dir=tmp_path / "cache")  # not made: the command may make nothing
    env = {**os.environ, "AC_RELEASE_CONFIG": str(config), "AC_RELEASE_CACHE": str(tmp_path / "cache")}
    return subprocess.run([*INVOKE, *args], capture_output=True, text=True, env=env, cwd=tmp_path)


@pytest.mark.parametrize("version", ["2.2.4", "2.2.4-0", "2.2.4-01", "v2.2.4-1", "2.2.4-1;id", "2.2.4-1 -dev", ""])
@pytest.mark.parametrize("task", ["wheel", "sign", "publish", "release"])
def test_bad_version_one_line_nonzero_nothing_written(tmp_path, task, version):
    result = _invoke(tmp_path, task, version)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: invalid AC version {version!r}: expected X.Y.Z-N (release, N >= 1 without leading zeros), "
        f"X.Y.Z-N-dev (dev) or X.Y.Z-N-devYYYYMMDDKK (nightly), e.g. 2.2.4-1; or runtime-X.Y.Z for Astro Runtime"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.toml"]


def test_unknown_line_names_the_known_ones(tmp_path):
    result = _invoke(tmp_path, "wheel", "9.9.9-1")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: no release line for Airflow 9.9.9 (9.9.9-1): known lines are 2.2.0, 2.2.1, 2.2.2, 2.2.3, 2.2.4, "
        "2.3.0; "
        "add wheel/9.9.9/line.toml to start a new line"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.toml"]


def test_unknown_target(tmp_path):
    result = _invoke(tmp_path, "wheel", "2.2.4-1", "--target", "staging")
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["error: unknown target 'staging': choose one of local"]


def _release_root(tmp_path: Path) -> Path:
    """A committed repository holding what a release reads before it starts anything."""
    root = tmp_path / "repo"
    parts = ("wheel/2.2.4/line.toml", "wheel/support.toml", "changelog/2.2.4.md", "images/matrix.toml")
    for part in (*parts, "products/certified.toml"):
        (root / part).parent.mkdir(parents=True, exist_ok=True)
        (root / part).write_bytes((REPO / part).read_bytes())
    subprocess.run(["git", "init", "--quiet", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "--quiet",
            "-m",
            "x",
        ],
        check=True,
    )
    return root


def _release(tmp_path: Path, root: Path, version: str) -> subprocess.CompletedProcess:
    config = write_config(tmp_path, root=root)
    env = {**os.environ, "AC_RELEASE_CONFIG": str(config), "AC_RELEASE_CACHE": str(tmp_path / "cache")}
    return subprocess.run([*INVOKE, "release", version], capture_output=True, text=True, env=env, cwd=tmp_path)


def test_release_from_a_dirty_tree_is_refused_before_anything_starts(tmp_path):
    root = _release_root(tmp_path)
    (root / "notes.txt").write_text("uncommitted")
    result = _release(tmp_path, root, "2.2.4-1")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: the git tree has uncommitted changes (?? notes.txt): a release is made from a commit; commit or "
        "stash them"
    ]
    assert not (tmp_path / "services").exists() and not (tmp_path / "dist").exists()


def test_release_without_a_changelog_entry_is_refused_before_anything_starts(tmp_path):
    result = _release(tmp_path, _release_root(tmp_path), "2.2.4-2")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: changelog/2.2.4.md has no entry for 2.2.4-2: add `## 2.2.4-2, YYYY-MM-DD` with its sections before "
        "releasing"
    ]
    assert not (tmp_path / "services").exists() and not (tmp_path / "dist").exists()


def test_git_remote_option_in_config_runs_nothing_in_a_dry_run(tmp_path):
    """Reproduced: `git_remote = "--upload-pack=touch FILE"` made the dry run's `git ls-remote` run a command."""
    config = write_config(tmp_path)
    planted = tmp_path / "planted"
    text = config.read_text()
    remote = f'"--upload-pack=touch {planted}"'
    config.write_text(text.replace(f'"{tmp_path / "services" / "git" / "ac-release.git"}"', remote))
    env = {**os.environ, "AC_RELEASE_CONFIG": str(config), "AC_RELEASE_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [*INVOKE, "release", "2.2.4-1", "--dry-run"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert not planted.exists()
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: {config}: targets.local.git_remote: must not start with '-' (it would be read as an option), "
        f"got '--upload-pack=touch {planted}'"
    ]


def test_empty_target_is_refused_not_the_default(tmp_path):
    result = _invoke(tmp_path, "release", "2.2.4-1", "--dry-run", "--target", "")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: empty target name: choose one of local (or leave --target out for local)"
    ]
    assert result.stdout == ""


def test_release_of_a_line_past_its_support_is_one_line_and_writes_nothing(tmp_path):
    root = _release_root(tmp_path)
    (root / "wheel" / "support.toml").write_text('[lines."2.2.4"]\nuntil = 2022-03-31\n')
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit",
                    "--quiet", "-am", "end of 2.2.4"], check=True)  # fmt: skip
    result = _release(tmp_path, root, "2.2.4-1")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "error: refused: support: release line 2.2.4 is not supported since 2022-03-31 (support.toml): release it "
        "anyway with --force-unsupported"
    ]
    assert not (tmp_path / "services").exists() and not (tmp_path / "dist").exists()
