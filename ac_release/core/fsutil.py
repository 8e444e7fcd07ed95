"""Small file-system helpers: hashing and atomic writes (temp file in the same directory, then rename)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ac_release.core.errors import ReleaseError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode(), mode)


def remove_interrupted_writes(directory: Path) -> list[Path]:
    """Remove the temporary files atomic writes under `directory` left when interrupted (`.<name>.<random>.tmp`,
    never renamed into place); only safe while no atomic write there is under way (the caller holds its lock)."""
    removed = []
    for leftover in directory.rglob(".*.tmp") if directory.is_dir() else ():
        if leftover.is_file() and not leftover.is_symlink():
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def machine_wide_directory(path: Path) -> Path:
    """`path`, made when missing as a directory every user's runs on the machine share (sticky, like /tmp)."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        try:
            path.chmod(0o1777)
        except OSError:  # made by another user meanwhile: theirs to set
            pass
    return path


@contextmanager
def exclusively(path: Path, waiting=None) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (made when missing) for the block, waiting while another process holds it
    (`waiting()` is called once first, when it has to). The kernel drops it when its holder dies, even by SIGKILL;
    the file stays (removing it would let a waiter lock a file no newcomer opens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                waiting()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def atomic_copy(source: Path, destination: Path) -> None:
    """Copy `source` to `destination` so that `destination` is either absent, old, or complete."""
    atomic_write_bytes(destination, source.read_bytes())


def read_utf8(path: Path, shown: str | None = None) -> str:
    """A text file the pipeline reads as data (config, line, changelog, patch): one line naming the file and the
    line of the first byte that is not UTF-8."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ReleaseError(
            f"{shown or path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x}): save it as UTF-8"
        ) from None
