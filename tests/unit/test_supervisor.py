"""The services' process supervision (services/supervisor.py), on a throwaway HTTP server standing in for a service:
started until it answers, found by its pid file only while that names its command, stopped with its pid file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ac_release.core.errors import ReleaseError
from ac_release.model.config import ServiceRegistry, ServicesSettings
from ac_release.services.ports import free_port
from ac_release.services.supervisor import Service, Supervisor


@pytest.fixture
def supervisor(tmp_path) -> Supervisor:
    settings = ServicesSettings(tmp_path / "services", "127.0.0.1", 1, 2, (ServiceRegistry(3, "a/b"),))
    settings.run_dir.mkdir(parents=True)
    return Supervisor(settings)


def _http_server(port: int, directory) -> Service:
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(directory), str(port)]
    return Service("web", argv, port, "/")


def test_a_service_is_started_until_it_answers_and_stopped_with_its_pid_file(supervisor, tmp_path):
    service = _http_server(free_port(), tmp_path)
    supervisor.start(service, log=lambda _: None, timeout=20)
    try:
        assert supervisor.runs(service) and supervisor.pid(service) == int(supervisor.pid_file(service).read_text())
    finally:
        assert supervisor.stop(service, log=lambda _: None)
    assert not supervisor.pid_file(service).exists() and not supervisor.runs(service)


def test_a_pid_file_naming_another_program_is_removed_and_that_program_left_alone(supervisor, tmp_path):
    service = _http_server(free_port(), tmp_path)
    supervisor.pid_file(service).write_text(str(os.getpid()))  # this test's process: not the service's command
    logged = []
    assert supervisor.pid(service) is None
    assert not supervisor.stop(service, log=logged.append)
    assert logged == [
        f"services: web: removed the stale pid file {supervisor.pid_file(service)} (pid {os.getpid()} is another "
        "program)"
    ]
    assert not supervisor.pid_file(service).exists()


def test_a_port_another_program_listens_on_is_refused_naming_the_key(supervisor, tmp_path):
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        with pytest.raises(ReleaseError) as refused:
            supervisor.start(_http_server(port, tmp_path), log=lambda _: None)
    assert str(refused.value) == (
        f"port {port} on 127.0.0.1 is taken by another program: free it or change [services] web_port in release.toml"
    )


FULL_DISK_AFTER_SPAWN = """
import json, resource, signal, subprocess, sys
from pathlib import Path
from ac_release.model.config import ServiceRegistry, ServicesSettings
from ac_release.services.supervisor import Service, Supervisor

class DiskFullOnceStarted(subprocess.Popen):  # the service starts; then no file of this process may grow
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
        print(self.pid, flush=True)

subprocess.Popen = DiskFullOnceStarted
root, port = Path(sys.argv[1]), int(sys.argv[2])
settings = ServicesSettings(root / "services", "127.0.0.1", 1, 2, (ServiceRegistry(3, "a/b"),))
argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root), str(port)]
try:
    Supervisor(settings).start(Service("web", argv, port, "/"), log=lambda _: None, timeout=20)
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}", flush=True)
"""


def test_a_pid_file_that_cannot_be_written_whole_is_never_left_empty_and_its_service_is_stopped(supervisor, tmp_path):
    """A write that fails (here the file-size limit, as on a full disk) leaves no empty or cut pid file, and no
    service running that nothing could find to stop."""
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_AFTER_SPAWN, str(tmp_path), str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    service_pid, outcome = result.stdout.splitlines()
    pid_file = supervisor.pid_file(_http_server(port, tmp_path))
    try:
        assert not pid_file.exists() or pid_file.read_text() == service_pid, repr(pid_file.read_text())
        assert outcome == (
            f"ReleaseError: cannot write {pid_file} (File too large): local service web was stopped; "
            "free space there and run again"
        )
        assert not _alive(int(service_pid))
        assert [p.name for p in pid_file.parent.iterdir()] == ["web.log"]  # no temporary file left either
    finally:
        _kill(int(service_pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/cmdline").read_bytes() != b""  # a zombie is not alive


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# A master that serves, and a worker of its group that ignores SIGTERM (as a gunicorn worker finishing a request
# outlives its master for a while): the worker writes its pid to the file named by argv[2].
LINGERING_WORKER = """
import subprocess, sys, http.server
subprocess.Popen([sys.executable, "-c", WORKER, sys.argv[2]])
http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, port=int(sys.argv[1]), bind="127.0.0.1")
"""
WORKER = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(600)
"""


def test_stop_ends_the_whole_group_even_a_worker_that_outlives_its_master(supervisor, tmp_path):
    """gunicorn's master ends on SIGTERM before its workers do: a worker still holding the port made the next start
    fail with "port taken", and one that ignores SIGTERM outlived `stop` for good."""
    worker_pid = tmp_path / "worker.pid"
    script = tmp_path / "service.py"
    script.write_text(f"WORKER = {WORKER!r}\n{LINGERING_WORKER}")
    port = free_port()
    service = Service("web", [sys.executable, str(script), str(port), str(worker_pid)], port, "/")
    supervisor.start(service, log=lambda _: None, timeout=20)
    for _ in range(100):
        if worker_pid.exists() and worker_pid.read_text():
            break
        time.sleep(0.05)
    worker = int(worker_pid.read_text())
    assert supervisor.stop(service, log=lambda _: None)
    assert _ended(worker)


def _ended(pid: int) -> bool:
    """Gone, or a zombie waiting for whichever process inherited it to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
