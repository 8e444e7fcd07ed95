"""Process supervision of a target's services: each runs as a detached process (its own session) with a pid file
and a log in the services' run directory; started, asked whether it answers, stopped."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ac_release.clients import proc
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_text
from ac_release.model.config import ServicesSettings

_PORT_KEYS = {"pypi-dev": "dev_pypi_port"}  # a service's port key in release.toml, where it is not `<name>_port`


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    port: int
    ready_path: str  # an HTTP path that answers once the service is ready
    tls: bool = False

    def url(self, host: str) -> str:
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


class Supervisor:
    """The services' processes: pid files and logs under `settings.run_dir`."""

    def __init__(self, settings: ServicesSettings):
        self.settings = settings

    def pid_file(self, service: Service) -> Path:
        return self.settings.run_dir / f"{service.name}.pid"

    def log_file(self, service: Service) -> Path:
        return self.settings.run_dir / f"{service.name}.log"

    def recorded_pid(self, service: Service) -> int | None:
        try:
            return int(self.pid_file(service).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def pid(self, service: Service) -> int | None:
        """The pid of the running service, only when its pid file names a process running this service's command
        (a pid file left by a crash may name a pid since reused by another program, maybe another user's)."""
        pid = self.recorded_pid(service)
        if pid is None:
            return None
        command = _command_line(pid)
        # The arguments name this service's own config and data, so they identify it; the interpreter's path
        # may differ between virtual environments.
        return pid if command is not None and command[1:] == service.argv[1:] else None

    def answers(self, service: Service) -> bool:
        context = ssl.create_default_context(cafile=self.settings.ca_file) if service.tls else None
        try:
            with urllib.request.urlopen(
                service.url(self.settings.host) + service.ready_path, timeout=2, context=context
            ):
                return True
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError:
            return False

    def runs(self, service: Service) -> bool:
        """Its process runs and it answers."""
        return self.pid(service) is not None and self.answers(service)

    def start(self, service: Service, log=print, timeout: float = 30) -> None:
        """(Re)start the service and wait until it answers; a service that does not is stopped and refused with the
        last line of its log."""
        self.stop(service, log)
        if _port_taken(self.settings.host, service.port):
            raise ReleaseError(
                f"port {service.port} on {self.settings.host} is taken by another program: free it "
                f"or change [services] {_PORT_KEYS.get(service.name, service.name + '_port')} in release.toml"
            )
        log_path = self.log_file(service)
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                service.argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._record_pid(service, process)
        deadline = time.monotonic() + timeout
        while not self.answers(service):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop(service, log)
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty log)"]
                raise ReleaseError(f"local service {service.name} did not start: {tail[0]} (log: {log_path})")
            time.sleep(0.1)

    def _record_pid(self, service: Service, process: subprocess.Popen) -> None:
        """The pid file, written whole (a reader never sees it empty or cut); a service whose pid cannot be recorded is
        stopped, since nothing could find it to stop it later."""
        path = self.pid_file(service)
        try:
            atomic_write_text(path, str(process.pid))
        except OSError as exc:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
            raise ReleaseError(
                f"cannot write {path} ({exc.strerror}): local service {service.name} was stopped; "
                "free space there and run again"
            ) from None

    def stop(self, service: Service, log=print) -> bool:
        """Stop the service when its pid file names it (a stale pid file is removed with a log line). True when it
        ran."""
        pid = self.pid(service)
        if pid:
            _end_group(pid)
        elif (stale := self.recorded_pid(service)) is not None:
            log(
                f"services: {service.name}: removed the stale pid file {self.pid_file(service)} "
                f"(pid {stale} is another program)"
            )
        self.pid_file(service).unlink(missing_ok=True)
        return pid is not None


def _end_group(pid: int) -> None:
    """SIGTERM to the service's process group, then SIGKILL to what is left after 5 s; returns once no member runs.
    Not only the leader: gunicorn's master ends before its workers, which may still hold the port."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_group(pid, sig)
        for _ in range(50):
            try:
                os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child
            except ChildProcessError:
                pass
            if not _running(pid) and not _group_members(pid):
                return
            time.sleep(0.1)


def _group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`, from /proc."""
    members = []
    for entry in Path("/proc").glob("[0-9]*"):
        fields = proc.stat_fields(entry.name)  # None: ended meanwhile
        if fields and fields[0] != "Z" and int(fields[2]) == pgid:  # state, ppid, pgrp
            members.append(int(entry.name))
    return members


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
    """The service leads its own process group (started in a new session): signal the group, also once its leader
    has ended; else the process."""
    try:
        if _group_members(pid) or os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0
