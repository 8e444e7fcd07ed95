"""Retries with exponential backoff for transient network failures; anything else fails at once."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
from collections.abc import Callable
from typing import TypeVar

from ac_release.core.errors import ReleaseError

T = TypeVar("T")


class Transient(Exception):
    """Raised by a step to say: this failure may pass, try again."""


class RetriesSpent(ReleaseError):
    """Every attempt failed with a failure that may pass: the server did not answer, as far as we know."""


def is_transient(exc: BaseException) -> bool:
    # http.client.HTTPException: a cut body (IncompleteRead), a garbled status line, ... (RemoteDisconnected is
    # also a ConnectionError)
    if isinstance(exc, Transient | ConnectionError | TimeoutError | socket.timeout | http.client.HTTPException):
        return True
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    return isinstance(exc, urllib.error.URLError)


def backoff_sleep(seconds: float) -> None:
    time.sleep(seconds)


def retry(
    step: Callable[[], T],
    *,
    what: str,
    attempts: int = 4,
    first_delay: float = 1.0,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """`step()`, again after a pause (doubling from `first_delay`) while it fails transiently. `sleep`: the pause,
    `backoff_sleep` unless given (a test sets that one to no pause, leaving every other `time.sleep` alone)."""
    sleep = sleep or backoff_sleep
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise RetriesSpent(f"{what} failed after {attempts} attempts: {_reason(exc)}") from exc
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__
