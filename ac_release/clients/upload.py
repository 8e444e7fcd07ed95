"""Upload one artifact to a pip index with twine: bounded in time, retried, and checked against the index after an
attempt that may have stored the file before it failed (a timeout, a 502 from a proxy whose index went on, a refusal
of a file that exists: twine itself sends an upload answered 5xx again, without asking)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import parse_sdist_filename, parse_wheel_filename

from ac_release.clients import faults, proc
from ac_release.clients.index import project_files
from ac_release.clients.retry import RetriesSpent, Transient, retry
from ac_release.clients.tlsclients import ca_env
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.config import IndexSettings

# twine prints these for failures that may pass; anything else (bad credentials, a refused file) is final.
_TRANSIENT = (
    "ConnectionError",
    "Connection refused",
    "timed out",
    "502 Bad Gateway",
    "503 Service Unavailable",
    "504 Gateway",
    "RemoteDisconnected",
    "Max retries exceeded",
)


def upload(index: IndexSettings, artifact: Path, password: str, attestations: Sequence[Path] = ()) -> str:
    """Upload `artifact` to `index` with twine (the password through the environment, never argv), with its PEP 740
    `attestations` (`twine upload --attestations`; an index that cannot store them, like pypiserver, drops them).

    Returns "uploaded", or "landed" when an attempt failed (timed out, answered 5xx, refused as existing) but the
    index then served the file with our sha256; an attempt that may pass is retried only once the index, asked,
    does not serve the file. Raises ReleaseError on refused credentials, on other bytes under our name, or once the
    retries are spent.
    Failpoints: `during:upload-<n>` fires once more than half the file reached the index, `after:upload-<n>` once
    the upload is done (n counts the uploads of this process from 1).
    """
    argv = [
        sys.executable,
        "-m",
        "twine",
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--repository-url",
        index.upload_url,
        "--username",
        index.username,
        *(["--attestations"] if attestations else []),
        str(artifact),
        *map(str, attestations),
    ]
    env = {**proc.tool_env(), **ca_env(index.ca_file), "TWINE_PASSWORD": password}
    number = faults.count("upload")
    failpoint = f"during:upload-{number}"
    size = artifact.stat().st_size

    def mid_transfer(process: subprocess.Popen) -> None:
        if faults.armed(failpoint) and _bytes_delivered(process.pid) > size // 2:
            faults.reached(failpoint)

    def attempt() -> str:
        try:
            result = proc.run(argv, kind="twine upload", env=env, while_running=mid_transfer)
        except proc.Timeout as timeout:
            if _landed(index, artifact, password, "timed out"):
                return "landed"
            raise Transient(str(timeout)) from None
        faults.reached(failpoint)  # the whole file went before the watch saw half of it
        if result.returncode == 0:
            return "uploaded"
        output = (result.stdout + result.stderr).decode(errors="replace").replace(password, "***")
        if any(marker in output for marker in _TRANSIENT):
            error = _twine_error(output)
            if _landed(index, artifact, password, f"failed ({error})"):
                return "landed"
            raise Transient(error)
        if re.search(r"\b40[13] (Unauthorized|Forbidden)", output):
            raise ReleaseError(
                f"index {index.url} refused the upload credentials of {index.username!r}: "
                f"check {index.password.describe()}"
            )
        if _landed(index, artifact, password, f"was refused ({_twine_error(output)})"):
            return "landed"  # an earlier attempt, or twine's own resend after a 5xx, stored it
        raise ReleaseError(f"twine upload of {artifact.name} failed: {_twine_error(output)}")

    outcome = retry(attempt, what=f"upload of {artifact.name} to {index.url}")
    faults.reached(f"after:upload-{number}")
    return outcome


def project_of(filename: str) -> str:
    if filename.endswith(".whl"):
        return str(parse_wheel_filename(filename)[0])
    return str(parse_sdist_filename(filename)[0])


def _landed(index: IndexSettings, artifact: Path, password: str, what: str) -> bool:
    """After an upload that `what` (timed out, failed (...), was refused (...)): did the file land? Ours -> yes;
    absent, or the index does not answer (asked again after the next attempt) -> no; other bytes -> refuse."""
    try:
        served = project_files(index, password, project_of(artifact.name), attempts=1).get(artifact.name)
    except RetriesSpent:
        return False
    if served is None:
        return False
    ours = sha256_file(artifact)
    if served.sha256 != ours:
        raise ReleaseError(
            f"the upload of {artifact.name} {what}, and {index.url} now serves it with sha256 "
            f"{served.sha256 or 'unknown'}, ours is {ours}: published files are immutable, check the index"
        )
    return True


def _bytes_delivered(pid: int) -> int:
    """Bytes the process's TCP connections sent and had acknowledged by the peer (`ss` reads the kernel's TCP_INFO):
    what reached the server, unlike counters of bytes written, which do not see socket sends."""
    if not shutil.which("ss"):
        raise ReleaseError("the upload failpoints need `ss` (Debian package iproute2)")
    output = subprocess.run(
        ["ss", "-H", "-t", "-i", "-n", "-p", "state", "established"], capture_output=True, text=True
    ).stdout
    total, ours = 0, False
    for line in output.splitlines():
        if not line[:1].isspace():  # a socket's first line names its process; the indented one holds its counters
            ours = f"pid={pid}," in line
        elif ours and (match := re.search(r"\bbytes_acked:(\d+)", line)):
            total += int(match[1])
    return total


def _twine_error(output: str) -> str:
    """The line of twine's output that says what failed, without its colours and level."""
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "Error" in line]
    return re.sub(r"^ERROR\s+", "", (errors or lines or ["no output"])[-1])
