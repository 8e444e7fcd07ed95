"""The task boundary: every failure is one line on stderr and a non-zero exit; a bug says so and how to see more."""

import errno
import os
import subprocess
import sys

import pytest
from invoke import Exit

from ac_release.commands.cli import reports_errors
from tests.helpers import REPO, write_config

INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]


def _exit_of(exception: BaseException) -> Exit:
    @reports_errors
    def task():
        raise exception

    with pytest.raises(Exit) as raised:
        task()
    return raised.value


@pytest.mark.parametrize(
    ("exception", "message", "code"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/srv/dist/x.whl"),
            "error: no space left on device writing /srv/dist/x.whl: free some space and run again",
            1,
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/srv/dist"),
            "error: permission denied: /srv/dist: fix its permissions or run as its owner",
            1,
        ),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "/srv/x"),
            "error: No such file or directory: /srv/x",
            1,
        ),
        (
            UnicodeDecodeError("utf-8", b"ab\xff", 2, 3, "invalid start byte"),
            "error: a file is not UTF-8 (invalid start byte at offset 2): save it as UTF-8 "
            "(run with AC_RELEASE_DEBUG=1 to see which)",
            1,
        ),
        (KeyboardInterrupt(), "interrupted", 130),
        (
            KeyError("stages"),
            "error: internal error: KeyError: 'stages' (run with AC_RELEASE_DEBUG=1 for the traceback)",
            2,
        ),
        (
            ValueError("two\nlines"),
            "error: internal error: ValueError: two lines (run with AC_RELEASE_DEBUG=1 for the traceback)",
            2,
        ),
    ],
)
def test_every_failure_is_one_line_and_a_nonzero_exit(monkeypatch, exception, message, code):
    monkeypatch.delenv("AC_RELEASE_DEBUG", raising=False)
    exit = _exit_of(exception)
    assert (exit.message, exit.code) == (message, code)


def test_a_commands_own_exit_status_passes_the_boundary_unchanged(monkeypatch):
    """`invoke audit` exits 3 for pending security updates: not an internal error (2) or a failure (1)."""
    monkeypatch.delenv("AC_RELEASE_DEBUG", raising=False)
    exit = _exit_of(Exit("pending security updates: Astronomer Certified 2.2.4-1", code=3))
    assert (exit.message, exit.code) == ("pending security updates: Astronomer Certified 2.2.4-1", 3)


def test_release_error_spanning_lines_is_joined(monkeypatch):
    from ac_release.core.errors import ReleaseError

    exit = _exit_of(ReleaseError("docker push failed:\n  layer 3\n  denied"))
    assert (exit.message, exit.code) == ("error: docker push failed: layer 3 denied", 1)


def test_debug_shows_the_traceback_of_a_bug(monkeypatch):
    monkeypatch.setenv("AC_RELEASE_DEBUG", "1")

    @reports_errors
    def task():
        raise KeyError("stages")

    with pytest.raises(KeyError):
        task()


def test_output_to_a_full_disk_is_one_line(tmp_path):
    """Reproduced: the plan printed to a full device (/dev/full gives ENOSPC) was a traceback."""
    config = write_config(tmp_path)
    env = {**os.environ, "AC_RELEASE_CONFIG": str(config), "AC_RELEASE_CACHE": str(tmp_path / "cache")}
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [*INVOKE, "status", "2.2.4-1"], stdout=full, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
        )
    assert result.stderr.splitlines() == [
        "error: no space left on device writing the output: free some space and run again"
    ]
    assert result.returncode == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["release"], "error: 'release' did not receive required positional arguments: 'version'"),
        (["release", "2.2.4-1", "--frobnicate"], "error: No idea what '--frobnicate' is!"),
        (["release", "2.2.4-1", "--target"], "error: Flag <Argument: target (t)> needed value and was not given one!"),
    ],
)
def test_command_line_errors_are_one_error_line(tmp_path, args, message):
    config = write_config(tmp_path)
    env = {**os.environ, "AC_RELEASE_CONFIG": str(config), "AC_RELEASE_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([*INVOKE, *args], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.stderr.splitlines() == [message]
    assert result.returncode == 1
