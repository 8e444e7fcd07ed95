"""debootstrap's download failures (the mirror or the network did not answer) are tried again from an empty root; a
signature the keyring refuses is final at once."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from ac_release.building import baseimage
from ac_release.core.errors import ReleaseError
from ac_release.model.flavours import AMD64, ARM64

WHAT = "debootstrap bullseye (archive checked against k.gpg)"
NOT_FETCHED = "E: Failed getting release file http://deb.debian.org/debian/dists/bullseye/Release"
UNSIGNED = "E: Release signed by unknown key (key id 0E98404D386FA1D9)"


@pytest.fixture
def debootstrap(monkeypatch, tmp_path):
    """A debootstrap that answers each call with the next of `outcomes` and leaves a partial root behind."""
    calls = []
    monkeypatch.setattr(baseimage, "RETRY_DELAY", 0.0)

    def run(outcomes):
        def fake(argv, **kwargs):
            rootfs = tmp_path / "rootfs"
            calls.append(sorted(p.name for p in rootfs.iterdir()) if rootfs.exists() else None)
            rootfs.mkdir(exist_ok=True)
            (rootfs / f"partial-{len(calls)}").write_text("")
            returncode, stderr = outcomes[len(calls) - 1]
            return subprocess.CompletedProcess(argv, returncode, "", stderr)

        monkeypatch.setattr(baseimage.subprocess, "run", fake)
        baseimage._debootstrap(["debootstrap"], WHAT, tmp_path / "rootfs")

    return run, calls


def test_a_download_that_did_not_arrive_is_tried_again_from_an_empty_root(debootstrap):
    run, calls = debootstrap
    run([(1, f"I: Retrieving InRelease\n{NOT_FETCHED}\n"), (0, "")])
    assert calls == [None, None]  # the second try started with no partial root left


def test_three_downloads_that_did_not_arrive_fail_in_one_line(debootstrap):
    run, calls = debootstrap
    with pytest.raises(ReleaseError) as error:
        run([(1, NOT_FETCHED)] * 3)
    assert str(error.value) == f"{WHAT} failed after 3 attempts: exit 1: {NOT_FETCHED}"
    assert len(calls) == 3


def test_a_signature_the_keyring_refuses_is_final_at_once(debootstrap):
    run, calls = debootstrap
    with pytest.raises(ReleaseError) as error:
        run([(1, f"{UNSIGNED}\nE: advice\n"), (0, "")])
    assert str(error.value) == f"{WHAT} failed (exit 1): {UNSIGNED}"
    assert len(calls) == 1


# --- one base per platform: the key, debootstrap's argv, emulation, the import's platform, unserved updates ---

KEYRING = "k.gpg"


def test_the_key_names_the_arch_and_hashes_the_platform(tmp_path):
    keyring = tmp_path / KEYRING
    keyring.write_bytes(b"keys")
    amd64, arm64 = (baseimage._tag("bullseye", keyring, platform) for platform in (AMD64, ARM64))
    assert re.fullmatch(r"ac-release/debian:bullseye-amd64-[0-9a-f]{12}", amd64)
    assert re.fullmatch(r"ac-release/debian:bullseye-arm64-[0-9a-f]{12}", arm64)
    assert amd64.rsplit("-", 1)[1] != arm64.rsplit("-", 1)[1]  # the platform is an input, not only the name
    assert baseimage._tag("bullseye", keyring) == amd64 == baseimage._tag("bullseye", keyring, AMD64)  # the default
    assert baseimage._tag("bookworm", keyring, ARM64) != arm64


def test_debootstrap_is_one_stage_with_the_platforms_arch(tmp_path):
    rootfs = tmp_path / "rootfs"
    common = ["--variant=minbase", f"--keyring={KEYRING}", "--force-check-gpg"]
    include = "--include=ca-certificates,python3,python3-venv"
    for platform, arch in ((AMD64, "amd64"), (ARM64, "arm64")):
        argv = baseimage._debootstrap_argv("bullseye", rootfs, Path(KEYRING), platform)
        assert argv == [
            "debootstrap",
            f"--arch={arch}",
            *common,
            include,
            "bullseye",
            str(rootfs),
            "http://deb.debian.org/debian",
        ]
        assert "--foreign" not in argv  # binfmt's F flag runs the second stage's arm64 binaries in the chroot


class Engine:
    """A Docker engine that has no base yet, builds what it is asked to, and says `made` of the image's platform."""

    def __init__(self, made: str = "linux/arm64"):
        self.made, self.calls = made, []

    def image_id(self, ref):
        return None

    def __call__(self, *args, **kwargs):
        self.calls.append(args)
        out = self.made if args[:2] == ("image", "inspect") else ""
        return subprocess.CompletedProcess(args, 0, out.encode(), b"")


