"""The pipeline's own HTTP client of one repository of an OCI registry's API (the distribution spec's `/v2/`), for
what skopeo cannot do: push an artifact's manifest (oci_release_files.py), assemble an image index (oci_index.py).

The registry is reached as its access settings say: plain HTTP without TLS (the local target), else TLS trusting the
machine's CAs plus the target's CA (tlsclients), with the registry API's own authentication when it answers 401:
Basic with the registry's login, or a Bearer token from the challenge's realm (checked by
registry.check_bearer_realm before any request goes there). The credentials go to the registry's own origin (and a
Bearer realm), never through a redirect.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from urllib.request import parse_http_list, parse_keqv_list

from ac_release.clients.registry import check_bearer_realm, registry_of
from ac_release.clients.tlsclients import ssl_context
from ac_release.core.errors import ReleaseError

TIMEOUT_S = 60


class Client:
    """HTTP to one repository of a registry's API: its TLS settings, and its authentication once it asks for it."""

    def __init__(self, repository: str) -> None:
        self.registry = registry_of(repository)
        host, _, self.name = self.registry.partition("/")
        access = self.registry.access
        self.base = f"{'https' if access.tls_verify else 'http'}://{host}"
        ca_file = access.ca_dir / "ca.crt" if access.tls_verify and access.ca_dir is not None else None
        self.context = ssl_context(ca_file) if access.tls_verify else None
        self.authorization: str | None = None

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{self.name}/{path}"

    def request(self, url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None):
        """The response, or None for 404. A 401 is answered once with the challenge's credentials."""
        while True:
            request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
            if self.authorization and _same_origin(url, self.base):
                request.add_unredirected_header("Authorization", self.authorization)  # not sent on to a redirect
            try:
                return urllib.request.urlopen(request, timeout=TIMEOUT_S, context=self.context)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                if exc.code == 401:
                    answer = self._answer(exc.headers.get("WWW-Authenticate", ""))
                    if answer is not None and answer != self.authorization:
                        self.authorization = answer
                        continue
                    raise ReleaseError(self._refused()) from None
                raise ReleaseError(f"{method} {url} answered {exc.code} {exc.reason}{_detail(exc)}") from None
            except OSError as exc:
                raise ReleaseError(f"{method} {url} failed: {exc}") from None

    def _answer(self, challenge: str) -> str | None:
        """The Authorization header for a `Basic realm=...` or `Bearer realm=...,service=...,scope=...` challenge."""
        scheme, _, params = challenge.strip().partition(" ")
        basic = self._basic()
        if scheme.lower() == "basic":
            return basic
        if scheme.lower() != "bearer":
            return None
        fields = parse_keqv_list(parse_http_list(params))
        if "realm" not in fields:
            return None
        check_bearer_realm(fields["realm"], self.registry)  # before any request: no credentials to another host
        query = urllib.parse.urlencode({k: v for k, v in fields.items() if k in ("service", "scope")})
        request = urllib.request.Request(f"{fields['realm']}?{query}" if query else fields["realm"])
        if basic:
            request.add_unredirected_header("Authorization", basic)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=self.context) as response:
                answer = json.loads(response.read())
        except (OSError, ValueError):
            return None
        token = answer.get("token") or answer.get("access_token")
        return f"Bearer {token}" if token else None

    def _basic(self) -> str | None:
        """The registry's login from the target, else the one `docker login` stored for its host (production)."""
        access = self.registry.access
        if access.username is None or access.password is None:
            return _docker_login(self.registry.partition("/")[0])
        login = f"{access.username}:{access.password.read()}".encode()
        return "Basic " + base64.b64encode(login).decode()

    def _refused(self) -> str:
        access = self.registry.access
        if access.username is not None and access.password is not None:
            hint = f"check {access.password.describe()} (the password of {access.username!r})"
        else:
            hint = "it has no credentials here: set its username and password_env"
        return f"registry {self.registry} refused access (401 unauthorized): {hint}"

    def get(self, path: str, accept: tuple[str, ...] = ()) -> tuple[bytes, dict[str, str]] | None:
        """(body, headers) of `GET /v2/<name>/<path>`, or None for 404."""
        response = self.request(self.url(path), headers={"Accept": ", ".join(accept)} if accept else None)
        if response is None:
            return None
        with response:
            return response.read(), {name.lower(): value for name, value in response.headers.items()}

    def put_blob(self, data: bytes, media_type: str) -> dict:
        """Upload `data` as a blob unless the repository holds it; returns its descriptor (mediaType, digest, size)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        exists = self.request(self.url(f"blobs/{digest}"), "HEAD")
        if exists is None:
            started = self.request(self.url("blobs/uploads/"), "POST", b"")
            if started is None:
                raise ReleaseError(f"{self.base} refused a blob upload to {self.name}")
            upload = urllib.parse.urljoin(self.base, started.headers["Location"])
            started.close()
            separator = "&" if "?" in upload else "?"
            done = self.request(
                f"{upload}{separator}digest={digest}", "PUT", data, {"Content-Type": "application/octet-stream"}
            )
            if done is None:
                raise ReleaseError(f"{self.base} lost the blob upload to {self.name}")
            done.close()
        else:
            exists.close()
        return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _detail(exc: urllib.error.HTTPError) -> str:
    """The first error code and message of a registry's JSON error body (`: MANIFEST_INVALID manifest invalid`)."""
    try:
        errors = json.loads(exc.read() or b"{}").get("errors") or []
    except (OSError, ValueError, AttributeError):
        return ""
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    text = " ".join(str(first.get(key, "")) for key in ("code", "message")).strip()
    return f": {' '.join(text.split())[:200]}" if text else ""


def _docker_login(host: str) -> str | None:
    """`Basic <auth>` of the Docker CLI's config for `host` (Docker Hub's is stored under its index URL)."""
    path = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        auths = json.loads(path.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    names = [host, f"https://{host}"] + (["https://index.docker.io/v1/"] if host == "docker.io" else [])
    auth = next((auths[name].get("auth") for name in names if name in auths and auths[name].get("auth")), None)
    return f"Basic {auth}" if auth else None


def _same_origin(url: str, base: str) -> bool:
    ours, theirs = urllib.parse.urlsplit(base), urllib.parse.urlsplit(url)
    return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)
