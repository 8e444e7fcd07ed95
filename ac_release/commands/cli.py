"""The command line's boundary: every failure of a task is one line on stderr and a non-zero exit, a bad command line
too (`command`, `one_line_parse_errors`); and the help of every task's arguments, each text written once."""

from __future__ import annotations

import errno
import functools
import os
import sys
from pathlib import Path

from invoke import Exit, ParseError, Program, task

from ac_release.core.errors import DEBUG_ENV, ReleaseError, describe_decode_error, describe_os_error, one_line
from ac_release.pipeline.run import RELEASE

# The help of the arguments, each written once: those several tasks share, then each task's own.
VERSION = "version, e.g. 2.2.4-1 (AC) or runtime-4.2.0 (Astro Runtime)"
TARGET = "a target of release.toml (default: local)"
LINE = "Airflow version of the release line, e.g. 2.2.4"
MATRIX_OUTPUT = "also append `matrix=<json>` to the file named by $GITHUB_OUTPUT (a GitHub Actions step)"
VERSION_HELP = {"version": VERSION, "target": TARGET}
SERVICES_HELP = {"target": "a target of release.toml that runs services here (default: the default target)"}
RELEASE_HELP = {
    **VERSION_HELP,
    "dry-run": "print every file, tag, digest comparison and remote the release would write; write nothing",
    "stages": "only these stages, after the preflight (a workflow job's part), e.g. wheel,sign,publish; of "
    + ",".join(RELEASE),
    "flavour": "only this image flavour (a workflow's images job; `invoke matrix <version>` lists them)",
    "platform": "one platform only, e.g. linux/arm64 (a workflow's images job); default: every platform of the release",
    "force-unsupported": "release it even though its line is past its support (wheel/support.toml): an emergency fix",
}
NIGHTLY_HELP = {
    "line": LINE,
    "target": f"{TARGET}; the build goes to its dev index and registries",
    "dry-run": "print the nightly's version and why, then the plan; write nothing",
    "date": "the nightly's day, YYYY-MM-DD (default: today in UTC)",
}
BENCH_HELP = {
    "version": "AC version whose published wheels are built into images, e.g. 2.2.4-1",
    "target": TARGET,
    "release": "also release the version cold on a scratch target of its own, timed per stage (default: on)",
    "json": "write the figures as JSON here (default: <cache>/bench/<version>-<UTC time>.json)",
}
MATRIX_HELP = {
    "version": "version (2.2.4-1, runtime-4.2.0), or `newest`: each line's newest build (ci.yml's smoke jobs)",
    "target": f"{TARGET}; a version's rows are the platforms the release builds for it",
    "github-output": MATRIX_OUTPUT,
}
AUDIT_HELP = {
    "target": f"{TARGET}; whose registries hold the releases audited",
    "json": "also write the audit as JSON to this file",
}
LINES_HELP = {
    "github-output": MATRIX_OUTPUT,
    "all": "every declared line, also those past their support (default: the lines supported today)",
}
LOCK_HELP = {"line": "a release line (Airflow version, e.g. 2.2.4), or a product version with pins (runtime-4.2.0)"}
LOCK_TOOLS_HELP = {"upgrade": "re-resolve every pin instead of keeping the ones already in the lock"}
BACKPORT_HELP = {
    "line": LINE,
    "patch": "a `git format-patch` file: an upstream commit or a fix of this fork",
    "github-output": "also append the pull request of backport.yml (build, branch, title, body) to $GITHUB_OUTPUT",
}
ACTIONS_ENV_HELP = {
    "target": "a target of release.toml with services of its own (default: staging)",
    "workflow": "the workflow file under .github/workflows/ whose job signs (default: release.yml)",
    "ref": "the git ref the run is for (default: refs/heads/main)",
    "repository": "OWNER/REPO (default: astronomer/ap-airflow)",
    "event": "the event that triggered the run (default: workflow_dispatch)",
    "environment": "the job's environment (default: the target's name; '' for none)",
    "sha": "the commit of the run (default: the checkout's HEAD)",
    "lifetime": "seconds the request token is valid (default 7200: a whole workflow run; at most 21600, a job's limit)",
}


def reports_errors(function):
    """Every failure becomes one line on stderr and a non-zero exit, never a traceback.

    ReleaseError, system errors (full disk, permissions) and undecodable files exit 1; Ctrl-C exits 130; anything
    else is a bug of the pipeline: one line and exit 2, and the traceback with AC_RELEASE_DEBUG=1.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exit:  # a command's own exit status (the audit's 3): already what the command line reports
            raise
        except ReleaseError as exc:
            raise Exit(f"error: {one_line(exc)}", code=1) from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EPIPE) and exc.filename is None:
                discard_pending_output()
            raise Exit(f"error: {one_line(describe_os_error(exc))}", code=1) from None
        except UnicodeDecodeError as exc:
            raise Exit(f"error: {describe_decode_error(exc)}", code=1) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV) == "1":
                raise
            raise Exit(
                f"error: internal error: {type(exc).__name__}: {one_line(exc)} "
                f"(run with {DEBUG_ENV}=1 for the traceback)",
                code=2,
            ) from None

    return wrapper


def command(function=None, **options):
    """invoke's `@task` (bare or with options) around a function that reports its errors as one line."""
    if function is None:
        return lambda function: task(**options)(reports_errors(function))
    return task(reports_errors(function))


def discard_pending_output() -> None:
    """Standard output cannot be written (full disk, closed pipe): drop what is buffered, so that flushing it at
    exit adds no second message to the one line on stderr."""
    try:
        sys.stdout.flush()
    except OSError:
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


_parse_tasks = Program.parse_tasks


def _parse_tasks_with_one_error_line(self: Program) -> None:
    """invoke prints a bad command line (unknown flag, missing version) as a bare line; ours start with `error: `."""
    try:
        _parse_tasks(self)
    except ParseError as exc:
        raise Exit(f"error: {one_line(exc)}", code=1) from None


def one_line_parse_errors() -> None:
    """Make invoke's parser report a bad command line as one `error: ` line and exit 1 (idempotent)."""
    Program.parse_tasks = _parse_tasks_with_one_error_line


def print_written(paths, root: Path) -> None:
    """`wrote <path>` for each file a command wrote, relative to the repository."""
    for path in paths:
        print(f"wrote {Path(path).relative_to(root)}")
