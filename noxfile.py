"""nox sessions: wiring only. They run in the environment .ci/bootstrap made (.venv), which pins every tool."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

# No per-session virtualenvs: every session uses the tools installed beside the interpreter running nox.
nox.options.default_venv_backend = "none"
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
nox.options.sessions = ["lint", "unit", "integration"]
nox.options.error_on_missing_interpreters = True


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the code; zizmor and actionlint on the GitHub Actions workflows."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("zizmor", "--offline", "--min-severity", "medium", ".github/workflows")
    session.run("actionlint", "-shellcheck=", *sorted(str(p) for p in Path(".github/workflows").glob("*.yml")))


@nox.session
def unit(session: nox.Session) -> None:
    """Fast tests: no Docker, no network, no services."""
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """The real build in Docker, real pypiserver, the real sigstore client against the local instance."""
    session.run("pytest", "tests/integration", "-m", "integration", *session.posargs)
