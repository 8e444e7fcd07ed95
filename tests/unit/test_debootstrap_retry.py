"""debootstrap's download failures (the mirror or the network did not answer) are tried again from an empty root; a
signature the keyring refuses is final at once."""

from __future__ import annotations

import subprocess

import pytest

from ac_release.building import baseimage
from ac_release.core.errors import ReleaseError

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
