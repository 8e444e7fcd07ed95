"""What a failure looks like to the release engineer: one line on stderr, never a traceback unless asked for."""

from __future__ import annotations

import errno

DEBUG_ENV = "AC_RELEASE_DEBUG"


class ReleaseError(Exception):
    """A failure the release engineer can act on.

    The message is one line saying what is wrong and what to do; the CLI prints it without a traceback and
    exits non-zero. Never put a secret in it.
    """


def one_line(message: str) -> str:
    """A message as one line: the lines of a multi-line message (a tool's output tail) joined by spaces."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def describe_os_error(exc: OSError) -> str:
    """A full disk, a permission or any other system error, with the file it concerns and what to do."""
    files = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    if exc.errno == errno.ENOSPC:
        where = " ".join(files) if files else "the output"
        return f"no space left on device writing {where}: free some space and run again"
    where = "".join(f": {f}" for f in files)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied{where}: fix its permissions or run as its owner"
    return f"{exc.strerror or exc}{where}"


def describe_decode_error(exc: UnicodeDecodeError) -> str:
    return (
        f"a file is not UTF-8 ({exc.reason} at offset {exc.start}): save it as UTF-8 "
        f"(run with {DEBUG_ENV}=1 to see which)"
    )
