"""One build of a machine-wide image at a time: the Debian bases and build environments are keyed by their inputs and
shared by every release on the machine (a release beside a nightly, or the gate's tests beside its reference release),
so two processes that miss the same tag wait for each other instead of building it twice and racing for it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ac_release.core.fsutil import exclusively, machine_wide_directory

# One for the machine, whatever a process's TMPDIR says (a nox session sets its own), like the services' port locks.
LOCKS = Path("/tmp/ac-release-builds")


def lock_file(tag: str) -> Path:
    return LOCKS / (re.sub(r"[^A-Za-z0-9_.-]", "_", tag) + ".lock")


def build_once(tag: str, present: Callable[[], bool], build: Callable[[], None], log=print) -> bool:
    """Build `tag` unless `present()`; True when this call built it. The check is made again under the lock, so a
    process that waited for another's build of the same tag uses it."""
    if present():
        return False
    machine_wide_directory(LOCKS)
    with exclusively(
        lock_file(tag), waiting=lambda: log(f"waiting for another process of this machine to build {tag}")
    ):
        if present():
            return False
        build()
        return True
