"""Base images of the pipeline's own, built from Debian's archive when no registry serves official ones.

An image built by debootstrap gets a new id on every run, which would invalidate every layer above it, so each
base is tagged by a hash of its inputs and built once: later runs find the tag and reuse it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from ac_release.docker import Docker
from ac_release.errors import ReleaseError

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# What `python:<py>-slim-<distro>` gives a Dockerfile: a Python with venv, and a CA store.
PACKAGES = ("ca-certificates", "python3", "python3-venv")
RECIPE = "2"  # bump when the recipe below changes in a way the other inputs do not show
REPOSITORY = "ac-release/debian"


def official_base(distro: str, python: str) -> str:
    return f"python:{python}-slim-{distro}"


def _tag(suite: str) -> str:
    inputs = "\n".join([RECIPE, suite, DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR, *PACKAGES])
    return f"{REPOSITORY}:{suite}-{hashlib.sha256(inputs.encode()).hexdigest()[:12]}"


def _sources(suite: str) -> str:
    return (
        f"deb {DEBIAN_MIRROR} {suite} main\n"
        f"deb {DEBIAN_MIRROR} {suite}-updates main\n"
        f"deb {DEBIAN_SECURITY_MIRROR} {suite}-security main\n"
    )


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ReleaseError(f"{what} failed (exit {result.returncode}): {tail[0]}")


def ensure_debian_base(docker: Docker, suite: str, log=print) -> str:
    """Return the tag of the Debian `suite` base image, building it with debootstrap if it is not there yet."""
    tag = _tag(suite)
    if docker.image_id(tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise ReleaseError("debootstrap is not installed: run .ci/bootstrap (or apt-get install debootstrap)")
    log(f"building base image {tag} from Debian's archive (once per input change)")
    with tempfile.TemporaryDirectory(prefix=f"ac-base-{suite}-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(rootfs), DEBIAN_MIRROR],
            f"debootstrap {suite}",
        )
        (rootfs / "etc/apt/sources.list").write_text(_sources(suite))
        _run(
            [
                "chroot",
                str(rootfs),
                "sh",
                "-c",
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq && apt-get clean"
                " && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log",
            ],
            f"security updates of the {suite} base",
        )
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            docker(
                "import",
                "--change",
                "ENV LANG=C.UTF-8",
                "--change",
                'CMD ["bash"]',
                "-",
                tag,
                stdin=tar.stdout,
                capture=True,
            )
        finally:
            tar.stdout.close()
            tar.wait()
    return tag


def base_reference(mode: str, distro: str, python: str) -> str:
    """The reference of a flavour's base image, without building it."""
    if mode == "official":
        return official_base(distro, python)
    if mode == "debootstrap":
        return _tag(distro)
    raise ReleaseError(f"unknown base_images mode {mode!r}: use 'official' or 'debootstrap' in release.toml")


def ensure_base(docker: Docker, mode: str, distro: str, python: str, log=print) -> str:
    """The base image of a flavour: a setting of the target, one code path for both worlds."""
    if mode == "official":
        return official_base(distro, python)
    if mode == "debootstrap":
        return ensure_debian_base(docker, distro, log)
    raise ReleaseError(f"unknown base_images mode {mode!r}: use 'official' or 'debootstrap' in release.toml")
