"""The workflow linters as `nox -s lint` runs them: zizmor with the auditor persona, actionlint with shellcheck.

Every binary comes from the Python environment running this code (the test extra installs them there), never from
whatever PATH happens to hold.
"""

from __future__ import annotations

from pathlib import Path

from ac_release.clients.tools import env_tool

WORKFLOWS = Path(".github/workflows")


def tool(name: str) -> Path:
    """`name` from this environment's scripts directory (`.venv/bin` under .ci/bootstrap)."""
    return env_tool(name, "install the test extra (`pip install -e '.[test]'`)")


def workflow_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])


def zizmor_command(directory: Path) -> list[str]:
    """Every finding, informational ones included: the auditor persona; a justified one is ignored inline."""
    return [str(tool("zizmor")), "--offline", "--persona=auditor", str(directory)]


def actionlint_command(directory: Path) -> list[str]:
    """actionlint over every workflow, with shellcheck on for each `run:` script."""
    return [str(tool("actionlint")), f"-shellcheck={tool('shellcheck')}", *map(str, workflow_files(directory))]
