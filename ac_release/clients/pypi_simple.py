"""PyPI's simple repository API as JSON (PEP 691): which files of a project the index now marks as yanked (PEP 592).

The locks name the exact file each pin installs on each platform (constraints.files.txt), so a yanked file is found
by its name, whatever other files of the version say.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from packaging.utils import canonicalize_name

from ac_release.clients.retry import retry
from ac_release.core.errors import ReleaseError

PYPI_SIMPLE = "https://pypi.org/simple"
ACCEPT = "application/vnd.pypi.simple.v1+json"
TIMEOUT_S = 60


def yanked_files(project: str, index_url: str = PYPI_SIMPLE) -> dict[str, str]:
    """{file name: the reason given (may be empty)} of the project's yanked files on the index."""
    url = f"{index_url.rstrip('/')}/{canonicalize_name(project)}/"

    def fetch() -> dict:
        request = urllib.request.Request(url, headers={"Accept": ACCEPT})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise ReleaseError(f"{url} answered 404: the index no longer has {project}") from None
            raise

    answer = retry(fetch, what=f"reading {url}")
    yanked = {}
    for entry in answer.get("files", []):
        mark = entry.get("yanked", False)
        if mark:
            yanked[entry["filename"]] = mark if isinstance(mark, str) else ""
    return yanked
