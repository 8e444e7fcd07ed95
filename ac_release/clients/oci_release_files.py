"""The release's bundles and attestations as one OCI artifact in the target's first registry, where a user fetches
them without this repository: `<registry>/release-files:<version>`, one layer per file, named by its
`org.opencontainers.image.title` annotation (the layout `oras pull` writes back to files).

The publish stage pushes them, with the wheel stage's record, to every target's first registry: a machine that did
not build the wheels (a later job of the release workflow, `invoke verify` anywhere) reads them back from there.
Production also attaches them to its GitHub release (commands/github_release.py). The registry is reached as its
access settings say: plain HTTP without TLS (the local target), else TLS trusting the machine's CAs plus the target's CA
(tlsclients), with the registry API's own authentication when it answers 401: Basic with the registry's login, or
a Bearer token from the challenge's realm. The credentials go to the registry's own origin (and a Bearer realm),
never through a redirect.
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
from ac_release.model.config import Registry
from ac_release.model.records import WheelRecord

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.ac-release.release-files.v1"
EMPTY_TYPE, EMPTY = "application/vnd.oci.empty.v1+json", b"{}"
TITLE = "org.opencontainers.image.title"
TIMEOUT_S = 60


def location(first_registry: str) -> Registry:
    """`HOST/astronomer/ap-airflow` -> `HOST/astronomer/ap-airflow/release-files`, reached as the registry is."""
    return Registry(f"{first_registry}/release-files", registry_of(first_registry).access)


class _Client:
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
                raise ReleaseError(f"{method} {url} answered {exc.code} {exc.reason}") from None
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


def wheel_record_bytes(record: WheelRecord) -> bytes:
    """The wheel stage's record as published (`names.WHEEL_RECORD`): the same bytes for the same record."""
    return (json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n").encode()


def listing(repository: str, tag: str) -> dict[str, str] | None:
    """{file name: sha256} of the artifact `repository:tag`, or None when there is none."""
    client = _Client(repository)
    response = client.request(client.url(f"manifests/{tag}"), headers={"Accept": MANIFEST_TYPE})
    if response is None:
        return None
    with response:
        manifest = json.loads(response.read())
    if manifest.get("artifactType") != ARTIFACT_TYPE:
        raise ReleaseError(f"{repository}:{tag} is not a release-files artifact ({manifest.get('artifactType')!r})")
    return {layer["annotations"][TITLE]: layer["digest"].removeprefix("sha256:") for layer in manifest["layers"]}


def fetch(repository: str, tag: str, name: str) -> bytes:
    """One file of the artifact, checked against the digest its manifest names."""
    return fetch_files(repository, tag, [name])[name]


def fetch_files(repository: str, tag: str, names: list[str]) -> dict[str, bytes]:
    """{name: bytes} of these files of the artifact (its manifest read once), each checked against the digest the
    manifest names."""
    files = listing(repository, tag)
    if files is None:
        raise ReleaseError(f"{repository}:{tag} does not exist: the release files of this version are not published")
    if missing := [name for name in names if name not in files]:
        raise ReleaseError(
            f"{missing[0]} is missing from {repository}:{tag}: it holds {', '.join(sorted(files)) or 'nothing'}"
        )
    client = _Client(repository)
    fetched = {}
    for name in names:
        response = client.request(client.url(f"blobs/sha256:{files[name]}"))
        if response is None:
            raise ReleaseError(f"{repository}:{tag} names {name} as sha256:{files[name]}, which the registry lacks")
        with response:
            data = response.read()
        if hashlib.sha256(data).hexdigest() != files[name]:
            raise ReleaseError(f"{name} from {repository}:{tag} does not have the digest its manifest names")
        fetched[name] = data
    return fetched


def push(repository: str, tag: str, files: dict[str, bytes]) -> str:
    """Upload every file as a blob, then the manifest naming them; returns the manifest digest."""
    client = _Client(repository)
    layers = []
    for title, data in sorted(files.items()):
        layers.append(_blob(client, data, "application/json") | {"annotations": {TITLE: title}})
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": _blob(client, EMPTY, EMPTY_TYPE),
        "layers": layers,
    }
    body = json.dumps(manifest, sort_keys=True).encode()
    response = client.request(client.url(f"manifests/{tag}"), "PUT", body, {"Content-Type": MANIFEST_TYPE})
    if response is None:
        raise ReleaseError(f"{repository} refused the manifest of {tag}")
    response.close()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _blob(client: _Client, data: bytes, media_type: str) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    exists = client.request(client.url(f"blobs/{digest}"), "HEAD")
    if exists is None:
        started = client.request(client.url("blobs/uploads/"), "POST", b"")
        if started is None:
            raise ReleaseError(f"{client.base} refused a blob upload to {client.name}")
        upload = urllib.parse.urljoin(client.base, started.headers["Location"])
        started.close()
        separator = "&" if "?" in upload else "?"
        done = client.request(
            f"{upload}{separator}digest={digest}", "PUT", data, {"Content-Type": "application/octet-stream"}
        )
        if done is None:
            raise ReleaseError(f"{client.base} lost the blob upload to {client.name}")
        done.close()
    else:
        exists.close()
    return {"mediaType": media_type, "digest": digest, "size": len(data)}
