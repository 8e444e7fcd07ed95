"""Local services of the `local` target: started by the pipeline, bound to 127.0.0.1, data under one directory.

Each service runs as a detached process with a pid file and a log; `up` is idempotent, `down` stops them.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ac_release.config import ServicesSettings
from ac_release.errors import ReleaseError
from ac_release.fsutil import atomic_write_text

INDEX_USER = "ac-release"


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    port: int
    ready_path: str  # an HTTP path that answers once the service is ready

    def url(self, host: str) -> str:
        return f"http://{host}:{self.port}"


class LocalServices:
    def __init__(self, settings: ServicesSettings):
        self.settings = settings
        self.dir = settings.dir

    # -- the services -------------------------------------------------------------------------------------------

    @property
    def pypi_dir(self) -> Path:
        return self.dir / "pypi"

    @property
    def sigstore_dir(self) -> Path:
        return self.dir / "sigstore"

    @property
    def trust_config(self) -> Path:
        return self.sigstore_dir / "trust_config.json"

    @property
    def registry_dir(self) -> Path:
        return self.dir / "registry"

    @property
    def git_remote(self) -> Path:
        """The bare repository the local target pushes release tags to."""
        return self.dir / "git" / "ac-release.git"

    def services(self) -> list[Service]:
        host = self.settings.host
        return [
            Service(
                "pypi",
                [
                    sys.executable,
                    "-m",
                    "pypiserver",
                    "run",
                    "--host",
                    host,
                    "--port",
                    str(self.settings.pypi_port),
                    "--passwords",
                    str(self.pypi_dir / "htpasswd"),
                    "--authenticate",
                    "update",
                    "--disable-fallback",
                    "--hash-algo",
                    "sha256",
                    "--backend",
                    "simple-dir",
                    str(self.pypi_dir / "packages"),
                ],
                self.settings.pypi_port,
                "/simple/",
            ),
            Service(
                "sigstore",
                [
                    sys.executable,
                    "-m",
                    "ac_release.services.sigstore_local",
                    "serve",
                    "--state-dir",
                    str(self.sigstore_dir / "state"),
                    "--host",
                    host,
                    "--port",
                    str(self.settings.sigstore_port),
                    "--trust-config",
                    str(self.trust_config),
                ],
                self.settings.sigstore_port,
                "/",
            ),
            Service(
                "registry",
                ["docker-registry", "serve", str(self.registry_dir / "config.yml")],
                self.settings.registry_port,
                "/v2/",
            ),
        ]

    def _prepare_pypi(self) -> None:
        """An upload login generated once: the password lives in a 0600 file, the index keeps only its hash."""
        from passlib.apache import HtpasswdFile

        (self.pypi_dir / "packages").mkdir(parents=True, exist_ok=True)
        password_file = self.pypi_dir / "password"
        if not password_file.exists():
            atomic_write_text(password_file, secrets.token_urlsafe(24) + "\n", mode=0o600)
        password, path = password_file.read_text().strip(), self.pypi_dir / "htpasswd"
        if path.exists() and HtpasswdFile(str(path)).check_password(INDEX_USER, password):
            return  # kept as it is: a fresh bcrypt salt would rewrite the file on every start
        htpasswd = HtpasswdFile(default_scheme="bcrypt")
        htpasswd.set_password(INDEX_USER, password)
        atomic_write_text(path, htpasswd.to_string().decode(), mode=0o600)

    def _prepare_registry(self) -> None:
        """Debian's CNCF distribution registry, no auth (it refuses basic auth without TLS): loopback only."""
        (self.registry_dir / "data").mkdir(parents=True, exist_ok=True)
        config = (
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.registry_dir / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.settings.host}:{self.settings.registry_port}\n"
        )
        path = self.registry_dir / "config.yml"
        if not path.exists() or path.read_text() != config:
            atomic_write_text(path, config)

    def _prepare_git(self) -> None:
        if not (self.git_remote / "HEAD").exists():
            self.git_remote.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "--quiet", "--bare", str(self.git_remote)], check=True)

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def _pid_file(self, service: Service) -> Path:
        return self.dir / "run" / f"{service.name}.pid"

    def _recorded_pid(self, service: Service) -> int | None:
        try:
            return int(self._pid_file(service).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _pid(self, service: Service) -> int | None:
        """The pid of the running service, only when its pid file names a process running this service's command
        (a pid file left by a crash may name a pid since reused by another program, maybe another user's)."""
        pid = self._recorded_pid(service)
        if pid is None:
            return None
        command = _command_line(pid)
        # The arguments name this service's own config and data, so they identify it; the interpreter's path
        # may differ between virtual environments.
        return pid if command is not None and command[1:] == service.argv[1:] else None

    def _answers(self, service: Service) -> bool:
        try:
            with urllib.request.urlopen(service.url(self.settings.host) + service.ready_path, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError:
            return False

    def up(self, log=print, timeout: float = 30) -> dict[str, str]:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "run").mkdir(exist_ok=True)
        self._prepare_pypi()
        self._prepare_registry()
        self._prepare_git()
        urls = {}
        for service in self.services():
            urls[service.name] = service.url(self.settings.host)
            if self._pid(service) and self._answers(service):
                continue
            self._stop(service, log)
            if _port_taken(self.settings.host, service.port):
                raise ReleaseError(
                    f"port {service.port} on {self.settings.host} is taken by another program: free it "
                    f"or change [services] {service.name}_port in release.toml"
                )
            log_path = self.dir / "run" / f"{service.name}.log"
            with open(log_path, "ab") as log_file:
                process = subprocess.Popen(
                    service.argv,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            self._pid_file(service).write_text(str(process.pid))
            deadline = time.monotonic() + timeout
            while not self._answers(service):
                if process.poll() is not None or time.monotonic() > deadline:
                    self._stop(service, log)
                    tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty log)"]
                    raise ReleaseError(f"local service {service.name} did not start: {tail[0]} (log: {log_path})")
                time.sleep(0.1)
            log(f"services: {service.name} up at {urls[service.name]}")
        return urls

    def _stop(self, service: Service, log=print) -> bool:
        pid = self._pid(service)
        if pid:
            _signal_group(pid, signal.SIGTERM)
            for _ in range(50):
                try:
                    os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child
                except ChildProcessError:
                    pass
                if not _running(pid):
                    break
                time.sleep(0.1)
        elif (stale := self._recorded_pid(service)) is not None:
            log(
                f"services: {service.name}: removed the stale pid file {self._pid_file(service)} "
                f"(pid {stale} is another program)"
            )
        self._pid_file(service).unlink(missing_ok=True)
        return pid is not None

    def down(self, log=print) -> None:
        for service in self.services():
            if self._stop(service, log):
                log(f"services: {service.name} stopped")

    def status(self) -> dict[str, str]:
        return {
            s.name: ("up " + s.url(self.settings.host)) if self._pid(s) and self._answers(s) else "down"
            for s in self.services()
        }


def _command_line(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone, or not ours to read
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0") if raw else None  # empty: a zombie


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _command_line(pid) is not None


def _signal_group(pid: int, sig: int) -> None:
    """The service leads its own process group (started in a new session): signal the group, else the process."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0
