"""Read what a pip index (PEP 503 HTML or PEP 691 JSON simple API) holds: file names and their sha256."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from packaging.utils import canonicalize_name

from ac_release.config import IndexSettings
from ac_release.errors import ReleaseError
from ac_release.retry import retry

_ANCHOR = re.compile(r'<a\s[^>]*href="([^"]+)"', re.IGNORECASE)


def _request(url: str, index: IndexSettings, password: str) -> urllib.request.Request:
    token = base64.b64encode(f"{index.username}:{password}".encode()).decode()
    return urllib.request.Request(
        url,
        headers={
            "Authorization": f"Basic {token}",
            "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
        },
    )


@dataclass(frozen=True)
class IndexFile:
    sha256: str
    url: str


def project_files(index: IndexSettings, password: str, project: str) -> dict[str, IndexFile]:
    """{filename: IndexFile} of a project on the index; an unknown project holds nothing."""
    url = f"{index.simple_url}{canonicalize_name(project)}/"

    def fetch() -> tuple[str, str]:
        try:
            with urllib.request.urlopen(_request(url, index, password), timeout=30) as response:
                return response.headers.get_content_type(), response.read().decode()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return "none", ""
            if exc.code in (401, 403):
                raise ReleaseError(
                    f"index {index.url} refused the credentials of {index.username!r} "
                    f"(HTTP {exc.code}): check {index.password.describe()}"
                ) from exc
            raise

    content_type, body = retry(fetch, what=f"reading {url}")
    if content_type == "none":
        return {}
    if content_type == "application/vnd.pypi.simple.v1+json":
        return {
            f["filename"]: IndexFile(f["hashes"].get("sha256", ""), urllib.parse.urljoin(url, f["url"]))
            for f in json.loads(body)["files"]
        }
    files = {}
    for href in _ANCHOR.findall(body):
        link, _, fragment = href.partition("#")
        digest = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else ""
        files[urllib.parse.unquote(link).rsplit("/", 1)[-1]] = IndexFile(digest, urllib.parse.urljoin(url, link))
    return files


def download(index: IndexSettings, password: str, file: IndexFile) -> bytes:
    def fetch() -> bytes:
        with urllib.request.urlopen(_request(file.url, index, password), timeout=120) as response:
            return response.read()

    return retry(fetch, what=f"download of {file.url}")
