"""tests/conftest.py: a run that skipped tests ends with one loud line saying how many and why; with CI=true a skip
fails the run. Checked on a pytest run of its own, with that conftest and three tests, two of them skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import REPO

WHY = "a running Docker engine is missing: run .ci/bootstrap"
SUITE = f"""
import pytest

def test_skipped_once():
    pytest.skip("{WHY}")

def test_skipped_twice():
    pytest.skip("{WHY}")

def test_run():
    pass
"""


@pytest.mark.parametrize(("ci", "returncode", "consequence"), [("true", 1, "CI=true: a skip fails the run"),
                                                                (None, 0, "they did not run")])  # fmt: skip
def test_skips_end_the_run_with_one_line_and_fail_it_in_ci(tmp_path, ci, returncode, consequence):
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_some.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": ci} if ci else {})
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == returncode, run.stdout
    assert [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")] == [
        f"SKIPPED 2 test(s): 2 because {WHY} ({consequence})"
    ]
