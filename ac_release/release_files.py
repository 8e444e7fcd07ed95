"""The release's bundles and attestations as one OCI artifact in the target's first registry, where a user fetches
them without this repository: `<registry>/release-files:<version>`, one layer per file, named by its
`org.opencontainers.image.title` annotation (the layout `oras pull` writes back to files).

Only for registries on a loopback address (the local targets, plain HTTP, no credentials): other targets publish
the same files as assets of their GitHub release (ac_release/github.py).
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request

from ac_release.cosign import ImageReference
from ac_release.errors import ReleaseError

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.ac-release.release-files.v1"
EMPTY_TYPE, EMPTY = "application/vnd.oci.empty.v1+json", b"{}"
TITLE = "org.opencontainers.image.title"
TIMEOUT_S = 60


def location(first_registry: str) -> str:
    """`HOST/astronomer/ap-airflow` -> `HOST/astronomer/ap-airflow/release-files`."""
    return f"{first_registry}/release-files"


def _base(repository: str) -> tuple[str, str]:
    host, _, name = repository.partition("/")
    if not ImageReference(host, name, "sha256:" + "0" * 64).is_loopback:
        raise ReleaseError(
            f"release files go to a loopback registry only, not {host}: other targets attach them to the GitHub "
            f"release (`invoke github-release`)"
        )
    return f"http://{host}", name


def _request(url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise ReleaseError(f"{method} {url} answered {exc.code} {exc.reason}") from None
    except OSError as exc:
        raise ReleaseError(f"{method} {url} failed: {exc}") from None


def listing(repository: str, tag: str) -> dict[str, str] | None:
    """{file name: sha256} of the artifact `repository:tag`, or None when there is none."""
    base, name = _base(repository)
    response = _request(f"{base}/v2/{name}/manifests/{tag}", headers={"Accept": MANIFEST_TYPE})
    if response is None:
        return None
    with response:
        manifest = json.loads(response.read())
    if manifest.get("artifactType") != ARTIFACT_TYPE:
        raise ReleaseError(f"{repository}:{tag} is not a release-files artifact ({manifest.get('artifactType')!r})")
    return {layer["annotations"][TITLE]: layer["digest"].removeprefix("sha256:") for layer in manifest["layers"]}


def fetch(repository: str, tag: str, name: str) -> bytes:
    """One file of the artifact, checked against the digest its manifest names."""
    files = listing(repository, tag)
    if files is None:
        raise ReleaseError(f"{repository}:{tag} does not exist: the release files of this version are not published")
    if name not in files:
        raise ReleaseError(
            f"{name} is missing from {repository}:{tag}: it holds {', '.join(sorted(files)) or 'nothing'}"
        )
    base, repo = _base(repository)
    response = _request(f"{base}/v2/{repo}/blobs/sha256:{files[name]}")
    if response is None:
        raise ReleaseError(f"{repository}:{tag} names {name} as sha256:{files[name]}, which the registry lacks")
    with response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != files[name]:
        raise ReleaseError(f"{name} from {repository}:{tag} does not have the digest its manifest names")
    return data


def push(repository: str, tag: str, files: dict[str, bytes]) -> str:
    """Upload every file as a blob, then the manifest naming them; returns the manifest digest."""
    base, name = _base(repository)
    layers = []
    for title, data in sorted(files.items()):
        layers.append(_blob(base, name, data, "application/json") | {"annotations": {TITLE: title}})
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": _blob(base, name, EMPTY, EMPTY_TYPE),
        "layers": layers,
    }
    body = json.dumps(manifest, sort_keys=True).encode()
    response = _request(f"{base}/v2/{name}/manifests/{tag}", "PUT", body, {"Content-Type": MANIFEST_TYPE})
    if response is None:
        raise ReleaseError(f"{repository} refused the manifest of {tag}")
    response.close()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _blob(base: str, name: str, data: bytes, media_type: str) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    exists = _request(f"{base}/v2/{name}/blobs/{digest}", "HEAD")
    if exists is None:
        started = _request(f"{base}/v2/{name}/blobs/uploads/", "POST", b"")
        if started is None:
            raise ReleaseError(f"{base} refused a blob upload to {name}")
        upload = urllib.parse.urljoin(base, started.headers["Location"])
        started.close()
        separator = "&" if "?" in upload else "?"
        done = _request(
            f"{upload}{separator}digest={digest}", "PUT", data, {"Content-Type": "application/octet-stream"}
        )
        if done is None:
            raise ReleaseError(f"{base} lost the blob upload to {name}")
        done.close()
    else:
        exists.close()
    return {"mediaType": media_type, "digest": digest, "size": len(data)}
