"""How the clients the pipeline runs trust a target's own CA and get registry credentials, without touching the
machine's trust store, an image, a command line or a log.

- Python (urllib here, requests inside twine and pip) gets a bundle: the machine's CAs plus the target's CA. The
  bundle goes to child processes in REQUESTS_CA_BUNDLE/SSL_CERT_FILE (these machines export their own values of
  those variables, which would otherwise override `--cert`), and to urllib as an SSL context.
- skopeo and docker get registry credentials from an auth file written 0600 into a private temporary directory for
  the one call (`--authfile`, DOCKER_CONFIG), removed afterwards. Those directories live under one parent of this
  user's (0700), each named after the process that made it: one a killed process left is removed by the next that
  makes a login or takes a run lock (remove_abandoned_logins).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ac_release.clients import proc
from ac_release.core.errors import ReleaseError
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


@contextmanager
def trusting(ca_file: Path | None) -> Iterator[None]:
    """For the block, this process's own HTTPS clients (requests, urllib: sigstore-python, which takes no session to
    hand a CA to) trust the machine's CAs and `ca_file` too; nothing changes without one."""
    if ca_file is None:
        yield
        return
    saved = {name: os.environ.get(name) for name in CA_ENV}
    os.environ.update(ca_env(ca_file))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
    parent = logins_parent()
    remove_abandoned_logins(parent)
    pid = os.getpid()
    with tempfile.TemporaryDirectory(prefix=f"{pid}.{_started(pid)}.", dir=parent) as directory:  # mode 0700
        atomic_write_bytes(Path(directory) / "config.json", _auth_json(registry), mode=0o600)
        yield Path(directory)


def logins_parent() -> Path:
    """`<tmp>/ac-registry-auth-<uid>`: made 0700, and refused unless it is this user's directory that no one else
    may enter (another user could have made it first in the shared /tmp)."""
    parent = _logins_path()
    try:
        parent.mkdir(mode=0o700)
    except FileExistsError:
        pass
    if not _private(parent):
        raise ReleaseError(
            f"{parent} is not a private directory of uid {os.geteuid()} (mode 0700): registry logins are kept there; "
            "remove it"
        )
    return parent


def _logins_path() -> Path:
    return Path(tempfile.gettempdir()) / f"ac-registry-auth-{os.geteuid()}"


def _private(directory: Path) -> bool:
    try:
        status = os.lstat(directory)
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(status.st_mode) and status.st_uid == os.geteuid() and not stat.S_IMODE(status.st_mode) & 0o077


def remove_abandoned_logins(parent: Path | None = None) -> list[Path]:
    """Remove the login directories whose process is gone (killed before it could remove them). Without `parent`,
    in this user's parent when there is one (one that is not private is refused when a login is made there)."""
    parent = parent or _logins_path()
    if not _private(parent):
        return []
    removed = []
    for directory in parent.iterdir():
        pid, started = (directory.name.split(".") + ["", ""])[:2]
        if not (pid.isdigit() and _started(int(pid)) == started):  # gone, or the pid is another process's now
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


def _started(pid: int) -> str | None:
    """When the process started (clock ticks since boot, /proc/<pid>/stat's 22nd field): a pid with its start time
    names one process, even once the pid is reused."""
    fields = proc.stat_fields(pid)
    return fields[19] if fields else None


@contextmanager
def registry_env(registry: Registry) -> Iterator[dict[str, str]]:
    """Environment entries for a Go registry client (cosign, syft: go-containerregistry) reaching `registry`, for
    the one call: SSL_CERT_FILE naming the bundle of the machine's CAs plus the target's CA (Go reads it on Linux),
    and DOCKER_CONFIG naming a private directory with the registry's login ({} for each it does not need)."""
    access = registry.access
    env = ca_env(access.ca_dir / "ca.crt") if access.tls_verify and access.ca_dir is not None else {}
    with auth_dir(registry) as directory:
        yield env | ({"DOCKER_CONFIG": str(directory)} if directory else {})
