"""Bounded subprocesses, with real processes: a hang is stopped with its whole process group, in one line."""

from __future__ import annotations

import os
import sys
import time

import pytest

from ac_release import proc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent counts as gone
        return open(f"/proc/{pid}/stat").read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_hang_is_stopped_with_everything_it_started(tmp_path, monkeypatch):
    monkeypatch.setitem(proc.TIMEOUTS, "skopeo", 1)
    monkeypatch.setattr(proc, "_STOP_GRACE", 0.5)
    pids = tmp_path / "pids"
    # a shell that starts a grandchild and hangs, ignoring SIGTERM: only SIGKILL of the group stops both
    script = f"trap '' TERM; sleep 300 & echo $$ $! > {pids}; wait"
    started = time.monotonic()
    with pytest.raises(proc.Timeout) as error:
        proc.run(["/bin/sh", "-c", script, "--password=hunter2"], kind="skopeo")
    assert time.monotonic() - started < 1 + proc._STOP_GRACE + 3
    assert str(error.value) == (
        "sh did not finish within 1 s and was stopped; check the network or the service it talks to, then run again"
    )
    shell, grandchild = map(int, pids.read_text().split())
    time.sleep(0.2)
    assert not _alive(shell) and not _alive(grandchild)
    assert proc.live_groups() == set()


def test_output_lines_stream_and_input_is_fed():
    lines = []
    result = proc.run(
        [sys.executable, "-c", "import sys; print(sys.stdin.read().upper()); print('two', file=sys.stderr)"],
        kind="git",
        input=b"one",
        on_line=lines.append,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"ONE\n", b"two\n")
    assert sorted(lines) == ["ONE\n", "two\n"]


def test_the_command_is_named_by_program_and_subcommand_never_an_option_or_value():
    assert proc.describe([sys.executable, "-m", "twine", "upload", "--username", "u", "a.whl"]) == "twine upload"
    assert proc.describe(["skopeo", "inspect", "--raw", "docker://h/r:t"]) == "skopeo inspect"
    assert proc.describe(["/usr/bin/docker", "push", "127.0.0.1:5000/r:t"]) == "docker push"
    assert proc.describe([sys.executable, "-m", "sigstore", "--trust-config", "x", "sign"]) == "sigstore"
    assert proc.describe(["git", "push", "https://user:token@host/repo"]) == "git push"
