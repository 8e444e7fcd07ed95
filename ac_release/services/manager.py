"""Services a target runs on loopback (`local`, `staging`): started by the pipeline, data under one directory, whose
layout `ServicesSettings` names.

Each service runs as a detached process with a pid file and a log; `up` is idempotent, `down` stops them. A target
with `tls = true` gets a CA made here (dockerd trusts it through the certs.d entries `up` writes and `down` removes),
an https index (pypiserver under gunicorn) taking the target's token, and registries over TLS that require their
htpasswd credentials; the secrets come from the environment, as the release's clients read them, and the services
keep only their bcrypt hashes.

`LocalServices` coordinates the parts: the pip index (pip_index.py), the registries (registries.py) and dockerd's
trust in their CA (docker_trust.py), the Sigstore instance (sigstore_service.py), the git remote (git_remote.py) and
the processes (supervisor.py).
"""

from __future__ import annotations

from pathlib import Path

from ac_release.core.fsutil import exclusively
from ac_release.model.config import ServicesSettings
from ac_release.services.docker_trust import DOCKER_CERTS, DockerTrust
from ac_release.services.git_remote import prepare_git_remote
from ac_release.services.pip_index import PipIndex
from ac_release.services.ports import free_port
from ac_release.services.registries import Registries
from ac_release.services.sigstore_service import sigstore_service
from ac_release.services.supervisor import Service, Supervisor
from ac_release.services.tls import ensure_server_certificate

__all__ = ["DOCKER_CERTS", "LocalServices", "Service", "free_port"]


class LocalServices:
    def __init__(self, settings: ServicesSettings, docker_certs: Path = DOCKER_CERTS):
        self.settings = settings
        self.docker_certs = docker_certs
        self.index = PipIndex(settings)
        self.registries = Registries(settings)
        self.docker_trust = DockerTrust(settings, docker_certs)
        self.supervisor = Supervisor(settings)

    # -- where things are: the layout of the settings ---------------------------------------------------------------

    @property
    def dir(self) -> Path:
        return self.settings.dir

    @property
    def pypi_dir(self) -> Path:
        return self.settings.pypi_dir

    @property
    def dev_pypi_dir(self) -> Path:
        return self.settings.dev_pypi_dir

    @property
    def sigstore_dir(self) -> Path:
        return self.settings.sigstore_dir

    @property
    def trust_config(self) -> Path:
        return self.settings.trust_config

    @property
    def registry_dir(self) -> Path:
        """The first registry's directory (config and data)."""
        return self.settings.registry_dir(0)

    @property
    def registry_dirs(self) -> list[Path]:
        return self.settings.registry_dirs

    @property
    def git_remote(self) -> Path:
        return self.settings.git_remote

    @property
    def tls_dir(self) -> Path:
        return self.settings.tls_dir

    # -- lifecycle --------------------------------------------------------------------------------------------------

    def services(self) -> list[Service]:
        return [*self.index.services(), sigstore_service(self.settings), *self.registries.services()]

    @property
    def lock_file(self) -> Path:
        """Held by `up` and `down` for their whole work: one at a time per service set."""
        return self.settings.run_dir / "services.lock"

    def up(self, log=print, timeout: float = 30) -> dict[str, str]:
        """Start what does not run. A second `up` meanwhile (another run needing the services) waits for the first,
        then finds them running: refusing it would fail a run for services that are about to answer."""
        with exclusively(self.lock_file):
            return self._up(log, timeout)

    def _up(self, log, timeout: float) -> dict[str, str]:
        # A new certificate or credential needs a restart: the servers read them when they start.
        restart = {s.name for s in self.services() if s.tls} if self.settings.tls and self._prepare_tls() else set()
        if self.index.prepare():
            restart.update({"pypi", "pypi-dev"})
        restart.update(self.registries.prepare())
        prepare_git_remote(self.settings)
        urls = {}
        for service in self.services():
            urls[service.name] = service.url(self.settings.host)
            if service.name not in restart and self.supervisor.runs(service):
                continue
            self.supervisor.start(service, log, timeout)
            log(f"services: {service.name} up at {urls[service.name]}")
        return urls

    def down(self, log=print) -> None:
        if not self.settings.run_dir.is_dir():  # never started: nothing to stop, and nothing made here
            return
        with exclusively(self.lock_file):
            for service in self.services():
                if self.supervisor.stop(service, log):
                    log(f"services: {service.name} stopped")
            self.docker_trust.untrust()

    def status(self) -> dict[str, str]:
        return {
            s.name: ("up " + s.url(self.settings.host)) if self.supervisor.runs(s) else "down" for s in self.services()
        }

    def _prepare_tls(self) -> bool:
        """The CA and server certificate; dockerd trusts the CA for each registry through certs.d/HOST:PORT."""
        settings = self.settings
        made = ensure_server_certificate(
            settings.ca_certificate, settings.server_certificate, settings.server_key, settings.host
        )
        self.docker_trust.trust(settings.ca_certificate.read_bytes())
        return made

    # -- the parts' steps the integration tests drive one at a time ---------------------------------------------------

    def _pid_file(self, service: Service) -> Path:
        return self.supervisor.pid_file(service)

    def _answers(self, service: Service) -> bool:
        return self.supervisor.answers(service)

    def _stop(self, service: Service, log=print) -> bool:
        return self.supervisor.stop(service, log)

    def _prepare_registries(self) -> list[str]:
        return self.registries.prepare()
