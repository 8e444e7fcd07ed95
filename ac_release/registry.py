"""What an OCI registry holds, read with skopeo; images pushed with the Docker CLI.

Loopback registries (the local target's) are plain HTTP; every other registry is TLS with the credentials of the
Docker/skopeo auth file (`docker login`).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass

from ac_release import faults
from ac_release.docker import Docker
from ac_release.errors import ReleaseError
from ac_release.retry import Transient, retry

_TRANSIENT = ("connection refused", "connection reset", "timeout", "503 ", "502 ", "504 ", "i/o timeout", "EOF")


@dataclass(frozen=True)
class RemoteImage:
    digest: str  # manifest digest: what `repo@digest` pulls
    config: str  # config digest: the image id the Docker engine shows


def _tls(repository: str) -> list[str]:
    """Plain HTTP only for a registry on this machine, by its parsed host (`127.evil.com` is not loopback)."""
    from ac_release.config import is_loopback_registry

    return ["--tls-verify=false"] if is_loopback_registry(repository) else []


def _skopeo(*args: str, what: str) -> subprocess.CompletedProcess:
    def attempt() -> subprocess.CompletedProcess:
        result = subprocess.run(["skopeo", *args], capture_output=True)
        error = result.stderr.decode(errors="replace")
        if result.returncode != 0 and any(marker in error for marker in _TRANSIENT):
            raise Transient(error.strip().splitlines()[-1])
        return result

    return retry(attempt, what=what)


def remote_image(repository: str, tag: str) -> RemoteImage | None:
    """The image `repository:tag` points to, or None when the tag does not exist."""
    result = _skopeo(
        "inspect", "--raw", *_tls(repository), f"docker://{repository}:{tag}", what=f"reading {repository}:{tag}"
    )
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace")
        if "manifest unknown" in error or "not found" in error.lower() or "name unknown" in error.lower():
            return None
        raise ReleaseError(
            f"cannot read {repository}:{tag}: {error.strip().splitlines()[-1] if error.strip() else 'no output'}"
        )
    raw = result.stdout
    return RemoteImage(digest="sha256:" + hashlib.sha256(raw).hexdigest(), config=json.loads(raw)["config"]["digest"])


def tags(repository: str) -> list[str]:
    result = _skopeo("list-tags", *_tls(repository), f"docker://{repository}", what=f"listing {repository}")
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace")
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

    def attempt() -> str:
        process = subprocess.Popen(
            [*docker.argv, "push", reference], env=docker.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        faults.reached(f"during:push-{number}")
        output = process.communicate()[0].decode(errors="replace")
        result = subprocess.CompletedProcess(process.args, process.returncode)
        if result.returncode != 0:
            if any(marker in output for marker in _TRANSIENT):
                raise Transient(output.strip().splitlines()[-1])
            raise ReleaseError(f"docker push {reference} failed: {output.strip().splitlines()[-1]}")
        match = re.search(r"digest: (sha256:[0-9a-f]{64})", output)
        if not match:
            raise ReleaseError(f"docker push {reference} printed no digest")
        return match[1]

    digest = retry(attempt, what=f"push of {reference}")
    faults.reached(f"after:push-{number}")
    return digest
