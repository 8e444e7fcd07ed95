"""The staging target's services and its release.yml run under act, shared by test_staging.py and, so that the two
long runs of the integration session overlap, started by test_release.py when both are selected (conftest.py's
`staging` and `staging_release` fixtures). The run has a committed copy of the tree of its own; it shares no target,
service, image name, tag or record with test_release.py's releases (those are `local`'s)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import git

VERSION = "2.2.4-1"
STAGING_DIR = 'dir = "~/.local/state/ac-release/staging"'
WORKFLOW = ".github/workflows/release.yml"


def invoke(repo: Path, config: Path | None, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`invoke` in `repo` with the staging secrets of `env` (and no other), the repository's release.toml unless
    `config` names another."""
    from tests.helpers import STAGING_ENV

    environment = {k: v for k, v in os.environ.items() if k not in STAGING_ENV.values() and k != "AC_RELEASE_FAULT"}
    environment.pop("AC_RELEASE_CONFIG", None)
    environment |= {"COLUMNS": "200"} | ({"AC_RELEASE_CONFIG": str(config)} if config else {}) | env
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(repo), *args],
        cwd=repo,
        env=environment,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=3600,
    )


def dispatch_command(repo: Path, env: dict[str, str], cache: Path) -> dict:
    """release.yml dispatched on the repository's current branch with version and target, and the secrets the
    workflow expects; the event names the branch and the repository's default branch, as GitHub's does."""
    from tests.integration.test_workflows import act_command

    event = cache.parent / "event.json"
    inputs = {"version": VERSION, "target": "staging"}
    ref = f"refs/heads/{git(repo, 'rev-parse', '--abbrev-ref', 'HEAD').strip()}"
    event.write_text(json.dumps({"ref": ref, "inputs": inputs, "repository": {"default_branch": "main"}}))
    args = ["-e", str(event), *(f"--input={k}={v}" for k, v in inputs.items())]
    return act_command(repo, repo / WORKFLOW, "workflow_dispatch", cache, *args, secrets=env)


def dispatch(repo: Path, env: dict[str, str], cache: Path, timeout: int = 3600) -> subprocess.CompletedProcess:
    return subprocess.run(**dispatch_command(repo, env, cache), capture_output=True, timeout=timeout)


@dataclass
class Background:
    """A dispatch running in the background, its output in files (a pipe nobody reads would block it)."""

    process: subprocess.Popen
    output: Path
    started: float  # wall clock: the run's end is its output files' last write

    @classmethod
    def start(cls, repo: Path, env: dict[str, str], cache: Path) -> Background:
        output = cache.parent / "release-workflow"
        started = time.time()
        with open(output.with_suffix(".out"), "w") as out, open(output.with_suffix(".err"), "w") as err:
            process = subprocess.Popen(
                **dispatch_command(repo, env, cache), stdout=out, stderr=err, start_new_session=True
            )
        return cls(process, output, started)

    def wait(self, timeout: float = 3600) -> tuple[subprocess.CompletedProcess, float]:
        """The finished run and its seconds, start to last output (the caller may come back long after its end)."""
        try:
            self.process.wait(timeout=max(1.0, self.started + timeout - time.time()))
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"release.yml under act did not finish in {timeout:.0f} s") from None
        files = [self.output.with_suffix(suffix) for suffix in (".out", ".err")]
        out, err = (path.read_text() for path in files)
        seconds = max(path.stat().st_mtime for path in files) - self.started
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, out, err), seconds

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # act and every job step it started
            self.process.wait()
