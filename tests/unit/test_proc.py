"""Bounded subprocesses, with real processes: a hang is stopped with its whole process group, in one line."""

from __future__ import annotations

import os
import select
import signal
import sys
import time

import pytest

from ac_release.clients import proc


def _exited(pid: int, within: float = 60) -> bool:
    """Whether the process `pid` (not necessarily our child) has exited, waiting for it up to `within` seconds: a
    zombie waiting for its parent counts as exited. The wait only bounds a failure; it ends as soon as the process
    does."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True  # exited and reaped already
    try:
        return bool(select.select([pidfd], [], [], within)[0])  # a pidfd is readable once its process exited
    finally:
        os.close(pidfd)


def test_a_hang_is_stopped_with_everything_it_started(tmp_path, monkeypatch):
    monkeypatch.setitem(proc.TIMEOUTS, "skopeo", 1)
    monkeypatch.setattr(proc, "_STOP_GRACE", 0.5)
    pids = tmp_path / "pids"
    # a shell that starts a grandchild and hangs, ignoring SIGTERM: only SIGKILL of the group stops both
    script = f"trap '' TERM; sleep 300 & echo $$ $! > {pids}; wait"
    started: list = []
    popen = proc.subprocess.Popen
    monkeypatch.setattr(proc.subprocess, "Popen", lambda *a, **k: started.append(popen(*a, **k)) or started[-1])
    sent: list[tuple[int, int]] = []
    kill = proc._kill
    monkeypatch.setattr(proc, "_kill", lambda group, sig: sent.append((group, sig)) or kill(group, sig))

    def until_the_shell_ignores_term(process):
        """Called within the bound: the signals must reach a shell that set its trap, and a started grandchild."""
        waited = time.monotonic() + 60
        while not (pids.exists() and pids.read_text().endswith("\n")):
            assert time.monotonic() < waited, "the shell never wrote its pids"
            time.sleep(0.01)

    with pytest.raises(proc.Timeout) as error:
        proc.run(
            ["/bin/sh", "-c", script, "--password=hunter2"], kind="skopeo", while_running=until_the_shell_ignores_term
        )
    assert str(error.value) == (
        "sh did not finish within 1 s and was stopped; check the network or the service it talks to, then run again"
    )
    (process,) = started
    # SIGTERM to the whole group first, then, the grace over, SIGKILL: the shell ignored SIGTERM, SIGKILL ended it
    assert sent[:2] == [(process.pid, signal.SIGTERM), (process.pid, signal.SIGKILL)]
    assert set(sent[2:]) <= {(process.pid, signal.SIGKILL)}  # stopped again on the way out: only SIGKILL, a no-op
    assert process.returncode == -signal.SIGKILL
    shell, grandchild = map(int, pids.read_text().split())
    assert shell == process.pid
    assert _exited(shell) and _exited(grandchild)
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
