"""The services' process supervision (services/supervisor.py), on a throwaway HTTP server standing in for a service:
started until it answers, found by its pid file only while that names its command, stopped with its pid file."""

from __future__ import annotations

import os
import socket
import sys

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
