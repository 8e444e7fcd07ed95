"""The local Rekor log's file (entries.jsonl): appends are whole lines or nothing, and a torn last line left by a
crash is cut off at startup while a damaged line before it refuses the start."""

from __future__ import annotations

import logging
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ac_release.core.errors import ReleaseError
from ac_release.services import sigstore_local_rekor as rekor
from tests.helpers import hashedrekord_entry

TREE_ID = 42


def _body(text: str) -> bytes:
    """A canonical hashedrekord body, signed by a throwaway key."""
    return rekor.canonicalize_proposed_entry(hashedrekord_entry(text))


@pytest.fixture
def signing_key():
    return ec.generate_private_key(ec.SECP256R1())


def _log_with_entries(log_dir, signing_key, count: int) -> rekor.TransparencyLog:
    log = rekor.TransparencyLog(log_dir, signing_key, TREE_ID)  # entry 0: the log's own start
    for number in range(count):
        log.append(_body(f"artifact {number}"))
    return log


def test_a_torn_last_line_is_cut_off_and_every_complete_entry_kept(tmp_path, signing_key, caplog):
    log = _log_with_entries(tmp_path, signing_key, 2)
    entries = tmp_path / "entries.jsonl"
    complete = entries.read_bytes()
    root = log.log_info()["rootHash"]
    with entries.open("ab") as out:  # a kill -9 in the middle of the next append
        out.write(b'{"body": "eyJhcGlWZXJzaW9uIjog')
    with caplog.at_level(logging.WARNING, logger=rekor.__name__):
        reopened = rekor.TransparencyLog(tmp_path, signing_key, TREE_ID)
    assert reopened.size == 3
    assert reopened.log_info()["rootHash"] == root
    assert entries.read_bytes() == complete
    assert [r.getMessage() for r in caplog.records] == [
        f"rekor log {entries}: cut off a torn last line (30 bytes, where entry 3 was being written; it was never "
        "answered to a client); kept entries 0-2"
    ]
    reopened.append(_body("after the crash"))
    assert rekor.TransparencyLog(tmp_path, signing_key, TREE_ID).size == 4


def test_a_last_line_of_zeros_is_cut_off(tmp_path, signing_key):
    """A crash after the file grew but before its data reached the disk leaves NUL bytes, newline or not."""
    _log_with_entries(tmp_path, signing_key, 1)
    entries = tmp_path / "entries.jsonl"
    complete = entries.read_bytes()
    entries.write_bytes(complete + b"\0" * 40 + b"\n")
    assert rekor.TransparencyLog(tmp_path, signing_key, TREE_ID).size == 2
    assert entries.read_bytes() == complete


@pytest.mark.parametrize("damage", [b"not json", b'{"logIndex": 1}', b"\0\0\0"])
def test_a_damaged_line_before_the_last_refuses_to_start(tmp_path, signing_key, damage):
    _log_with_entries(tmp_path, signing_key, 2)
    entries = tmp_path / "entries.jsonl"
    lines = entries.read_bytes().splitlines(keepends=True)
    lines[1] = damage + b"\n"
    entries.write_bytes(b"".join(lines))
    before = entries.read_bytes()
    with pytest.raises(ReleaseError) as error:
        rekor.TransparencyLog(tmp_path, signing_key, TREE_ID)
    assert str(error.value) == (
        f"rekor log {entries}: line 2 is not a log entry and is not the last line, so no crash left it: the log "
        "is corrupted; restore the file from a backup (the service does not start on it)"
    )
    assert entries.read_bytes() == before


def test_an_entry_out_of_order_refuses_to_start(tmp_path, signing_key):
    _log_with_entries(tmp_path, signing_key, 2)
    entries = tmp_path / "entries.jsonl"
    lines = entries.read_bytes().splitlines(keepends=True)
    entries.write_bytes(lines[0] + lines[2] + lines[1])
    with pytest.raises(
        ReleaseError, match=r"^rekor log .*: line 2 holds entry 2, expected entry 1: the log is corrupted"
    ):
        rekor.TransparencyLog(tmp_path, signing_key, TREE_ID)


def test_an_append_that_fails_leaves_no_line_behind(tmp_path, signing_key, monkeypatch):
    """An append the disk refuses (fsync fails, disk full) is not answered and leaves the file as it was: the next
    append gets the same index and the log reads back."""
    log = _log_with_entries(tmp_path, signing_key, 1)
    entries = tmp_path / "entries.jsonl"
    before = entries.read_bytes()

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        log.append(_body("refused by the disk"))
    monkeypatch.undo()
    assert entries.read_bytes() == before
    assert log.append(_body("next"))  # index 2, once
    assert rekor.TransparencyLog(tmp_path, signing_key, TREE_ID).size == 3


def test_an_append_is_one_write_of_a_whole_line(tmp_path, signing_key, monkeypatch):
    log = _log_with_entries(tmp_path, signing_key, 0)
    writes: list[bytes] = []
    real_write = os.write

    def recording_write(fd, data):
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", recording_write)
    log.append(_body("one"))
    assert len(writes) == 1 and writes[0].endswith(b"\n") and writes[0].count(b"\n") == 1
