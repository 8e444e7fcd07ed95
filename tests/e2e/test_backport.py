"""`invoke backport` with a real upstream fix on the real 2.2.4 line: the hash-pinned sdist, the committed series,
then the wheel stage, which fails on the unfilled check and passes with the filled one, proving the fix is in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, write_config

pytestmark = pytest.mark.e2e

DATA = REPO / "tests" / "data" / "backport"
PATCH = DATA / "0001-Fix-Resources-__eq__-check-21442.patch"
FILLED_CHECK = DATA / "fix-resources-eq-check.check.py"
NAME = "0002-fix-resources-eq-check"


def _git(root: Path, *args: str) -> str:
    argv = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def committed_copy(destination: Path) -> Path:
    """The repository's tracked and new files, committed in a repository of their own."""
    for name in _git(REPO, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0"):
        if name and (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    _git(destination, "init", "-q")
    _git(destination, "add", "-A")
    _git(destination, "commit", "-qm", "release")
    return destination


def invoke(root: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AC_RELEASE_CONFIG": str(config), "COLUMNS": "200"}
    argv = [sys.executable, "-m", "invoke", "--search-root", str(root), *args]
    return subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=3600)


def test_backport_of_an_upstream_fix_then_the_wheel_stage_runs_its_check(tmp_path, docker_ready):
    root = committed_copy(tmp_path / "repo")
    config = write_config(tmp_path, root=root)
    before = (root / "changelog" / "2.2.4.md").read_text()

    result = invoke(root, config, "backport", "2.2.4", str(PATCH))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"wrote wheel/2.2.4/patches/{NAME}.patch: the series of 2 patches applies to apache-airflow-2.2.4.tar.gz"
    )
    assert result.stdout.splitlines()[-1] == "  invoke release 2.2.4-2"
    assert sorted(_git(root, "status", "--porcelain", "--untracked-files=all").splitlines()) == [
        " M changelog/2.2.4.md",
        f"?? wheel/2.2.4/patches/{NAME}.check.py",
        f"?? wheel/2.2.4/patches/{NAME}.patch",
    ]
    patches = root / "wheel" / "2.2.4" / "patches"
    assert (patches / f"{NAME}.patch").read_bytes() == PATCH.read_bytes()
    assert (root / "changelog" / "2.2.4.md").read_text() == before.replace(
        "## 2.2.4-1,",
        "## 2.2.4-2, TBD\n\n### Bug Fixes\n"
        f"- Backport of apache/airflow#21442: Fix Resources __eq__ check (`patches/{NAME}.patch`).\n\n## 2.2.4-1,",
    )
    again = invoke(root, config, "backport", "2.2.4", str(PATCH))  # uncommitted now: refused, nothing written
    assert again.returncode == 1 and again.stderr.startswith("error: the series of 2.2.4 has uncommitted changes")

    # The unfilled scaffold fails the wheel stage, in one line naming the check to fill in.
    unfilled = invoke(root, config, "wheel", "2.2.4-2")
    assert unfilled.returncode == 1
    assert [line for line in unfilled.stderr.splitlines() if line.startswith("error:")] == [
        f"error: patch check {NAME}.check.py failed in the wheel venv: TODO: this check is not written yet: fill in "
        f"wheel/2.2.4/patches/{NAME}.check.py to prove Fix Resources __eq__ check (apache/airflow#21442) is in the "
        "installed Airflow; the patch is not in the built wheel"
    ]
    assert not (tmp_path / "dist" / "2.2.4-2" / "release.json").exists()

    # Filled in, it passes, and the wheel stage records what it proved.
    shutil.copyfile(FILLED_CHECK, patches / f"{NAME}.check.py")
    filled = invoke(root, config, "wheel", "2.2.4-2")
    assert filled.returncode == 0, filled.stderr[-3000:]
    manifest = json.loads((tmp_path / "dist" / "2.2.4-2" / "release.json").read_text())
    checks = manifest["wheel"]["checks"]["patches"]
    assert sorted(checks) == ["0001-localfs-secrets-multiple-equals.check.py", f"{NAME}.check.py"]
    assert checks[f"{NAME}.check.py"].startswith("ok: Resources.__eq__ answers False for other types")
