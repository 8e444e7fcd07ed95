"""The command-line tools the pipeline runs that come with its Python environment (pip packages that ship a
binary, or .ci/install-cosign): taken from that environment's scripts directory, never found on PATH by luck."""

from __future__ import annotations

import sysconfig
from pathlib import Path

from ac_release.core.errors import ReleaseError


def env_tool(name: str, install: str) -> Path:
    """`name` beside the Python running the pipeline (`.venv/bin` under .ci/bootstrap); `install` says how to get it."""
    scripts = Path(sysconfig.get_path("scripts"))
    path = scripts / name
    if not path.is_file():
        raise ReleaseError(f"{name} is not installed in {scripts}: {install}")
    return path
