"""Debian's archive as the images know it: its mirrors, the keys that sign it, the suites a distro takes packages
from, and a platform's architecture. The base image build (debootstrap, the images' sources.list) and the images'
security audit read the same ones, so that the audit compares an image with the suites it was built from."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ac_release.core.errors import ReleaseError
from ac_release.model.flavours import Platform

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# Debian's package debian-archive-keyring (installed by .ci/bootstrap): the keys that sign the archive's Release files.
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")

_CODENAME = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Suite:
    """One suite of the archive (`bullseye-security`) and the mirror that serves it."""

    name: str
    mirror: str

    @property
    def security(self) -> bool:
        return self.name.endswith("-security")

    def __str__(self) -> str:
        return self.name


def suites(distro: str) -> tuple[Suite, ...]:
    """The suites an image of `distro` (a codename: bullseye) installs from, in apt's sources.list order: the point
    release, its updates, its security updates."""
    if not _CODENAME.fullmatch(distro):
        raise ReleaseError(f"{distro!r} is not a Debian codename: name the distro as its images do (e.g. bullseye)")
    return (
        Suite(distro, DEBIAN_MIRROR),
        Suite(f"{distro}-updates", DEBIAN_MIRROR),
        Suite(f"{distro}-security", DEBIAN_SECURITY_MIRROR),
    )


def debian_arch(platform: Platform | str) -> str:
    """Debian's architecture (a Packages index's `binary-<arch>`, an SBOM purl's `arch=`) of an image platform, given
    as a Platform or as written in release.toml (`linux/arm64` -> arm64); an unknown platform is refused."""
    return (platform if isinstance(platform, Platform) else Platform.parse(platform)).debian_arch
