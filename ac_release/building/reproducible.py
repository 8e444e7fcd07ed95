"""Make build outputs independent of when and where they were built."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path


def clamp_tree_mtimes(tree: Path, epoch: int) -> None:
    """Give every file the line's timestamp: patched and generated files would otherwise carry today's date."""
    for root, dirs, files in os.walk(tree):
        for name in (*dirs, *files):
            os.utime(Path(root) / name, (epoch, epoch), follow_symlinks=False)
    os.utime(tree, (epoch, epoch))


def normalize_sdist(path: Path, epoch: int) -> bytes:
    """Rewrite an sdist with sorted members, clamped mtimes, root ownership and a fixed gzip header.

    setuptools writes the gzip header's time and the egg-info files' mtimes from the clock; nothing else in the
    archive depends on the build, so this is all it takes for byte-identical sdists.
    """
    with tarfile.open(path, "r:gz") as source:
        members = sorted(source.getmembers(), key=lambda m: m.name)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as target:
            for member in members:
                member.mtime = min(member.mtime, epoch)
                member.uid = member.gid = 0
                member.uname = member.gname = "root"
                member.pax_headers = {}
                data = source.extractfile(member) if member.isfile() else None
                target.addfile(member, data)
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=epoch, compresslevel=9) as compressed:
        compressed.write(buffer.getvalue())
    return out.getvalue()
