"""free_port: loopback ports for the services of scratch configurations (tests, benchmarks), each kept for the process
that picked it until its service binds it."""

from __future__ import annotations

import fcntl
import os
import random
import socket
import threading
from pathlib import Path

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import machine_wide_directory

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
    if directory == PORTS_DIR:
        return machine_wide_directory(directory)
    directory.mkdir(parents=True, exist_ok=True)
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
