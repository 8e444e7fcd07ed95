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

from ac_release.clients.retry import retry
from ac_release.clients.tlsclients import ssl_context
from ac_release.core.errors import ReleaseError
from ac_release.model.config import IndexSettings

_ANCHOR = re.compile(r'<a\s[^>]*href="([^"]+)"', re.IGNORECASE)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def same_origin(index_url: str, url: str) -> bool:
    """Whether `url` is on the index's own scheme, host and port: the only place its credentials may go."""
    return _origin(index_url) == _origin(url)


class _CredentialsStayHome(urllib.request.HTTPRedirectHandler):
    """urllib copies every header across a redirect; this one drops Authorization once the redirect leaves the
    index's origin (another host or port, or https -> http)."""

    def __init__(self, index_url: str):
        self.index_url = index_url

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and not same_origin(self.index_url, new.full_url):
            new.remove_header("Authorization")
        return new


def open_url(index: IndexSettings, password: str, url: str, *, timeout: float, data: bytes | None = None, **headers):
    """Open `url` with the index's credentials attached only while the request stays on the index's origin."""
    headers.setdefault("Accept", "application/vnd.pypi.simple.v1+json, text/html;q=0.1")
    if same_origin(index.url, url):  # file URLs may point at other hosts (a CDN): they get no credentials
        token = base64.b64encode(f"{index.username}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    handlers: list[urllib.request.BaseHandler] = [_CredentialsStayHome(index.url)]
    if index.ca_file is not None:  # the target's own CA, besides the machine's
        handlers.append(urllib.request.HTTPSHandler(context=ssl_context(index.ca_file)))
    opener = urllib.request.build_opener(*handlers)
    return opener.open(urllib.request.Request(url, data=data, headers=headers), timeout=timeout)


@dataclass(frozen=True)
class IndexFile:
    sha256: str
    url: str


def project_files(index: IndexSettings, password: str, project: str, attempts: int = 4) -> dict[str, IndexFile]:
    """{filename: IndexFile} of a project on the index; an unknown project holds nothing. RetriesSpent when the index
    did not answer in `attempts`."""
    url = f"{index.simple_url}{canonicalize_name(project)}/"

    def fetch() -> tuple[str, str]:
        try:
            with open_url(index, password, url, timeout=30) as response:
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

    content_type, body = retry(fetch, what=f"reading {url}", attempts=attempts)
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
        with open_url(index, password, file.url, timeout=120) as response:
            return response.read()

    return retry(fetch, what=f"download of {file.url}")
