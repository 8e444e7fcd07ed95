"""Stopping local services signals only the service a pid file names: a stale pid file naming another process is
removed with a log line, and that process is left alone."""

from __future__ import annotations

import subprocess
import time

import pytest

from ac_release.config import load_settings
from ac_release.services.manager import LocalServices
from tests.helpers import write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def services(tmp_path):
    local = LocalServices(load_settings(write_config(tmp_path)).services)
    (local.dir / "run").mkdir(parents=True)
    return local


def _service(services: LocalServices, name: str):
    return next(s for s in services.services() if s.name == name)


def test_a_stale_pid_file_naming_another_process_is_removed_and_the_process_left_alone(services):
    # another program that reused the pid, leading its own process group (as a service would)
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        pid_file = services._pid_file(_service(services, "registry"))
        pid_file.write_text(str(bystander.pid))
        logged: list[str] = []
        services.down(log=logged.append)
        time.sleep(0.2)
        assert bystander.poll() is None  # not signalled
        assert not pid_file.exists()
        assert logged == [
            f"services: registry: removed the stale pid file {pid_file} (pid {bystander.pid} is another program)"
        ]
        assert services.status()["registry"] == "down"
    finally:
        bystander.kill()
        bystander.wait()


def test_the_service_a_pid_file_names_is_stopped(services):
    services._prepare_registries()
    registry = _service(services, "registry")
    process = subprocess.Popen(
        registry.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    services._pid_file(registry).write_text(str(process.pid))
    deadline = time.monotonic() + 10
    while not services._answers(registry):  # started, as `up` waits for it
        assert time.monotonic() < deadline
        time.sleep(0.1)
    logged: list[str] = []
    services.down(log=logged.append)
    assert process.wait(timeout=10) is not None
    assert logged == ["services: registry stopped"]
    assert not services._pid_file(registry).exists()
