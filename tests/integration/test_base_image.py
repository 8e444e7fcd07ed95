"""The pipeline's own Debian base: debootstrap checks the archive's signature against Debian's keyring, and anything
short of a good signature is a refusal in one line, before anything is tagged. One base per platform, linux/arm64
under emulation (qemu-aarch64 registered by .ci/enable-arm64-emulation): minutes, built once per input change."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from datetime import datetime

import pytest

from ac_release.building.baseimage import KEYRING, SECURITY_LABEL, _sources, _tag, ensure_debian_base
from ac_release.clients.docker import Docker
from ac_release.clients.platforms import unavailable
from ac_release.core.errors import ReleaseError
from ac_release.model.config import docker_command
from ac_release.model.flavours import AMD64, ARM64
from tests.integration.conftest import SESSION_STARTED, require

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def docker() -> Docker:
    argv = docker_command("auto") if shutil.which("docker") or os.path.exists("/usr/bin/docker") else None
    require(argv is not None and subprocess.run([*argv, "info"], capture_output=True).returncode == 0, "Docker")
    require(shutil.which("debootstrap") is not None, "debootstrap")
    return Docker(argv)


def _debian_tags(docker: Docker) -> set[str]:
    out = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "ac-release/debian", capture=True).stdout
    return set(out.decode().split())


def test_a_keyring_that_does_not_sign_the_archive_is_refused(docker, tmp_path):
    empty = tmp_path / "empty.gpg"
    empty.write_bytes(b"")
    before = _debian_tags(docker)
    with pytest.raises(ReleaseError) as error:
        ensure_debian_base(docker, "bullseye", log=lambda _: None, keyring=empty)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        f"debootstrap bullseye amd64 (archive checked against {empty}) failed (exit 1): E: Release "
    )
    assert "signed by unknown key" in message
    assert _debian_tags(docker) == before


def test_a_missing_keyring_is_refused_before_any_download(docker, tmp_path):
    missing = tmp_path / "no-such-keyring.gpg"
    with pytest.raises(ReleaseError) as error:
        ensure_debian_base(docker, "bullseye", log=lambda _: None, keyring=missing)
    assert str(error.value) == (
        f"Debian archive keyring {missing} is missing: run .ci/bootstrap (or apt-get install debian-archive-keyring);"
        " the base is never built from an unchecked archive"
    )


def test_the_base_is_built_from_the_signed_archive_and_tagged_by_its_keyring(docker, tmp_path):
    """The real debootstrap with Debian's keyring in every run: on a fresh machine the shared base this session built
    (about a minute and a half; whichever of this test, a fixture or the reference release missed it first), else a
    copy of the keyring at a path of this test, another input, so a tag no earlier run has built."""
    require(KEYRING.is_file(), f"{KEYRING} (debian-archive-keyring)")
    shared = ensure_debian_base(docker, "bullseye", log=lambda _: None)
    if _created(docker, shared) >= SESSION_STARTED:
        print(f"{shared}: built in this session, checked as it is")
        _check_amd64_base(docker, shared)
        return
    moved = tmp_path / "debian-archive-keyring.gpg"
    shutil.copy(KEYRING, moved)
    tag = _tag("bullseye", moved)
    assert tag != _tag("bullseye", KEYRING) and tag.startswith("ac-release/debian:bullseye-amd64-")
    assert docker.image_id(tag) is None
    logged: list[str] = []
    try:
        assert ensure_debian_base(docker, "bullseye", log=logged.append, keyring=moved) == tag
        assert logged == [f"building base image {tag} from Debian's archive (once per input change)"]
        _check_amd64_base(docker, tag)
        # built once: the next call finds the tag
        assert ensure_debian_base(docker, "bullseye", log=logged.append, keyring=moved) == tag
        assert len(logged) == 1
    finally:
        docker("image", "rm", tag, capture=True, check=False)
    assert docker.image_id(tag) is None


def _check_amd64_base(docker: Docker, tag: str) -> None:
    """debootstrap's tree, imported as one layer by BuildKit (as every platform's), with the recipe's sources and
    Debian's Python."""
    assert docker.image_id(tag)
    history = docker("history", "--format", "{{.CreatedBy}}", tag, capture=True).stdout.decode()
    assert history == 'CMD ["bash"]\nENV LANG=C.UTF-8\nADD rootfs.tar / # buildkit\n'
    assert _platform(docker, tag) == str(AMD64)
    script = "python3 --version && cat /etc/apt/sources.list"
    shown = docker("run", "--rm", tag, "sh", "-c", script, capture=True).stdout.decode()
    assert shown == "Python 3.9.2\n" + _sources("bullseye")


