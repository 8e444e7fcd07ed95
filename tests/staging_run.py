"""The staging target's services and its release.yml run under act: the `staging` fixture (tests/integration/
conftest.py) and the run started with the end-to-end tier's session (tests/e2e/conftest.py `staging_release`), which
test_staging.py reads. The run has a committed copy of the tree of its own; it shares no target, service, image name,
tag or record with the `local` releases beside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import Background, git

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


def dispatch_command(repo: Path, env: dict[str, str], cache: Path, *args: str, version: str = VERSION) -> dict:
    """release.yml dispatched on the repository's current branch with version and target, and the secrets the
    workflow expects; the event names the branch and the repository's default branch, as GitHub's does. `args` go
    to act (`-j plan`: that job alone)."""
    from tests.act import act_command

    event = cache.parent / "event.json"
    inputs = {"version": version, "target": "staging"}
    ref = f"refs/heads/{git(repo, 'rev-parse', '--abbrev-ref', 'HEAD').strip()}"
    event.write_text(json.dumps({"ref": ref, "inputs": inputs, "repository": {"default_branch": "main"}}))
    args = ("-e", str(event), *(f"--input={k}={v}" for k, v in inputs.items()), *args)
    return act_command(repo, repo / WORKFLOW, "workflow_dispatch", cache, *args, secrets=env)


def dispatch(
    repo: Path, env: dict[str, str], cache: Path, *args: str, version: str = VERSION, timeout: int = 3600
) -> subprocess.CompletedProcess:
    command = dispatch_command(repo, env, cache, *args, version=version)
    return subprocess.run(**command, capture_output=True, timeout=timeout)


def dispatch_in_background(repo: Path, env: dict[str, str], cache: Path) -> Background:
    return Background.start(dispatch_command(repo, env, cache), cache.parent / "release-workflow")
