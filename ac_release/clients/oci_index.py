"""An OCI image index of one image's platforms, assembled in the registry from the platforms' image manifests that
are already there (each platform built on its own and pushed by digest), and pushed under a tag: what a user's
`docker pull` resolves to the image of their platform (`--platform linux/arm64` to the arm64 one).

skopeo cannot write an index (it only copies an existing one, with --all); the pipeline's own registry API client
(oci_http.py) reads each platform's manifest and config, refuses one that is missing or of another platform, and
PUTs the index. The index is canonical JSON (sorted keys, no spaces), its entries in the order the platforms are
given, each with the manifest's own media type and size and the platform as given: the same manifests give the same
bytes, hence the same index digest, on every run and every registry (a resumed run finds its index "kept").
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ac_release.clients.oci_http import Client
from ac_release.clients.registry import parse_platform, platform_name, same_platform
from ac_release.core.errors import ReleaseError

INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
ACCEPT = (INDEX_TYPE, DOCKER_LIST_TYPE, *IMAGE_TYPES)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class PushedIndex:
    digest: str  # the index's: what the tag names, read back
    platforms: dict[str, str]  # {platform_name: image manifest digest}, in the index's order (remote_platforms')
    action: str  # "pushed", or "kept" when the tag already named this very index


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: dict) -> bytes:
    """The bytes the pipeline writes for a manifest: sorted keys, no whitespace, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def index_bytes(entries: list[dict]) -> bytes:
    """The canonical index listing these descriptors (mediaType, digest, size, platform), in this order."""
    return canonical({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": entries})


def assemble(repository: str, platforms: Mapping[str, str]) -> bytes:
    """The index of {platform (`linux/arm64`): image manifest digest in `repository`}, in the mapping's order, each
    manifest read from the registry (its bytes must have its digest) and its config checked: the platform it
    claims must be the image's (os and architecture; the variant when both name one)."""
    return _assemble(Client(repository), repository, platforms)


def _assemble(client: Client, repository: str, platforms: Mapping[str, str]) -> bytes:
    if not platforms:
        raise ReleaseError(f"no platform's image given for an index in {repository}: name at least one")
    entries = []
    seen: dict[str, str] = {}
    for platform, digest in platforms.items():
        wanted = parse_platform(platform)
        if (name := platform_name(wanted)) in seen:
            raise ReleaseError(f"{platform} and {seen[name]} are one platform: name each platform once in an index")
        seen[name] = platform
        entries.append(_entry(client, repository, platform, wanted, digest))
    return index_bytes(entries)


def _entry(client: Client, repository: str, platform: str, wanted: dict[str, str], digest: str) -> dict:
    """The index's descriptor of `repository@digest`, the image of `platform`, or a one-line refusal."""
    if not _DIGEST.fullmatch(str(digest)):
        raise ReleaseError(f"{platform}: {digest!r} is not a manifest digest (sha256: and 64 hex digits)")
    where = f"{repository}@{digest}"
    fetched = client.get(f"manifests/{digest}", ACCEPT)
    if fetched is None:
        raise ReleaseError(
            f"{where} ({platform}) is not in the registry: push the {platform} image first, then assemble the index"
        )
    raw, headers = fetched
    if sha256(raw) != digest:
        raise ReleaseError(f"{where} ({platform}) came back as bytes of digest {sha256(raw)}: the registry is corrupt")
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise ReleaseError(f"{where} ({platform}) is not JSON: not an image manifest") from None
    media_type = manifest.get("mediaType") or headers.get("content-type", "").split(";")[0].strip()
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    if media_type not in IMAGE_TYPES or not _DIGEST.fullmatch(str(config.get("digest", ""))):
        raise ReleaseError(
            f"{where} ({platform}) is a {media_type or 'manifest of no media type'}, not one platform's image "
            f"manifest: name the digest `docker push` printed for the {platform} image"
        )
    blob = client.get(f"blobs/{config['digest']}")
    if blob is None:
        raise ReleaseError(f"{where} ({platform}) names the config {config['digest']}, which the registry lacks")
    if sha256(blob[0]) != config["digest"]:
        raise ReleaseError(
            f"the config {config['digest']} of {where} came back as other bytes: the registry is corrupt"
        )
    try:
        image = json.loads(blob[0])
    except ValueError:
        raise ReleaseError(f"the config {config['digest']} of {where} is not JSON: not an image config") from None
    if not same_platform(image, wanted):
        raise ReleaseError(
            f"{where} is a {platform_name(image)} image (its config says so), not {platform}: name the {platform} "
            f"image's digest for {platform}"
        )
    return {"mediaType": media_type, "digest": digest, "size": len(raw), "platform": wanted}


def push_index(repository: str, tag: str, platforms: Mapping[str, str]) -> PushedIndex:
    """Assemble the index of these platforms' manifests (assemble) and put it under `repository:tag`, unless the
    tag already names these very bytes ("kept"). The tag is read back: its Docker-Content-Digest and the sha256 of
    the bytes it serves must both be the index's digest. Whether the tag may move is the caller's decision (an
    immutable tag holding something else is refused before this is called)."""
    client = Client(repository)  # one client: the registry's challenge answered once
    body = _assemble(client, repository, platforms)
    digest = sha256(body)
    named = {platform_name(parse_platform(platform)): manifest for platform, manifest in platforms.items()}
    if _is(_held(client, tag), digest):
        return PushedIndex(digest, named, "kept")
    response = client.request(client.url(f"manifests/{tag}"), "PUT", body, {"Content-Type": INDEX_TYPE})
    if response is None:
        raise ReleaseError(f"{repository} has no repository to take the index of {tag}: push its images first")
    with response:
        stored = response.headers.get("Docker-Content-Digest")
    if stored is not None and stored != digest:
        raise ReleaseError(
            f"{repository} stored the index of {tag} as {stored}, not {digest} (the sha256 of the bytes sent): the "
            f"registry rewrote it; use a registry that stores manifests as sent"
        )
    held = _held(client, tag)
    if not _is(held, digest):
        found = f"{held[0]} (Docker-Content-Digest {held[1]})" if held else "nothing"
        raise ReleaseError(
            f"after the push {repository}:{tag} resolves to {found}, expected the index {digest}: something else "
            f"writes to this repository; check who, then run the release again"
        )
    return PushedIndex(digest, named, "pushed")


def _is(held: tuple[str, str | None] | None, digest: str) -> bool:
    """The tag serves the bytes of `digest`, and says so in Docker-Content-Digest (when the registry sends one: the
    distribution spec only recommends it)."""
    return held is not None and held[0] == digest and held[1] in (digest, None)


def _held(client: Client, tag: str) -> tuple[str, str | None] | None:
    """(sha256 of the bytes, Docker-Content-Digest) of what the tag serves, or None when there is no such tag."""
    fetched = client.get(f"manifests/{tag}", ACCEPT)
    if fetched is None:
        return None
    raw, headers = fetched
    return sha256(raw), headers.get("docker-content-digest")
