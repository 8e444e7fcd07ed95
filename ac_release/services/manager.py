"""Services a target runs on loopback (`local`, `staging`): started by the pipeline, data under one directory.

Each service runs as a detached process with a pid file and a log; `up` is idempotent, `down` stops them. A target
with `tls = true` gets a CA made here (dockerd trusts it through the certs.d entries `up` writes and `down` removes),
an https index (pypiserver under gunicorn) taking the target's token, and registries over TLS that require their
htpasswd credentials; the secrets come from the environment, as the release's clients read them, and the services
keep only their bcrypt hashes.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_bytes, atomic_write_text, sha256_bytes
from ac_release.model.config import ServiceRegistry, ServicesSettings
from ac_release.services.tls import ensure_server_certificate

_PORT_KEYS = {"pypi-dev": "dev_pypi_port"}  # a service's port key in release.toml, where it is not `<name>_port`
DOCKER_CERTS = Path("/etc/docker/certs.d")  # where dockerd looks for a registry's CA: certs.d/HOST:PORT/ca.crt


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


class LocalServices:
    def __init__(self, settings: ServicesSettings, docker_certs: Path = DOCKER_CERTS):
        self.settings = settings
        self.dir = settings.dir
        self.docker_certs = docker_certs

    # -- the services -------------------------------------------------------------------------------------------

    @property
    def pypi_dir(self) -> Path:
        return self.dir / "pypi"

    @property
    def sigstore_dir(self) -> Path:
        return self.dir / "sigstore"

    @property
    def trust_config(self) -> Path:
        return self.settings.trust_config

    @property
    def registry_dir(self) -> Path:
        """The first registry's directory (config and data)."""
        return self._registry_dir(0)

    def _registry_dir(self, number: int) -> Path:
        return self.dir / ("registry" if number == 0 else f"registry-{number + 1}")

    @property
    def registry_dirs(self) -> list[Path]:
        return [self._registry_dir(n) for n in range(len(self.settings.registries))]

    @property
    def git_remote(self) -> Path:
        """The bare repository the target pushes release tags to."""
        return self.settings.git_remote

    @property
    def tls_dir(self) -> Path:
        return self.dir / "tls"

    def services(self) -> list[Service]:
        host, tls = self.settings.host, self.settings.tls
        dev_index = []
        if self.settings.dev_pypi_port is not None:
            dev_index = [Service("pypi-dev", self._pypi_argv(dev=True), self.settings.dev_pypi_port, "/simple/", tls)]
        return [
            Service("pypi", self._pypi_argv(), self.settings.pypi_port, "/simple/", tls),
            *dev_index,
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
                    "--issuer",
                    self.settings.issuer,
                ],
                self.settings.sigstore_port,
                "/",
            ),
            *(
                Service(
                    directory.name,
                    ["docker-registry", "serve", str(directory / "config.yml")],
                    registry.port,
                    "/v2/",
                    tls,
                )
                for directory, registry in zip(self.registry_dirs, self.settings.registries, strict=True)
            ),
        ]

    @property
    def dev_pypi_dir(self) -> Path:
        """The dev index's packages (dev builds, nightlies); it shares the release index's login."""
        return self.dir / "pypi-dev"

    def _pypi_argv(self, dev: bool = False) -> list[str]:
        """pypiserver's WSGI app under gunicorn, behind the guard that stores an upload whole or not at all
        (ac_release/services/index_app.py); with TLS, gunicorn serves https (pypiserver's own server has none)."""
        packages, htpasswd = (self.dev_pypi_dir if dev else self.pypi_dir) / "packages", self.pypi_dir / "htpasswd"
        port = self.settings.dev_pypi_port if dev else self.settings.pypi_port
        app = (
            f"ac_release.services.index_app:app(roots=[{str(packages)!r}], password_file={str(htpasswd)!r}, "
            "authenticate=['update'], disable_fallback=True, hash_algo='sha256', backend_arg='simple-dir')"
        )
        tls = ["--certfile", str(self.tls_dir / "server.crt"), "--keyfile", str(self.tls_dir / "server.key")]
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"{self.settings.host}:{port}",
            *(tls if self.settings.tls else []),
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--timeout",
            "600",
            app,
        ]

    def _prepare_tls(self) -> bool:
        """The CA and server certificate; dockerd trusts the CA for each registry through certs.d/HOST:PORT."""
        made = ensure_server_certificate(
            self.settings.ca_dir / "ca.crt",
            self.tls_dir / "server.crt",
            self.tls_dir / "server.key",
            self.settings.host,
        )
        self._trust_in_docker((self.settings.ca_dir / "ca.crt").read_bytes())
        return made

    # -- dockerd's CA entries: certs.d/HOST:PORT/ca.crt, outside the services' directory ----------------------------

    def _docker_ca(self, registry: ServiceRegistry) -> Path:
        return self.docker_certs / self.settings.registry_address(registry) / "ca.crt"

    @property
    def _docker_record(self) -> Path:
        """The entries this service set wrote in certs.d, so that `down` removes those and no other: JSON,
        {entry: {"sha256": of what was written, "directory": whether the HOST:PORT directory was made for it}}."""
        return self.dir / "run" / "docker-certs.json"

    def _written_to_docker(self) -> dict[str, dict]:
        try:
            return json.loads(self._docker_record.read_text())
        except FileNotFoundError:
            return {}

    def _trust_in_docker(self, ca: bytes) -> None:
        """The CA as each registry's entry: written whole (a temporary file renamed), the entry recorded before it is
        written (a crash in between leaves a record of an entry never written, which `down` passes over)."""
        written = self._written_to_docker()
        digest = sha256_bytes(ca)
        for registry in self.settings.registries:
            path = self._docker_ca(registry)
            entry = written.get(str(path))
            if _read_or_none(path) == ca:
                if entry is None:  # an earlier `up` of these services wrote it (the CA is theirs alone), unrecorded
                    written[str(path)] = {"sha256": digest, "directory": _holds_only(path.parent, path.name)}
                    self._record_docker(written)
                continue
            made_directory = not path.parent.exists() or (entry is not None and entry["directory"])
            written[str(path)] = {"sha256": digest, "directory": made_directory}
            self._record_docker(written)
            try:
                atomic_write_bytes(path, ca)
            except OSError as exc:
                if entry is None:  # the record as it was: nothing written
                    del written[str(path)]
                else:
                    written[str(path)] = entry
                self._record_docker(written)
                raise ReleaseError(
                    f"cannot write {path} ({exc.strerror}): dockerd reads a registry's CA from there; "
                    "run the services as a user who may write it (root)"
                ) from None

    def _record_docker(self, written: dict[str, dict]) -> None:
        atomic_write_text(self._docker_record, json.dumps(written, indent=1, sort_keys=True) + "\n")

    def _untrust_in_docker(self) -> None:
        """Remove the entries this service set wrote, each only while it holds what was written (another service set
        may have written its own CA there since), and a HOST:PORT directory only when it was made for the entry."""
        for name, entry in self._written_to_docker().items():
            path = Path(name)
            content = _read_or_none(path)
            if content is not None and sha256_bytes(content) == entry["sha256"]:
                path.unlink()
            if entry["directory"]:
                _remove_empty(path.parent)
        self._docker_record.unlink(missing_ok=True)

    def _prepare_pypi(self) -> bool:
        """The upload login: the target's token from the environment, or a password generated once into a 0600 file;
        the index keeps only its bcrypt hash. True when the htpasswd file changed."""
        (self.pypi_dir / "packages").mkdir(parents=True, exist_ok=True)
        if self.settings.dev_pypi_port is not None:
            (self.dev_pypi_dir / "packages").mkdir(parents=True, exist_ok=True)
        if self.settings.index_password is None and not self.settings.password_file.exists():
            atomic_write_text(self.settings.password_file, secrets.token_urlsafe(24) + "\n", mode=0o600)
        password = self.settings.index_secret.read()
        return _write_htpasswd(self.pypi_dir / "htpasswd", self.settings.index_username, password)

    def _prepare_registries(self) -> list[str]:
        """Debian's CNCF distribution registry: without TLS no auth (it refuses basic auth without TLS), loopback
        only; with TLS the target's certificate and its htpasswd. Returns the registries whose htpasswd changed."""
        changed = []
        for directory, registry in zip(self.registry_dirs, self.settings.registries, strict=True):
            (directory / "data").mkdir(parents=True, exist_ok=True)
            address = f"{self.settings.host}:{registry.port}"
            config = (
                "version: 0.1\n"
                "log:\n  level: warn\n"
                f"storage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n  delete:\n    enabled: true\n"
                f"http:\n  addr: {address}\n"
            )
            if self.settings.tls:
                config += (
                    f"  tls:\n    certificate: {self.tls_dir / 'server.crt'}\n    key: {self.tls_dir / 'server.key'}\n"
                )
            if registry.username is not None and registry.password is not None:
                config += f"auth:\n  htpasswd:\n    realm: ac-release\n    path: {directory / 'htpasswd'}\n"
                if _write_htpasswd(directory / "htpasswd", registry.username, registry.password.read()):
                    changed.append(directory.name)
            path = directory / "config.yml"
            if not path.exists() or path.read_text() != config:
                atomic_write_text(path, config)
        return changed

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

    def up(self, log=print, timeout: float = 30) -> dict[str, str]:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "run").mkdir(exist_ok=True)
        # A new certificate or credential needs a restart: the servers read them when they start.
        restart = {s.name for s in self.services() if s.tls} if self.settings.tls and self._prepare_tls() else set()
        if self._prepare_pypi():
            restart.update({"pypi", "pypi-dev"})
        restart.update(self._prepare_registries())
        self._prepare_git()
        urls = {}
        for service in self.services():
            urls[service.name] = service.url(self.settings.host)
            if service.name not in restart and self._pid(service) and self._answers(service):
                continue
            self._stop(service, log)
            if _port_taken(self.settings.host, service.port):
                raise ReleaseError(
                    f"port {service.port} on {self.settings.host} is taken by another program: free it "
                    f"or change [services] {_PORT_KEYS.get(service.name, service.name + '_port')} in release.toml"
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
            for sig in (signal.SIGTERM, signal.SIGKILL):  # SIGKILL when it did not end within 5 s
                _signal_group(pid, sig)
                for _ in range(50):
                    try:
                        os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child
                    except ChildProcessError:
                        pass
                    if not _running(pid):
                        break
                    time.sleep(0.1)
                else:
                    continue
                break
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
        self._untrust_in_docker()

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


# free_port's reservations: a file per port, locked (flock) by the process that picked the port, for its life.
PORTS_DIR_ENV = "AC_RELEASE_PORTS_DIR"
PORTS_DIR = Path("/tmp/ac-release-ports")  # one for every user's runs on the machine (sticky, like /tmp)
PORT_FLOOR = 15000  # picks stay above the ports configurations name (release.toml's 5000, 8765, 5010, ...)
_picked: dict[int, int] = {}  # port -> the descriptor holding its lock: the ports this process picked
_picking = threading.Lock()


def free_port() -> int:
    """A loopback port for a scratch configuration's service (tests, benchmarks), kept for it until the service binds
    it: outside the kernel's ephemeral range, which clients' source ports come from; reserved for the life of this
    process in a locked file per port (PORTS_DIR), so that no other process picking here gets it; and bindable now."""
    directory = _ports_dir()
    candidates = _port_candidates()
    start = random.randrange(len(candidates))  # pickers starting at once mostly try different ports
    with _picking:
        for port in candidates[start:] + candidates[:start]:
            if port in _picked:
                continue
            descriptor = _lock_port(directory / str(port))
            if descriptor is None:
                continue
            if _bindable(port):
                _picked[port] = descriptor  # never closed: the lock goes with the process
                return port
            os.close(descriptor)  # someone else's service (or a connection) holds it: leave the port alone
    raise ReleaseError(f"no free port among {len(candidates)} outside the ephemeral range: see {directory}")


def _ports_dir() -> Path:
    directory = Path(os.environ.get(PORTS_DIR_ENV) or PORTS_DIR)
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        if directory == PORTS_DIR:
            try:
                directory.chmod(0o1777)
            except OSError:  # made by another user meanwhile: theirs to set
                pass
    return directory


def _port_candidates() -> list[int]:
    """The ports above PORT_FLOOR outside the ephemeral range (/proc/sys/net/ipv4/ip_local_port_range); all ports
    above PORT_FLOOR when that range leaves none."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    outside = [*range(PORT_FLOOR, low), *range(max(high + 1, PORT_FLOOR), 65536)]
    return outside or list(range(PORT_FLOOR, 65536))


def _lock_port(path: Path) -> int | None:
    """A descriptor holding the port's lock, None when another process holds it (or the file is not ours to open).
    A read-only open: another user's file in the shared directory locks as well as our own."""
    flags = os.O_RDONLY | os.O_CLOEXEC
    try:
        try:
            descriptor = os.open(path, flags)
        except FileNotFoundError:
            descriptor = os.open(path, flags | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


def _bindable(port: int) -> bool:
    """Nothing uses the port: no listener on any IPv4 address, and no connection's own end (no SO_REUSEADDR)."""
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


# bcrypt's cost for the services' htpasswd: Apache `htpasswd -B`'s default, which the registry's documentation uses.
# docker-registry checks the hash on every request (it keeps no session), and at bcrypt's own default (12) each
# registry call of a release cost 0.25 s of the host's CPU: a re-run to staging spent most of its time there. The
# work factor only slows the cracking of a leaked file (0600, on the services' host) holding these random secrets.
HTPASSWD_COST = 5


def _write_htpasswd(path: Path, username: str, password: str) -> bool:
    """A bcrypt htpasswd entry (what docker-registry and pypiserver accept), rewritten only when the password or the
    cost changed (a fresh salt would change the file on every start). True when written."""
    import bcrypt

    if path.exists():
        for line in path.read_text().splitlines():
            user, _, hashed = line.partition(":")
            if (
                user == username
                and _cost(hashed) == HTPASSWD_COST
                and bcrypt.checkpw(password.encode(), hashed.encode())
            ):
                return False
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=HTPASSWD_COST)).decode()
    atomic_write_text(path, f"{username}:{hashed}\n", mode=0o600)
    return True


def _cost(hashed: str) -> int | None:
    """The cost of a bcrypt hash (`$2b$05$...` -> 5), or None when it is not one."""
    parts = hashed.split("$")
    return int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else None


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _holds_only(directory: Path, name: str) -> bool:
    try:
        return os.listdir(directory) == [name]
    except OSError:
        return False


def _remove_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass
