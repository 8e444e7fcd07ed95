"""The pipeline's own Debian base: debootstrap checks the archive's signature against Debian's keyring, and anything
short of a good signature is a refusal in one line, before anything is tagged."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ac_release.baseimage import KEYRING, _tag, ensure_debian_base
from ac_release.config import docker_command
from ac_release.docker import Docker
from ac_release.errors import ReleaseError
from tests.integration.conftest import require

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
    assert message.startswith(f"debootstrap bullseye (archive checked against {empty}) failed (exit 1): E: Release ")
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
    """The real debootstrap with Debian's keyring (about a minute when not built yet); a copy of the same keyring
    at another path is another input, so another tag."""
    require(KEYRING.is_file(), f"{KEYRING} (debian-archive-keyring)")
    tag = ensure_debian_base(docker, "bullseye", log=lambda _: None)
    assert docker.image_id(tag)
    python = docker("run", "--rm", tag, "python3", "--version", capture=True).stdout.decode()
    assert python.startswith("Python 3.9.")
    moved = tmp_path / "debian-archive-keyring.gpg"
    shutil.copy(KEYRING, moved)
    assert _tag("bullseye", moved) != tag == _tag("bullseye", KEYRING)
