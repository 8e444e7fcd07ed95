"""How the clients the pipeline runs trust a target's own CA and get registry credentials, without touching the
machine's trust store, an image, a command line or a log.

- Python (urllib here, requests inside twine and pip) gets a bundle: the machine's CAs plus the target's CA. The
  bundle goes to child processes in REQUESTS_CA_BUNDLE/SSL_CERT_FILE (these machines export their own values of
  those variables, which would otherwise override `--cert`), and to urllib as an SSL context.
- skopeo and docker get registry credentials from an auth file written 0600 into a private temporary directory for
  the one call (`--authfile`, DOCKER_CONFIG), removed afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ac_release.core.fsutil import atomic_write_bytes
from ac_release.model.config import Registry

CA_ENV = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "PIP_CERT")


def _machine_bundle() -> Path | None:
    """The CA file the machine's clients use now: what its environment names, else OpenSSL's default."""
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        if (value := os.environ.get(name)) and Path(value).is_file():
            return Path(value)
    default = ssl.get_default_verify_paths().cafile
    return Path(default) if default and Path(default).is_file() else None


def ca_bundle(ca_file: Path) -> Path:
    """`bundle.pem` beside `ca_file`: the machine's CAs followed by the target's CA (rewritten when either changed)."""
    machine = _machine_bundle()
    content = (machine.read_bytes().rstrip(b"\n") + b"\n" if machine else b"") + ca_file.read_bytes()
    bundle = ca_file.parent.parent / "bundle.pem"
    if not bundle.is_file() or bundle.read_bytes() != content:
        atomic_write_bytes(bundle, content)
    return bundle


def ca_env(ca_file: Path | None) -> dict[str, str]:
    """Environment entries that make a child process trust the machine's CAs and `ca_file` ({} without one)."""
    if ca_file is None:
        return {}
    bundle = str(ca_bundle(ca_file))
    return {name: bundle for name in CA_ENV}


def ssl_context(ca_file: Path | None) -> ssl.SSLContext | None:
    return ssl.create_default_context(cafile=str(ca_bundle(ca_file))) if ca_file is not None else None


def _auth_json(registry: Registry) -> bytes:
    access = registry.access
    assert access.username is not None and access.password is not None
    token = base64.b64encode(f"{access.username}:{access.password.read()}".encode()).decode()
    return json.dumps({"auths": {registry.host: {"auth": token}}}).encode()


@contextmanager
def auth_dir(registry: Registry) -> Iterator[Path | None]:
    """A private directory holding `config.json` with the registry's login (Docker's DOCKER_CONFIG layout, also
    skopeo's --authfile format), or None when the registry has no credentials of its own (`docker login`'s)."""
    if registry.access.username is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="ac-registry-auth-") as directory:  # mode 0700
        atomic_write_bytes(Path(directory) / "config.json", _auth_json(registry), mode=0o600)
        yield Path(directory)


@contextmanager
def registry_env(registry: Registry) -> Iterator[dict[str, str]]:
    """Environment entries for a Go registry client (cosign, syft: go-containerregistry) reaching `registry`, for
    the one call: SSL_CERT_FILE naming the bundle of the machine's CAs plus the target's CA (Go reads it on Linux),
    and DOCKER_CONFIG naming a private directory with the registry's login ({} for each it does not need)."""
    access = registry.access
    env = ca_env(access.ca_dir / "ca.crt") if access.tls_verify and access.ca_dir is not None else {}
    with auth_dir(registry) as directory:
        yield env | ({"DOCKER_CONFIG": str(directory)} if directory else {})
