"""free_port (services/ports.py), the ports of test and benchmark configurations' services: a port picked is kept
by no other picker, on this machine, while the picking process lives, and no client's source port takes it before
the service binds it (it is outside the kernel's ephemeral range)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ac_release.core.errors import ReleaseError
from ac_release.services import ports
from ac_release.services.ports import free_port
from tests.helpers import REPO

PICKER = """
import sys
from ac_release.services.ports import free_port
print(" ".join(str(free_port()) for _ in range(int(sys.argv[1]))), flush=True)
sys.stdin.read()  # the ports stay picked until the test is done with them
"""


def _ephemeral() -> tuple[int, int]:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(low), int(high)


def test_two_processes_picking_ports_at_once_never_get_the_same_one():
    """Was: each bound port 0 and closed it, so the kernel could hand the same port to both."""
    pickers = [
        subprocess.Popen(
            [sys.executable, "-c", PICKER, "300"], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        picked = [int(port) for picker in pickers for port in picker.stdout.readline().split()]
    finally:
        for picker in pickers:
            picker.stdin.close()
            picker.wait(timeout=60)
    assert len(picked) == 600
    assert [port for port, count in Counter(picked).items() if count > 1] == []


def test_a_picked_port_is_outside_the_ephemeral_range_and_bindable():
    """Was: a port of the ephemeral range, which any outgoing connection may take as its source port."""
    low, high = _ephemeral()
    for _ in range(20):
        port = free_port()
        assert not low <= port <= high, (port, low, high)
        assert 1024 <= port <= 65535
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_something_listens_on_is_not_picked(tmp_path, monkeypatch):
    with socket.socket() as scratch:
        scratch.bind(("127.0.0.1", 0))
        other = scratch.getsockname()[1]
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        taken = listening.getsockname()[1]
        monkeypatch.setenv(ports.PORTS_DIR_ENV, str(tmp_path / "ports"))
        monkeypatch.setattr(ports, "_port_candidates", lambda: [taken, other])
        assert free_port() == other
        with pytest.raises(ReleaseError, match="no free port"):
            free_port()  # `other` is this process's now, `taken` someone else's