def test_an_arm64_base_needs_emulation_before_anything_is_downloaded(monkeypatch, tmp_path):
    keyring = tmp_path / KEYRING
    keyring.write_bytes(b"keys")
    real = baseimage.require_buildable
    monkeypatch.setattr(baseimage, "require_buildable", lambda p: real(p, binfmt_dir=tmp_path, machine="x86_64"))
    monkeypatch.setattr(baseimage.subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a}"))
    engine = Engine()
    with pytest.raises(ReleaseError) as error:
        baseimage.ensure_debian_base(engine, "bookworm", log=pytest.fail, keyring=keyring, platform=ARM64)
    assert str(error.value) == (
        f"cannot build linux/arm64 images on this machine: no arm64 emulation ({tmp_path}/qemu-aarch64 is absent); "
        "run .ci/enable-arm64-emulation (exit 3: this kernel refuses it), or build the others only with "
        "platforms = [...] in the target of release.toml"
    )
    assert engine.calls == []


def test_the_tree_is_imported_by_buildkit_with_the_platform_and_checked(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc/os-release").write_text("ID=debian\n")
    engine = Engine("linux/arm64")
    baseimage._import(engine, rootfs, tmp_path / "context", "ac-release/debian:t", ARM64, {})
    build, inspect = engine.calls
    context = str(tmp_path / "context")
    assert build == ("build", "--platform", "linux/arm64", "--progress=plain", "--tag", "ac-release/debian:t", context)
    assert (
        tmp_path / "context/Dockerfile"
    ).read_text() == 'FROM scratch\nADD rootfs.tar /\nENV LANG=C.UTF-8\nCMD ["bash"]\n'
    with tarfile.open(tmp_path / "context/rootfs.tar") as tar:
        assert "./etc/os-release" in tar.getnames()
    assert inspect == ("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", "ac-release/debian:t")
    assert not rootfs.exists()  # the tar holds it


def test_an_image_of_another_platform_is_removed_and_refused(tmp_path):
    (tmp_path / "rootfs").mkdir()
    engine = Engine("linux/amd64")  # what `docker import --platform linux/arm64` gives on engine 20.10
    with pytest.raises(ReleaseError) as error:
        baseimage._import(engine, tmp_path / "rootfs", tmp_path / "context", "ac-release/debian:t", ARM64, {})
    assert str(error.value) == (
        "the base ac-release/debian:t was built as a linux/amd64 image, not linux/arm64: the engine ignored "
        "--platform (BuildKit is needed: DOCKER_BUILDKIT=1 with Debian's docker.io CLI)"
    )
    assert engine.calls[-1] == ("image", "rm", "ac-release/debian:t")


SECURITY = "http://deb.debian.org/debian-security/pool/updates/main"
UNSERVED = [
    f"{SECURITY}/e/expat/libexpat1_2.2.10-2+deb11u7_arm64.deb",
    f"{SECURITY}/g/glibc/libc6_2.31-13+deb11u14_arm64.deb",
    f"{SECURITY}/o/openssl/libssl1.1_1.1.1w-0+deb11u8_arm64.deb",
]


def test_updates_the_archive_does_not_serve_are_a_refusal_naming_them(monkeypatch):
    """bullseye-security's arm64 pool answered 404 on 2026-12-07 (its index served): never a base without them."""
    apt = "".join(f"E: Failed to fetch {url}  404  Not Found [IP: 151.101.2.132 80]\n" for url in UNSERVED)
    apt += "E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?\n"
    calls = []
    monkeypatch.setattr(
        baseimage.subprocess,
        "run",
        lambda argv, **k: calls.append(argv) or subprocess.CompletedProcess(argv, 100, "", apt),
    )
    with pytest.raises(ReleaseError) as error:
        baseimage._run(
            ["chroot", "rootfs", "sh", "-c", "apt-get upgrade"], "security updates of the bullseye arm64 base"
        )
    assert str(error.value) == (
        "security updates of the bullseye arm64 base failed: the archive lists 3 package file(s) it does not serve "
        f"(404 Not Found: {UNSERVED[0]} {UNSERVED[1]} and 1 more); a base is never built without them: try again "
        'when the mirror serves them, or leave this platform out (platforms = ["linux/amd64"] in the target of '
        "release.toml)"
    )
    assert len(calls) == 1  # final: a mirror that does not serve a file is not a download to try again in seconds


def test_a_security_suite_the_archive_does_not_serve_is_returned_to_build_without_it_and_nothing_else_is(monkeypatch):
    """The base is then built from the point release and -updates, labelled (ensure_debian_base); a 404 of any other
    file is still a refusal."""
    apt = "".join(f"E: Failed to fetch {url}  404  Not Found [IP: 151.101.2.132 80]\n" for url in UNSERVED)
    monkeypatch.setattr(baseimage.subprocess, "run", lambda argv, **k: subprocess.CompletedProcess(argv, 100, "", apt))
    upgrade = ["chroot", "rootfs", "sh", "-c", "apt-get upgrade"]
    assert baseimage._run(upgrade, "security updates", unserved_ok=baseimage.DEBIAN_SECURITY_MIRROR) == UNSERVED
    main = "http://deb.debian.org/debian/pool/main/b/bash/bash_5.1-2+deb11u1_arm64.deb"
    apt += f"E: Failed to fetch {main}  404  Not Found [IP: 151.101.2.132 80]\n"
    with pytest.raises(ReleaseError, match="lists 4 package file"):
        baseimage._run(upgrade, "security updates", unserved_ok=baseimage.DEBIAN_SECURITY_MIRROR)


def test_a_base_built_without_its_security_suite_warns_on_every_use():
    class Labelled:
        def __call__(self, *args, capture=False, check=True):
            label = {baseimage.SECURITY_LABEL: "not applied: the pool was not served"}
            return subprocess.CompletedProcess(args, 0, json.dumps(label).encode(), b"")

    lines = []
    baseimage.warn_unpatched(Labelled(), "ac-release/debian:bullseye-arm64-0123456789ab", lines.append)
    assert lines == [
        "WARNING: base ac-release/debian:bullseye-arm64-0123456789ab: security updates not applied: the pool was not "
        "served; remove it (docker image rm ac-release/debian:bullseye-arm64-0123456789ab) to build it again"
    ]


def test_the_commands_of_a_base_build_get_no_host_temporary_directory(monkeypatch):
    """A nox session sets TMPDIR to a directory of the host, which does not exist inside the new tree: apt in the
    chroot then failed with exit 100 (the gate's reference release, once the unit tests ran beside it)."""
    from ac_release.building.baseimage import _run, chroot_env

    monkeypatch.setenv("TMPDIR", "/no/such/host/directory")
    assert chroot_env({"TMPDIR": "/x", "TMP": "/x", "TEMP": "/x", "PATH": "/bin", "LANG": "C"}) == {
        "PATH": "/bin",
        "LANG": "C",
    }
    assert _run(["sh", "-c", 'test -z "$TMPDIR$TMP$TEMP"'], "a step") == []


def test_a_failed_step_names_apts_error_not_its_dev_pts_complaint():
    from ac_release.building.baseimage import _run
    from ac_release.core.errors import ReleaseError

    script = (
        "echo 'E: Can not write log (Is /dev/pts mounted?) - posix_openpt (19: No such device)' >&2; "
        "echo 'E: Could not create temporary file for /tmp/x' >&2; exit 100"
    )
    with pytest.raises(ReleaseError) as error:
        _run(["sh", "-c", script], "security updates of the bullseye amd64 base")
    assert str(error.value) == (
        "security updates of the bullseye amd64 base failed (exit 100): E: Could not create temporary file for /tmp/x"
    )
