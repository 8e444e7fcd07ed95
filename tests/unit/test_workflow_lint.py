"""The workflow linters of `nox -s lint`: zizmor's auditor persona and actionlint with shellcheck really report."""

import subprocess
import sysconfig
from pathlib import Path

import pytest

from ac_release.commands.workflow_lint import actionlint_command, tool, zizmor_command
from ac_release.core.errors import ReleaseError
from tests.helpers import REPO

# Clean for both linters, except for what each test plants in it.
SCRATCH = """\
name: scratch
on:
  push:
permissions: {}
concurrency:
  group: scratch-${{ github.ref }}
  cancel-in-progress: true
jobs:
  one:
    name: one
    runs-on: ubuntu-24.04
    steps:
      - name: step
        run: %s
"""


def _scratch(tmp_path: Path, run: str, job_name: str = "one") -> Path:
    directory = tmp_path / ".github" / "workflows"
    directory.mkdir(parents=True)
    text = SCRATCH % run
    (directory / "scratch.yml").write_text(
        text.replace("    name: one\n", f"    name: {job_name}\n" if job_name else "")
    )
    return directory


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_the_repository_workflows_pass_both_linters():
    for argv in (zizmor_command(REPO / ".github/workflows"), actionlint_command(REPO / ".github/workflows")):
        result = _run(argv)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_scratch_workflow_is_clean(tmp_path):
    directory = _scratch(tmp_path, '.venv/bin/invoke matrix "$1"')
    assert _run(actionlint_command(directory)).returncode == 0
    assert _run(zizmor_command(directory)).returncode == 0


def test_shellcheck_reports_a_planted_problem_in_a_run_script(tmp_path):
    directory = _scratch(tmp_path, ".venv/bin/invoke matrix $1")  # unquoted: word splitting and globbing
    command = actionlint_command(directory)
    result = _run(command)
    assert result.returncode != 0
    assert "SC2086" in result.stdout, result.stdout
    # The lint session as it was (`-shellcheck=`, shellcheck off) let the same workflow pass.
    assert _run([command[0], "-shellcheck=", *command[2:]]).returncode == 0


def test_zizmor_reports_a_planted_template_injection(tmp_path):
    directory = _scratch(tmp_path, "echo ${{ github.event.head_commit.message }}")
    result = _run(zizmor_command(directory))
    assert result.returncode != 0
    assert "template-injection" in result.stdout


def test_zizmor_as_auditor_reports_informational_findings_too(tmp_path):
    """The auditor persona shows what `--min-severity medium` hid, e.g. a job without a name."""
    directory = _scratch(tmp_path, '.venv/bin/invoke matrix "$1"', job_name="")
    result = _run(zizmor_command(directory))
    assert result.returncode != 0
    assert "anonymous-definition" in result.stdout
    assert _run([*zizmor_command(directory)[:-1], "--min-severity", "medium", str(directory)]).returncode == 0


def test_the_linters_come_from_this_environment_not_from_path():
    scripts = Path(sysconfig.get_path("scripts"))
    command = actionlint_command(REPO / ".github/workflows")
    assert command[:2] == [str(scripts / "actionlint"), f"-shellcheck={scripts / 'shellcheck'}"]
    assert zizmor_command(REPO / ".github/workflows")[0] == str(scripts / "zizmor")


def test_a_missing_linter_names_the_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr("ac_release.clients.tools.sysconfig.get_path", lambda name: str(tmp_path))
    with pytest.raises(ReleaseError) as error:
        tool("shellcheck")
    assert (
        str(error.value)
        == f"shellcheck is not installed in {tmp_path}: install the test extra (`pip install -e '.[test]'`)"
    )
