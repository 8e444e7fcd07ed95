"""Stopping local services signals only the service a pid file names: a stale pid file naming another process is
removed with a log line, and that process is left alone. It removes the registries' CA entries in dockerd's certs.d
that starting them wrote, and only those (a directory in place of /etc/docker/certs.d here)."""

from __future__ import annotations

import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from ac_release.model.config import load_settings
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


@pytest.fixture
def staging(tmp_path):
    """The staging target's services (TLS, two registries), their dockerd CA entries under tmp_path/certs.d."""
    settings = load_settings(write_config(tmp_path, staging=True)).target("staging").services
    return LocalServices(settings, docker_certs=tmp_path / "certs.d")


def _entries(services: LocalServices) -> list[Path]:
    """certs.d/HOST:PORT/ca.crt of each registry."""
    addresses = [services.settings.registry_address(r) for r in services.settings.registries]
    return [services.docker_certs / address / "ca.crt" for address in addresses]


def test_down_removes_the_docker_ca_entries_up_wrote_and_nothing_else(staging):
    """Was: `down` also removed a directory for the registry's address that was there before `up`."""
    first, second = _entries(staging)
    first.parent.mkdir(parents=True)  # made before `up` (by the machine's administrator): it stays
    other = staging.docker_certs / "registry.example.com:5000" / "ca.crt"
    other.parent.mkdir()
    other.write_bytes(b"another registry's CA\n")
    staging._prepare_tls()
    ca = staging.settings.ca_file.read_bytes()
    assert first.read_bytes() == ca == second.read_bytes()
    assert stat.S_IMODE(first.stat().st_mode) == 0o644
    staging.down(log=lambda _: None)
    assert not first.exists() and first.parent.is_dir()
    assert not second.parent.exists()
    assert other.read_bytes() == b"another registry's CA\n"
    assert sorted(p.name for p in staging.docker_certs.iterdir()) == [first.parent.name, other.parent.name]


def test_down_removes_its_entries_once_its_ca_is_gone_and_leaves_one_written_since_by_another(staging):
    """Was: `down` removed only entries equal to the CA file as it is at `down`: none once the CA was gone."""
    first, second = _entries(staging)
    staging._prepare_tls()
    second.write_bytes(b"another services set's CA, for the same address, since\n")
    shutil.rmtree(staging.tls_dir)  # the services' TLS material went (a reset)
    staging.down(log=lambda _: None)
    assert not first.parent.exists()
    assert second.read_bytes() == b"another services set's CA, for the same address, since\n"


def test_an_entry_is_replaced_whole_when_the_ca_changes(staging):
    """Was: the entry was rewritten in place: dockerd reading it meanwhile could get a part of a certificate."""
    entry, _ = _entries(staging)
    staging._prepare_tls()
    old = entry.read_bytes()
    with entry.open("rb") as reader:  # dockerd, reading the entry while a new CA is written
        (staging.tls_dir / "server.crt").unlink()  # a new server certificate comes with a new CA
        staging._prepare_tls()
        assert reader.read() == old  # what it opened stays whole: the new entry took the name by a rename
    new = staging.settings.ca_file.read_bytes()
    assert new != old and entry.read_bytes() == new
    assert [p.name for p in entry.parent.iterdir()] == ["ca.crt"]  # no temporary file left beside it
    staging.down(log=lambda _: None)
    assert not entry.parent.exists()
