"""Subprocesses with a time bound: a hung skopeo, twine, docker or sigstore stops the release with one line instead
of lasting until the CI job dies.

Each child runs in its own process group, so a timeout stops it with everything it started. The failpoints
(faults.py) kill these groups too, since they are no longer in the release's own group.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ac_release.core.errors import ReleaseError

# Seconds per kind of command: generous, they only stop what is stuck. The one place these bounds are declared.
TIMEOUTS: dict[str, float] = {
    "skopeo": 120,  # inspect or list-tags of one repository
    "docker": 60 * 60,  # any other docker CLI call: inspect, tag, pull, or a `docker run` building the wheels
    "docker build": 60 * 60,
    "docker push": 30 * 60,
    "sigstore": 5 * 60,
    "twine upload": 10 * 60,
    "git": 2 * 60,
    "gpgv": 60,  # one InRelease of Debian's archive
    "pytest": 2 * 60 * 60,  # a whole smoke or upgrade session of the test stage
}
_STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
_WORD = re.compile(r"[a-z][a-z0-9-]*")

_live_groups: set[int] = set()

# What any tool the pipeline runs (sigstore, twine, cosign, syft) gets of the environment: where its programs and
# home are, temporary files, the locale, the proxies and the CAs. Nothing else (a password, a token, the tool's own
# settings, which the call sets itself) passes; docker and the test sessions have lists of their own.
_TOOL_ENV_NAMES = frozenset(
    {"PATH", "HOME", "USER", "TMPDIR", "LANG", "LANGUAGE", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"}
)
_TOOL_ENV_PREFIXES = ("LC_",)
_PROXIES = frozenset({"http_proxy", "https_proxy", "no_proxy", "all_proxy"})  # either case
# GitHub Actions' ambient identity: what a signing tool asks the job's OIDC provider for a token with.
AMBIENT_IDENTITY_ENV = ("GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")


class Timeout(ReleaseError):
    """A command ran past its bound and was stopped."""


def stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...: field 3 onwards), or None when
    the process is gone or unreadable. The name is skipped by its last `)`: it may hold spaces and parentheses."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def live_groups() -> set[int]:
    """Process groups of the children running now (the failpoints kill them with the release)."""
    return set(_live_groups)


def tool_env(also: Sequence[str] = ()) -> dict[str, str]:
    """The allowed part of this process's environment for a tool, plus the variables named in `also` (e.g.
    AMBIENT_IDENTITY_ENV, DOCKER_CONFIG); the caller adds what it sets itself."""
    return {
        name: value
        for name, value in os.environ.items()
        if name in _TOOL_ENV_NAMES or name.startswith(_TOOL_ENV_PREFIXES) or name.lower() in _PROXIES or name in also
    }


def describe(argv: Sequence[str]) -> str:
    """The program and its leading subcommand words (`twine upload`, `skopeo inspect`): never an option or a
    value, which could hold a URL with credentials or a token."""
    args = list(argv)
    if len(args) >= 3 and args[1] == "-m":  # python -m twine ...
        args = args[2:]
    words = [Path(args[0]).name]
    for arg in args[1:3]:
        if not _WORD.fullmatch(arg):
            break
        words.append(arg)
    return " ".join(words)


def run(
    argv: Sequence[str],
    *,
    kind: str,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    stdin=None,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    cwd: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    while_running: Callable[[subprocess.Popen], None] | None = None,
) -> subprocess.CompletedProcess:
    """Run `argv` bounded by TIMEOUTS[kind]; output is bytes. `on_line` sees each line of piped output as it comes;
    `while_running` is called about every 20 ms until the process ends. On timeout the process group is stopped
    (SIGTERM, then SIGKILL) and Timeout names the command."""
    bound = TIMEOUTS[kind]
    process = subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE if input is not None else stdin,
        stdout=stdout,
        stderr=stderr,
        process_group=0,
    )
    _live_groups.add(process.pid)
    threads, outputs = [], {}
    for name, stream in (("stdout", process.stdout), ("stderr", process.stderr)):
        if stream is not None:
            outputs[name] = bytearray()
            threads.append(threading.Thread(target=_drain, args=(stream, outputs[name], on_line), daemon=True))
    if input is not None:
        threads.append(threading.Thread(target=_feed, args=(process.stdin, input), daemon=True))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + bound
    try:
        while True:
            try:
                process.wait(timeout=0.02)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    _stop_group(process)
                    raise Timeout(
                        f"{describe(argv)} did not finish within {bound:g} s and was stopped; "
                        f"check the network or the service it talks to, then run again"
                    ) from None
                if while_running:
                    while_running(process)
    except BaseException:
        _stop_group(process)
        raise
    finally:
        _live_groups.discard(process.pid)
    for thread in threads:  # something the command left running may still hold its output open
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        _kill(process.pid, signal.SIGKILL)
        for thread in threads:
            thread.join()
    return subprocess.CompletedProcess(
        list(argv), process.returncode, bytes(outputs.get("stdout", b"")), bytes(outputs.get("stderr", b""))
    )


def _drain(stream, into: bytearray, on_line: Callable[[str], None] | None) -> None:
    with stream:
        for line in iter(stream.readline, b""):
            into += line
            if on_line:
                on_line(line.decode(errors="replace"))


def _feed(stream, data: bytes) -> None:
    try:
        with stream:
            stream.write(data)
    except BrokenPipeError:
        pass  # the process exited without reading everything; its exit code tells


def _stop_group(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        _kill(process.pid, signal.SIGKILL)  # the leader is gone; what it started may not be
        return
    _kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_GRACE)
    except subprocess.TimeoutExpired:
        pass
    _kill(process.pid, signal.SIGKILL)
    process.wait()


def _kill(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass
