"""Small file-system helpers: hashing and atomic writes (temp file in the same directory, then rename)."""

from __future__ import annotations

import hashlib
import os
import tempfile
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
