"""The pinned upstream sdist: downloaded once into the cache, always checked against the line's sha256."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from ac_release.clients.retry import retry
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_bytes, sha256_bytes, sha256_file
from ac_release.model.line import Sdist


def fetch_sdist(sdist: Sdist, cache: Path) -> Path:
    path = cache / "sdists" / sdist.filename
    if not path.exists():
        data = retry(lambda: _download(sdist.url), what=f"download of {sdist.filename}")
        if sha256_bytes(data) != sdist.sha256:
            raise ReleaseError(
                f"{sdist.filename} from {sdist.url} has sha256 {sha256_bytes(data)}, the line pins "
                f"{sdist.sha256}: refusing to build from unpinned source"
            )
        atomic_write_bytes(path, data)
    actual = sha256_file(path)
    if actual != sdist.sha256:
        raise ReleaseError(f"cached {path} has sha256 {actual}, the line pins {sdist.sha256}: delete it and re-run")
    return path


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()
