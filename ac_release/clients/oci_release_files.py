"""The release's bundles and attestations as one OCI artifact in the target's first registry, where a user fetches
them without this repository: `<registry>/release-files:<version>`, one layer per file, named by its
`org.opencontainers.image.title` annotation (the layout `oras pull` writes back to files).

The publish stage pushes them, with the wheel stage's record, to every target's first registry: a machine that did
not build the wheels (a later job of the release workflow, `invoke verify` anywhere) reads them back from there.
Production also attaches them to its GitHub release (commands/github_release.py). The registry is reached as its
access settings say, by the pipeline's own registry API client (oci_http.py: TLS, Basic or Bearer authentication).
"""

from __future__ import annotations

import hashlib
import json

from ac_release.clients.oci_http import Client
from ac_release.clients.registry import registry_of
from ac_release.core.errors import ReleaseError
from ac_release.model.config import Registry
from ac_release.model.records import WheelRecord

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.ac-release.release-files.v1"
EMPTY_TYPE, EMPTY = "application/vnd.oci.empty.v1+json", b"{}"
TITLE = "org.opencontainers.image.title"


def location(first_registry: str) -> Registry:
    """`HOST/astronomer/ap-airflow` -> `HOST/astronomer/ap-airflow/release-files`, reached as the registry is."""
    return Registry(f"{first_registry}/release-files", registry_of(first_registry).access)


def wheel_record_bytes(record: WheelRecord) -> bytes:
    """The wheel stage's record as published (`names.WHEEL_RECORD`): the same bytes for the same record."""
    return (json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n").encode()


def listing(repository: str, tag: str) -> dict[str, str] | None:
    """{file name: sha256} of the artifact `repository:tag`, or None when there is none."""
    client = Client(repository)
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
    client = Client(repository)
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
    client = Client(repository)
    layers = []
    for title, data in sorted(files.items()):
        layers.append(client.put_blob(data, "application/json") | {"annotations": {TITLE: title}})
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": client.put_blob(EMPTY, EMPTY_TYPE),
        "layers": layers,
    }
    body = json.dumps(manifest, sort_keys=True).encode()
    response = client.request(client.url(f"manifests/{tag}"), "PUT", body, {"Content-Type": MANIFEST_TYPE})
    if response is None:
        raise ReleaseError(f"{repository} refused the manifest of {tag}")
    response.close()
    return "sha256:" + hashlib.sha256(body).hexdigest()
