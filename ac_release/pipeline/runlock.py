"""One writing command per version at a time.

Two runs on the same version would both read-modify-write `release.json` (one losing the other's records) and delete
each other's temporary files. Every writing task holds an exclusive `flock` on `dist/<version>.lock`, which names its
pid; a second run refuses at once. The kernel drops the lock when its holder dies, even by SIGKILL, so a killed run
never blocks the next one.

Two builds of a product's line (2.2.4-1 and 2.2.4-2, a release and that line's nightly) share the target's floating
tags: every run of the stages also holds `dist/.line-<product>-<airflow>.<target>.lock` (`line_held`), so a second
build of the line on the same target refuses, naming the build and pid holding it. Across machines the workflows'
`concurrency:` groups serialise them.

Taking the version's lock is also when what a killed run left is cleaned up: the temporary files of its interrupted
atomic writes in dist/<version>/, and the registry logins of killed processes.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ac_release.clients.tlsclients import remove_abandoned_logins
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import remove_interrupted_writes


def lock_path(dist: Path) -> Path:
    return dist.with_name(dist.name + ".lock")


@contextmanager
def held(dist: Path, version: str) -> Iterator[None]:
    """Hold the lock of `dist` (dist/<version>) for the block; refuse in one line when another run holds it.
    The lock file, and dist/ when this created it, are removed again when the block ends."""
    path = lock_path(dist)
    created_parent = not path.parent.exists()

    def refusal(pid: str, started: str, _version: str) -> str:
        return f"{version} is being released by pid {pid} (started {started}); wait for it or stop it"

    try:
        with _locked(path, version, refusal):
            remove_interrupted_writes(dist)  # no write of this version is under way: only a killed run's are left
            remove_abandoned_logins()
            yield
    finally:
        if created_parent:
            try:
                path.parent.rmdir()  # only when empty: a refused first run leaves no dist/ behind
            except OSError:
                pass


def line_lock_path(dist_dir: Path, product: str, airflow: str, target: str) -> Path:
    return dist_dir / f".line-{product}-{airflow}.{target}.lock"


@contextmanager
def line_held(dist_dir: Path, product: str, airflow: str, target: str, version: str) -> Iterator[None]:
    """Hold the lock of `product`'s builds on Airflow line `airflow` on `target` for the block (taken inside the
    version's lock, which made `dist_dir`); refuse in one line, naming the build and the pid holding it, when another
    run holds it. Another product's builds on the line (Runtime 4.2.0 on AC's 2.2.4) have floating tags of their own."""

    def refusal(pid: str, started: str, holder: str) -> str:
        return (
            f"{product} line {airflow} on {target} is being released by {holder} (pid {pid}, started {started}), "
            f"which shares {version}'s floating tags: wait for it or stop it"
        )

    with _locked(line_lock_path(dist_dir, product, airflow, target), version, refusal):
        yield


@contextmanager
def _locked(path: Path, version: str, refusal: Callable[[str, str, str], str]) -> Iterator[None]:
    """An exclusive, non-blocking flock on `path`, whose content names the holder (pid, start, version); the file is
    removed when the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, refusal)
    try:
        os.ftruncate(fd, 0)
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        os.write(fd, f"{os.getpid()} {started} {version}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # before unlocking: a waiter then finds the file gone and makes a new one
        os.close(fd)


def _acquire(path: Path, refusal: Callable[[str, str, str], str]) -> int:
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
            raise ReleaseError(refusal(*(holder + ["unknown"] * 3)[:3])) from None
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