def _created(docker: Docker, tag: str) -> float:
    """The engine's creation time of `tag` (RFC 3339, nanoseconds cut to what Python reads)."""
    created = docker("image", "inspect", "--format", "{{.Created}}", tag, capture=True).stdout.decode().strip()
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", created).replace("Z", "+00:00")).timestamp()


def _platform(docker: Docker, tag: str) -> str:
    return (
        docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", tag, capture=True).stdout.decode().strip()
    )


def test_an_arm64_base_is_a_linux_arm64_image_built_once(docker):
    """Under emulation: about 2 1/4 minutes the first time on 2 cores (3-4x amd64's), kept like the amd64 base of the
    other tests so later runs (and the release's arm64 images) reuse it. bullseye, the shipping lines' distro: its
    security suite's arm64 pool answered 404 on this mirror (2026-12-07), so the base is built from the point release
    and bullseye-updates, says so in its label and warns on every use; a mirror that serves the suite gives a base
    with it (the label then absent)."""
    require(KEYRING.is_file(), f"{KEYRING} (debian-archive-keyring)")
    require((reason := unavailable(ARM64)) is None, f"arm64 emulation ({reason}; .ci/enable-arm64-emulation)")
    tag = _tag("bullseye", KEYRING, ARM64)
    assert tag.startswith("ac-release/debian:bullseye-arm64-")
    assert tag.rsplit("-", 1)[1] != _tag("bullseye", KEYRING, AMD64).rsplit("-", 1)[1]  # the platform is in the key
    logged: list[str] = []
    started = time.monotonic()
    assert ensure_debian_base(docker, "bullseye", log=logged.append, platform=ARM64) == tag
    built = any(line.startswith("building base image") for line in logged)
    print(f"arm64 base {tag}: {'built' if built else 'reused'} in {time.monotonic() - started:.1f} s")
    building = f"building base image {tag} from Debian's archive (once per input change)"
    waited = f"waiting for another process of this machine to build {tag}"  # the gate's reference release, say
    assert [line for line in logged if not line.startswith("WARNING: ")] in ([], [building], [waited])
    image = docker.image_id(tag)
    assert image and _platform(docker, tag) == str(ARM64)
    script = "uname -m && dpkg --print-architecture && python3 -c 'import platform; print(platform.machine())'"
    shown = docker("run", "--rm", "--platform", str(ARM64), tag, "sh", "-c", script, capture=True).stdout.decode()
    assert shown == "aarch64\narm64\naarch64\n"
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", tag, capture=True).stdout)
    unpatched = (labels or {}).get(SECURITY_LABEL)
    sources = docker("run", "--rm", "--platform", str(ARM64), tag, "cat", "/etc/apt/sources.list", capture=True)
    # with bullseye-security when the mirror served it; else without, and the label and a warning say so
    assert sources.stdout.decode() == _sources("bullseye", security=unpatched is None)
    warning = f"WARNING: base {tag}: security updates {unpatched}; remove it (docker image rm {tag}) to build it again"
    assert [line for line in logged if line.startswith("WARNING: ")] == ([warning] if unpatched else [])
    # built once: the next call finds the tag, the same image
    count = len(logged)
    assert ensure_debian_base(docker, "bullseye", log=logged.append, platform=ARM64) == tag
    assert logged[count:] == ([warning] if unpatched else []) and docker.image_id(tag) == image
