"""What an OCI registry holds, read with skopeo; images pushed with the Docker CLI.

A tag names one platform's image manifest, or a list of them (an OCI image index, a Docker manifest list): the
platform an entry or a config names reads as `os/architecture[/variant]` (platform_name: `linux/amd64`,
`linux/arm64`, `linux/arm/v7`). Copies registry-side (copy_pushed, tag_digest) carry a list whole, with every
image it names, under its own digest (`skopeo copy --all --preserve-digests`: without --all skopeo copies only the
machine's platform's image of a list).

How a registry is reached is a setting of the target (`config.RegistryAccess`, carried by the `Registry` string):
plain HTTP for the local target's loopback registry, TLS otherwise, with the target's CA for its own services, and
its credentials in a private auth file for the one call (tlsclients.py), else those of `docker login`. A bare
repository string (no target behind it) keeps the old default: plain HTTP on loopback only.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from ac_release.clients import faults, proc
from ac_release.clients.docker import Docker
from ac_release.clients.retry import Transient, retry
from ac_release.clients.tlsclients import auth_dir
from ac_release.core.errors import ReleaseError
from ac_release.model.config import Registry, RegistryAccess, is_loopback_host, is_loopback_registry

_LISTS = ("application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json")
DEFAULT_PLATFORM = "linux/amd64"  # the platform the pipeline compared alone before it built others
_PLATFORM_FIELDS = ("os", "architecture", "variant")
_TRANSIENT = ("connection refused", "connection reset", "timeout", "503 ", "502 ", "504 ", "i/o timeout", "EOF")
_UNAUTHORIZED = ("unauthorized", "authentication required", "401 ")


@dataclass(frozen=True)
class RemoteImage:
    digest: str  # manifest digest: what `repo@digest` pulls
    config: str  # config digest: the image id the Docker engine shows


@dataclass(frozen=True)
class RemotePlatforms:
    digest: str  # what the tag names: an index's (list's) digest, or the one image manifest's
    platforms: dict[str, str]  # {platform_name: image manifest digest}, in the list's order


def parse_platform(text: str) -> dict[str, str]:
    """`linux/arm64` -> {"os": "linux", "architecture": "arm64"}; `linux/arm/v7` adds {"variant": "v7"}. Also takes
    a model.flavours.Platform (its str)."""
    parts = str(text).split("/")
    if len(parts) not in (2, 3) or not all(re.fullmatch(r"[a-z0-9_.-]+", part) for part in parts):
        raise ReleaseError(f"platform {text!r} is not os/architecture[/variant] (for example linux/arm64)")
    return dict(zip(_PLATFORM_FIELDS, parts, strict=False))


def platform_name(platform: dict) -> str:
    """`os/architecture[/variant]` of an index entry's platform or an image config, as Docker's --platform writes it
    (arm64's default variant v8 left out, as containerd normalizes it: `linux/arm64/v8` is `linux/arm64`)."""
    name = f"{platform.get('os')}/{platform.get('architecture')}"
    variant = platform.get("variant")
    if variant and not (platform.get("architecture") == "arm64" and variant == "v8"):
        name += f"/{variant}"
    return name


def same_platform(one: dict, other: dict) -> bool:
    """Two platforms (index entries', configs', parse_platform's) are one: the same os and architecture, and the
    same variant when both name one (arm64's default variant is v8)."""
    if (one.get("os"), one.get("architecture")) != (other.get("os"), other.get("architecture")):
        return False
    variants = [p.get("variant") or ("v8" if p.get("architecture") == "arm64" else None) for p in (one, other)]
    return None in variants or variants[0] == variants[1]


def registry_of(repository: str) -> Registry:
    if isinstance(repository, Registry):
        return repository
    return Registry(repository, RegistryAccess(tls_verify=not is_loopback_registry(repository)))


def check_bearer_realm(realm: str, repository: str) -> None:
    """A Bearer challenge's realm gets the registry's credentials: it must be https (plain http only on loopback for
    a loopback registry) on the registry's own host or a host the target's registry names in `auth_hosts`."""
    registry = registry_of(repository)
    registry_host = urllib.parse.urlsplit(f"//{registry.host}").hostname or ""
    parts = urllib.parse.urlsplit(realm)
    host = (parts.hostname or "").lower()
    secure = parts.scheme == "https" or (
        parts.scheme == "http" and is_loopback_host(host) and is_loopback_host(registry_host)
    )
    if secure and host and (host == registry_host.lower() or host in registry.access.auth_hosts):
        return
    shown = f"{parts.scheme}://{host}" if host else f"{parts.scheme}: URL"
    raise ReleaseError(
        f"registry {registry.host} asks for a token from {shown}: refused, no credentials sent (a realm must be "
        f"https on {registry_host} or on a host its auth_hosts in release.toml name)"
    )


def _tls(repository: str) -> list[str]:
    """skopeo's TLS options for the registry: plain HTTP, or TLS trusting the system CAs plus the target's CA."""
    access = registry_of(repository).access
    if not access.tls_verify:
        return ["--tls-verify=false"]
    return ["--cert-dir", str(access.ca_dir)] if access.ca_dir is not None else []


@contextmanager
def _skopeo_auth(repository: str) -> Iterator[list[str]]:
    with auth_dir(registry_of(repository)) as directory:
        yield ["--authfile", str(directory / "config.json")] if directory else []


def _refused(repository: str, error: str) -> ReleaseError | None:
    if not any(marker in error.lower() for marker in _UNAUTHORIZED):
        return None
    access = registry_of(repository).access
    if access.username is not None and access.password is not None:
        hint = f"check {access.password.describe()} (the password of {access.username!r})"
    else:
        hint = "it has no credentials here: set its username and password_env (or `docker login`)"
    return ReleaseError(f"registry {repository} refused access (401 unauthorized): {hint}")


def _skopeo(*args: str, what: str) -> subprocess.CompletedProcess:
    def attempt() -> subprocess.CompletedProcess:
        result = proc.run(["skopeo", *args], kind="skopeo")
        error = result.stderr.decode(errors="replace")
        if result.returncode != 0 and any(marker in error for marker in _TRANSIENT):
            raise Transient(error.strip().splitlines()[-1])
        return result

    return retry(attempt, what=what)


def _inspect_raw(repository: str, reference: str, *options: str) -> bytes | None:
    """The raw manifest `repository:tag` or `repository@digest` names (with `--config`, its image's config), or None
    when it does not exist."""
    separator = "@" if reference.startswith("sha256:") else ":"
    name = f"{repository}{separator}{reference}"
    with _skopeo_auth(repository) as auth:
        result = _skopeo(
            "inspect", *options, "--raw", *_tls(repository), *auth, f"docker://{name}", what=f"reading {name}"
        )
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace")
        if refused := _refused(repository, error):
            raise refused
        if "manifest unknown" in error or "not found" in error.lower() or "name unknown" in error.lower():
            return None
        raise ReleaseError(f"cannot read {name}: {error.strip().splitlines()[-1] if error.strip() else 'no output'}")
    return result.stdout


def remote_image(repository: str, tag: str, platform: str = DEFAULT_PLATFORM) -> RemoteImage | None:
    """The image `repository:tag` points to, or None when the tag does not exist. For a multi-arch list (Docker
    manifest list, OCI index) the digest is the list's and the config is its `platform` image's (linux/amd64 unless
    named). A tag naming one image manifest gives that image whatever its platform (check it with
    remote_platforms)."""
    platform = str(platform)  # also model.flavours.Platform
    raw = _inspect_raw(repository, tag)
    if raw is None:
        return None
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    manifest = json.loads(raw)
    if _is_list(manifest):
        wanted = parse_platform(platform)
        entry = next(
            (m for m in _images_of(manifest) if same_platform(m.get("platform") or {}, wanted)),
            None,
        )
        if entry is None:
            platforms = sorted(platform_name(m.get("platform") or {}) for m in _images_of(manifest))
            why = (
                "the release compares linux/amd64 images only"
                if platform == DEFAULT_PLATFORM
                else f"the release needs its {platform} image there"
            )
            raise ReleaseError(
                f"{repository}:{tag} is a multi-arch list without a {platform} image "
                f"(it holds {', '.join(platforms) or 'nothing'}): {why}"
            )
        raw = _inspect_raw(repository, entry["digest"])
        if raw is None:
            raise ReleaseError(f"{repository}:{tag} lists {entry['digest']} for {platform}, which the registry lacks")
        manifest = json.loads(raw)
    config = manifest.get("config", {}).get("digest") if isinstance(manifest.get("config"), dict) else None
    if not config:
        raise _unreadable(repository, tag, manifest)
    return RemoteImage(digest=digest, config=config)


def remote_platforms(repository: str, tag: str) -> RemotePlatforms | None:
    """What `repository:tag` holds per platform, or None when the tag does not exist: a list's digest and
    {platform: its image manifest's digest} (entries that are no platform's image, such as BuildKit's attestation
    manifests, left out), or one image manifest's digest and {its config's platform: that digest}."""
    raw = _inspect_raw(repository, tag)
    if raw is None:
        return None
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    manifest = json.loads(raw)
    if not _is_list(manifest):
        if not isinstance(manifest.get("config"), dict):
            raise _unreadable(repository, tag, manifest)
        config_raw = _inspect_raw(repository, digest, "--config")
        if config_raw is None:
            raise ReleaseError(
                f"{repository}:{tag} names the config {manifest['config'].get('digest')}, which the registry lacks"
            )
        config = json.loads(config_raw)
        if not (isinstance(config, dict) and config.get("os") and config.get("architecture")):
            raise ReleaseError(
                f"{repository}:{tag} is not an image: its config names no os and architecture (an artifact?)"
            )
        return RemotePlatforms(digest, {platform_name(config): digest})
    platforms: dict[str, str] = {}
    for entry in _images_of(manifest):
        if not entry.get("platform"):
            raise ReleaseError(
                f"{repository}:{tag} lists {entry.get('digest')} without a platform: not an index the release reads"
            )
        name = platform_name(entry["platform"])
        if name in platforms:
            raise ReleaseError(
                f"{repository}:{tag} lists two images for {name} ({platforms[name]}, {entry.get('digest')}): "
                f"a platform's image must be one; assemble the index again"
            )
        platforms[name] = entry["digest"]
    return RemotePlatforms(digest, platforms)


def _is_list(manifest: dict) -> bool:
    return manifest.get("mediaType") in _LISTS or "manifests" in manifest


def _images_of(manifest: dict) -> list[dict]:
    """A list's entries that are a platform's image (BuildKit's attestation manifests are not)."""
    return [
        m
        for m in manifest.get("manifests", ())
        if (m.get("annotations") or {}).get("vnd.docker.reference.type") != "attestation-manifest"
    ]


def _unreadable(repository: str, tag: str, manifest: dict) -> ReleaseError:
    return ReleaseError(
        f"{repository}:{tag} is not an image manifest the release can read "
        f"(media type {manifest.get('mediaType', 'unknown')!r}, schema {manifest.get('schemaVersion')})"
    )


def tags(repository: str) -> list[str]:
    with _skopeo_auth(repository) as auth:
        result = _skopeo("list-tags", *_tls(repository), *auth, f"docker://{repository}", what=f"listing {repository}")
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace")
        if refused := _refused(repository, error):
            raise refused
        if "name unknown" in error.lower() or "not found" in error.lower():
            return []
        raise ReleaseError(
            f"cannot list {repository}: {error.strip().splitlines()[-1] if error.strip() else 'no output'}"
        )
    return json.loads(result.stdout)["Tags"] or []


def push(docker: Docker, image: str, repository: str, tag: str) -> str:
    """Push the local image id `image` as `repository:tag`; returns the manifest digest the registry stored."""
    reference = f"{repository}:{tag}"
    docker("tag", image, reference)

    number = faults.count("push")
    failpoint = f"during:push-{number}"

    def layer_pushed(line: str) -> None:
        # Fire the failpoint once bytes reached the registry: the client prints `<layer>: Pushed` when a layer's
        # upload completed (Debian's 20.10 client, without a terminal, prints one line per layer status).
        if line.rstrip().endswith(": Pushed"):
            faults.reached(failpoint)

    def attempt() -> str:
        with authenticated(docker, repository) as client:
            result = proc.run(
                [*client.argv, "push", reference],
                kind="docker push",
                env=client.env,
                stderr=subprocess.STDOUT,
                on_line=layer_pushed,
            )
        faults.reached(failpoint)  # every layer was already there: the push ends before the failpoint fired
        output = result.stdout.decode(errors="replace")
        if result.returncode != 0:
            if any(marker in output for marker in _TRANSIENT):
                raise Transient(output.strip().splitlines()[-1])
            if refused := _refused(repository, output):
                raise refused
            raise ReleaseError(f"docker push {reference} failed: {output.strip().splitlines()[-1]}")
        match = re.search(r"digest: (sha256:[0-9a-f]{64})", output)
        if not match:
            raise ReleaseError(f"docker push {reference} printed no digest")
        return match[1]

    digest = retry(attempt, what=f"push of {reference}")
    check_pushed(repository, tag, digest, image)
    faults.reached(f"after:push-{number}")
    return digest


def copy_pushed(
    source: str, digest: str, repository: str, tag: str, image: str, platforms: Mapping[str, str] | None = None
) -> None:
    """`source@digest` (pushed and read back) to `repository:tag` of another registry, registry to registry: skopeo
    sends the compressed layers as they are, where `docker push` compresses each layer again for every registry.
    An index goes whole (--all: the index and every image it lists). --preserve-digests refuses to write any other
    manifest than `digest`; the tag is then read back like a push: holding `image` (check_pushed), or with
    `platforms` holding the index `digest` of exactly those {platform: manifest digest} (check_platforms)."""
    origin, destination = f"docker://{source}@{digest}", f"docker://{repository}:{tag}"
    with _skopeo_auth(source) as source_auth, _skopeo_auth(repository) as auth:
        result = _skopeo(
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            *_side_tls("src", source),
            *_side_tls("dest", repository),
            *(["--src-authfile", source_auth[1]] if source_auth else []),
            *(["--dest-authfile", auth[1]] if auth else []),
            origin,
            destination,
            what=f"copying {source}@{digest} to {repository}:{tag}",
        )
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace")
        # skopeo names the registry that refused; the destination is the one that takes writes
        refuser = source if _host(source) in error and _host(repository) not in error else repository
        if refused := _refused(refuser, error):
            raise refused
        last = error.strip().splitlines()[-1] if error.strip() else "no output"
        raise ReleaseError(f"cannot copy {source}@{digest} to {repository}:{tag}: {last}")
    if platforms is not None:
        check_platforms(repository, tag, digest, platforms)
    else:
        check_pushed(repository, tag, digest, image)


def _host(repository: str) -> str:
    return str(repository).split("/", 1)[0]


def _side_tls(side: str, repository: str) -> list[str]:
    """skopeo copy's TLS options (`src` or `dest`) for one of its two registries."""
    return [option.replace("--", f"--{side}-", 1) if option.startswith("--") else option for option in _tls(repository)]


def tag_digest(repository: str, digest: str, tag: str) -> None:
    """Point `repository:tag` at the manifest `repository@digest`, registry-side (skopeo copies no layer the
    registry already holds, and --preserve-digests refuses to write any other manifest than that digest). An index
    moves whole (--all), under its own digest."""
    source, destination = f"docker://{repository}@{digest}", f"docker://{repository}:{tag}"
    access = registry_of(repository).access
    if not access.tls_verify:
        tls = ["--src-tls-verify=false", "--dest-tls-verify=false"]
    else:
        tls = ["--src-cert-dir", str(access.ca_dir), "--dest-cert-dir", str(access.ca_dir)] if access.ca_dir else []
    with _skopeo_auth(repository) as auth:
        result = _skopeo(
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            *tls,
            *auth,
            source,
            destination,
            what=f"tagging {destination}",
        )
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace")
        if refused := _refused(repository, error):
            raise refused
        last = error.strip().splitlines()[-1] if error.strip() else "no output"
        raise ReleaseError(f"cannot point {repository}:{tag} at {digest}: {last}")


def check_pushed(repository: str, tag: str, digest: str, image: str, platform: str = DEFAULT_PLATFORM) -> None:
    """Read the tag back: it must resolve to the digest the push reported, holding the pushed image (for a list:
    as its `platform` image)."""
    remote = remote_image(repository, tag, platform)
    if remote is None or remote.digest != digest or remote.config != image:
        found = f"digest {remote.digest} (image {remote.config})" if remote else "nothing"
        raise ReleaseError(
            f"after the push {repository}:{tag} resolves to {found}, expected digest {digest} (image {image}): "
            f"something else writes to this repository; check who, then run the release again"
        )


def check_platforms(repository: str, tag: str, digest: str, platforms: Mapping[str, str]) -> None:
    """Read the tag back: it must resolve to `digest` and hold exactly these {platform: image manifest digest} (the
    platforms as `linux/arm64` or model.flavours.Platform)."""
    platforms = {platform_name(parse_platform(name)): manifest for name, manifest in platforms.items()}
    remote = remote_platforms(repository, tag)
    if remote is None or remote.digest != digest or remote.platforms != platforms:
        found = f"{remote.digest} ({_listed(remote.platforms)})" if remote else "nothing"
        raise ReleaseError(
            f"{repository}:{tag} resolves to {found}, expected {digest} ({_listed(platforms)}): something else "
            f"writes to this repository; check who, then run the release again"
        )


def _listed(platforms: dict[str, str]) -> str:
    return ", ".join(f"{name} {digest}" for name, digest in platforms.items()) or "no image"


def labels(repository: str, digest: str) -> dict[str, str]:
    """The image labels of `repository@digest`, read from the registry (what a user's client sees)."""
    name = f"{repository}@{digest}"
    with _skopeo_auth(repository) as auth:
        result = _skopeo("inspect", *_tls(repository), *auth, f"docker://{name}", what=f"reading {name}")
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace").strip()
        raise ReleaseError(f"cannot read {name}: {error.splitlines()[-1] if error else 'no output'}")
    return json.loads(result.stdout).get("Labels") or {}


@contextmanager
def authenticated(docker: Docker, repository: str) -> Iterator[Docker]:
    """`docker` with the registry's own login in a private DOCKER_CONFIG for the call (itself when it has none)."""
    with auth_dir(registry_of(repository)) as directory:
        yield docker.with_env(DOCKER_CONFIG=str(directory)) if directory else docker
