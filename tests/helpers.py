"""Shared test helpers: a release.toml for a test run, free ports."""

from __future__ import annotations

import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(
    directory: Path,
    *,
    pypi_port: int | None = None,
    sigstore_port: int | None = None,
    identity: str = "release@ac-release.local",
    issuer: str = "https://oidc.ac-release.local",
    index_url: str | None = None,
    cache_dir: str = "~/.cache/ac-release",
    instance: str = "local",
    services_dir: Path | None = None,
    password_file: Path | None = None,
    registry_port: int | None = None,
    root: Path = REPO,
) -> Path:
    """A release.toml like the repository's, with its dist, services and ports in `directory`."""
    services_dir = services_dir or directory / "services"
    password_file = password_file or services_dir / "pypi" / "password"
    pypi_port = pypi_port or free_port()
    registry_port = registry_port or free_port()
    sigstore_port = sigstore_port or free_port()
    path = directory / "release.toml"
    path.write_text(f"""
root = "{root}"
default_target = "local"
dist_dir = "{directory / "dist"}"
cache_dir = "{cache_dir}"
extra_ca_bundle = "/etc/ssl/certs/ca-certificates.crt"
docker = "auto"

[services]
dir = "{services_dir}"
host = "127.0.0.1"
pypi_port = {pypi_port}
sigstore_port = {sigstore_port}
registry_port = {registry_port}

[targets.local]
local_services = true
base_images = "debootstrap"
registries = ["127.0.0.1:{registry_port}/astronomer/ap-airflow"]
git_remote = "{services_dir / "git" / "ac-release.git"}"

[targets.local.index]
url = "{index_url or f"http://127.0.0.1:{pypi_port}/"}"
username = "ac-release"
password_file = "{password_file}"

[targets.local.signing]
instance = "{instance}"
identity = "{identity}"
issuer = "{issuer}"
""")
    return path
