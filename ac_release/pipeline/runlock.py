"""One writing command per version at a time.

Two runs on the same version would both read-modify-write `release.json` (one losing the other's records) and delete
each other's temporary files. Every writing task holds an exclusive `flock` on `dist/<version>.lock`, which names its
pid; a second run refuses at once. The kernel drops the lock when its holder dies, even by SIGKILL, so a killed run
never blocks the next one.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ac_release.core.errors import ReleaseError


def lock_path(dist: Path) -> Path:
    return dist.with_name(dist.name + ".lock")


@contextmanager
def held(dist: Path, version: str) -> Iterator[None]:
    """Hold the lock of `dist` (dist/<version>) for the block; refuse in one line when another run holds it.
    The lock file, and dist/ when this created it, are removed again when the block ends."""
    path = lock_path(dist)
    created_parent = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, version)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # before unlocking: a waiter then finds the file gone and makes a new one
        os.close(fd)
        if created_parent:
            try:
                path.parent.rmdir()  # only when empty: a refused first run leaves no dist/ behind
            except OSError:
                pass


def _acquire(path: Path, version: str) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # another version's run, ending, removed the empty dist/ we had just made
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").split()
            os.close(fd)
            pid, started = (holder + ["unknown", "unknown"])[:2]
            raise ReleaseError(
                f"{version} is being released by pid {pid} (started {started}); wait for it or stop it"
            ) from None
        try:
            same_file = _identity(os.fstat(fd)) == _identity(os.stat(path))
        except FileNotFoundError:
            same_file = False
        if same_file:
            return fd
        os.close(fd)  # the holder removed the file as we opened it: lock the one that is there now


def _identity(status: os.stat_result) -> tuple[int, int]:
    """A file is its device and inode: an inode number alone repeats on another file system (a dist/ mounted
    elsewhere, another overlay layer)."""
    return status.st_dev, status.st_ino
