"""`up` holds the services' lock for its whole start: two at once (two runs needing the services) end with one process
per service, both succeeding (the second waits, then finds them running)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ac_release.model.config import load_settings
from ac_release.services.manager import LocalServices
from tests.helpers import REPO, write_config

pytestmark = pytest.mark.integration

UP = (
    "import sys; from pathlib import Path; from ac_release.model.config import load_settings; "
    "from ac_release.services.manager import LocalServices\n"
    "LocalServices(load_settings(Path(sys.argv[1])).services).up(log=print, timeout=60)\n"
)


def _processes_running(argv: list[str]) -> list[int]:
    """The pids whose command line runs this service (its arguments name its own config and data); a server's
    workers too."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().rstrip(b"\0").decode(errors="replace").split("\0")
        except OSError:
            continue
        if command[1:] == argv[1:]:
            found.append(int(entry.name))
    return found


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except ProcessLookupError:
        return None


def test_two_concurrent_ups_start_each_service_once_and_both_succeed(tmp_path):
    config = write_config(tmp_path)
    services = LocalServices(load_settings(config).services)
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", UP, str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        for _ in range(2)
    ]
    try:
        outputs = [start.communicate(timeout=180)[0] for start in starts]
        assert [start.returncode for start in starts] == [0, 0], outputs
        for service in services.services():
            started_sessions = {_session(pid) for pid in _processes_running(service.argv)}  # each start, its own
            assert started_sessions == {services.supervisor.pid(service)}, (service.name, started_sessions, outputs)
            assert services.supervisor.runs(service)
        started = [line for output in outputs for line in output.splitlines() if " up at " in line]
        assert len(started) == len(services.services()), outputs  # each started once, by one of the two
    finally:
        for start in starts:
            if start.poll() is None:
                start.kill()
                start.wait()
        services.down(log=lambda _: None)
        for service in services.services():  # whatever a racing start left without a pid file
            for session in {_session(pid) for pid in _processes_running(service.argv)} - {None}:
                try:
                    os.killpg(session, signal.SIGKILL)
                except ProcessLookupError:
                    pass
