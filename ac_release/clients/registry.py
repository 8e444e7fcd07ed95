"""What an OCI registry holds, read with skopeo; images pushed with the Docker CLI.

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ac_release.clients import faults, proc
from ac_release.clients.docker import Docker
from ac_release.clients.retry import Transient, retry
from ac_release.clients.tlsclients import auth_dir
from ac_release.core.errors import ReleaseError
from ac_release.model.config import Registry, RegistryAccess, is_loopback_host, is_loopback_registry

_LISTS = ("application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json")
_PLATFORM = {"os": "linux", "architecture": "amd64"}  # the platform the pipeline builds and tests
_TRANSIENT = ("connection refused", "connection reset", "timeout", "503 ", "502 ", "504 ", "i/o timeout", "EOF")
_UNAUTHORIZED = ("unauthorized", "authentication required", "401 ")


@dataclass(frozen=True)
class RemoteImage:
    digest: str  # manifest digest: what `repo@digest` pulls
    config: str  # config digest: the image id the Docker engine shows


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


def _inspect_raw(repository: str, reference: str) -> bytes | None:
    """The raw manifest `repository:tag` or `repository@digest` names, or None when it does not exist."""
    separator = "@" if reference.startswith("sha256:") else ":"
    name = f"{repository}{separator}{reference}"
    with _skopeo_auth(repository) as auth:
        result = _skopeo("inspect", "--raw", *_tls(repository), *auth, f"docker://{name}", what=f"reading {name}")
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace")
        if refused := _refused(repository, error):
            raise refused
        if "manifest unknown" in error or "not found" in error.lower() or "name unknown" in error.lower():
            return None
        raise ReleaseError(f"cannot read {name}: {error.strip().splitlines()[-1] if error.strip() else 'no output'}")
    return result.stdout


def remote_image(repository: str, tag: str) -> RemoteImage | None:
    """The image `repository:tag` points to, or None when the tag does not exist. For a multi-arch list (Docker
    manifest list, OCI index) the digest is the list's and the config is its linux/amd64 image's."""
    raw = _inspect_raw(repository, tag)
    if raw is None:
        return None
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    manifest = json.loads(raw)
    if manifest.get("mediaType") in _LISTS or "manifests" in manifest:
        entry = next(
            (
                m
                for m in manifest.get("manifests", ())
                if {k: m.get("platform", {}).get(k) for k in _PLATFORM} == _PLATFORM
            ),
            None,
        )
        if entry is None:
            platforms = sorted(
                f"{m.get('platform', {}).get('os')}/{m.get('platform', {}).get('architecture')}"
                for m in manifest.get("manifests", ())
            )
            raise ReleaseError(
                f"{repository}:{tag} is a multi-arch list without a linux/amd64 image "
                f"(it holds {', '.join(platforms) or 'nothing'}): the release compares linux/amd64 images only"
            )
        raw = _inspect_raw(repository, entry["digest"])
        if raw is None:
            raise ReleaseError(f"{repository}:{tag} lists {entry['digest']} for linux/amd64, which the registry lacks")
        manifest = json.loads(raw)
    config = manifest.get("config", {}).get("digest") if isinstance(manifest.get("config"), dict) else None
    if not config:
        raise ReleaseError(
            f"{repository}:{tag} is not an image manifest the release can read "
            f"(media type {manifest.get('mediaType', 'unknown')!r}, schema {manifest.get('schemaVersion')})"
        )
    return RemoteImage(digest=digest, config=config)


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


def copy_pushed(source: str, digest: str, repository: str, tag: str, image: str) -> None:
    """`source@digest` (pushed and read back) to `repository:tag` of another registry, registry to registry: skopeo
    sends the compressed layers as they are, where `docker push` compresses each layer again for every registry.
    --preserve-digests refuses to write any other manifest than `digest`; the tag is then read back like a push."""
    origin, destination = f"docker://{source}@{digest}", f"docker://{repository}:{tag}"
    with _skopeo_auth(source) as source_auth, _skopeo_auth(repository) as auth:
        result = _skopeo(
            "copy",
            "--quiet",
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
    check_pushed(repository, tag, digest, image)


def _host(repository: str) -> str:
    return str(repository).split("/", 1)[0]


def _side_tls(side: str, repository: str) -> list[str]:
    """skopeo copy's TLS options (`src` or `dest`) for one of its two registries."""
    return [option.replace("--", f"--{side}-", 1) if option.startswith("--") else option for option in _tls(repository)]


def tag_digest(repository: str, digest: str, tag: str) -> None:
    """Point `repository:tag` at the manifest `repository@digest`, registry-side (skopeo copies no layer the
    registry already holds, and --preserve-digests refuses to write any other manifest than that digest)."""
    source, destination = f"docker://{repository}@{digest}", f"docker://{repository}:{tag}"
    access = registry_of(repository).access
    if not access.tls_verify:
        tls = ["--src-tls-verify=false", "--dest-tls-verify=false"]
    else:
        tls = ["--src-cert-dir", str(access.ca_dir), "--dest-cert-dir", str(access.ca_dir)] if access.ca_dir else []
    with _skopeo_auth(repository) as auth:
        result = _skopeo(
            "copy", "--quiet", "--preserve-digests", *tls, *auth, source, destination, what=f"tagging {destination}"
        )
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace")
        if refused := _refused(repository, error):
            raise refused
        last = error.strip().splitlines()[-1] if error.strip() else "no output"
        raise ReleaseError(f"cannot point {repository}:{tag} at {digest}: {last}")


def check_pushed(repository: str, tag: str, digest: str, image: str) -> None:
    """Read the tag back: it must resolve to the digest the push reported, holding the pushed image."""
    remote = remote_image(repository, tag)
    if remote is None or remote.digest != digest or remote.config != image:
        found = f"digest {remote.digest} (image {remote.config})" if remote else "nothing"
        raise ReleaseError(
            f"after the push {repository}:{tag} resolves to {found}, expected digest {digest} (image {image}): "
            f"something else writes to this repository; check who, then run the release again"
        )


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
