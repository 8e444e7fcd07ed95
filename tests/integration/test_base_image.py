"""The pipeline's own Debian base: debootstrap checks the archive's signature against Debian's keyring, and anything
short of a good signature is a refusal in one line, before anything is tagged."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ac_release.building.baseimage import KEYRING, _sources, _tag, ensure_debian_base
from ac_release.clients.docker import Docker
from ac_release.core.errors import ReleaseError
from ac_release.model.config import docker_command
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
    """The real debootstrap with Debian's keyring, every run (about a minute): a copy of the keyring at a path of this
    test is another input, so a tag no earlier run (nor the release of this session) has built."""
    require(KEYRING.is_file(), f"{KEYRING} (debian-archive-keyring)")
    moved = tmp_path / "debian-archive-keyring.gpg"
    shutil.copy(KEYRING, moved)
    tag = _tag("bullseye", moved)
    assert tag != _tag("bullseye", KEYRING)
    assert docker.image_id(tag) is None
    logged: list[str] = []
    try:
        assert ensure_debian_base(docker, "bullseye", log=logged.append, keyring=moved) == tag
        assert logged == [f"building base image {tag} from Debian's archive (once per input change)"]
        assert docker.image_id(tag)
        # debootstrap's tree, imported as one layer, with the recipe's sources and Debian's Python
        history = docker("history", "--format", "{{.Comment}}", tag, capture=True).stdout.decode()
        assert history == "Imported from -\n"
        script = "python3 --version && cat /etc/apt/sources.list"
        shown = docker("run", "--rm", tag, "sh", "-c", script, capture=True).stdout.decode()
        assert shown == "Python 3.9.2\n" + _sources("bullseye")
        # built once: the next call finds the tag
        assert ensure_debian_base(docker, "bullseye", log=logged.append, keyring=moved) == tag
        assert len(logged) == 1
    finally:
        docker("image", "rm", tag, capture=True, check=False)
    assert docker.image_id(tag) is None
