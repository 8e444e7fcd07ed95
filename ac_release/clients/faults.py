"""Failpoints for the resume tests: with AC_RELEASE_FAULT=<point> the release kills itself (SIGKILL, its whole
process group, children included) when it reaches that point. Points: `after:<stage>`, `during:upload-<n>`,
`after:upload-<n>`, `during:push-<n>`, `after:push-<n>` (n counts from 1 within the run). A service started with
the variable set kills its own process group at its points: `during:rekor-append` (the local Sigstore),
`during:index-store` (the index, half a package written under its temporary name)."""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "AC_RELEASE_FAULT"
_counts: Counter[str] = Counter()


def armed(point: str) -> bool:
    return os.environ.get(ENV) == point


def reached(point: str) -> None:
    if armed(point):
        from ac_release.clients import proc

        for group in proc.live_groups():  # children run in process groups of their own
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.killpg(os.getpgid(0), signal.SIGKILL)


def count(kind: str) -> int:
    """Number the next operation of a kind (`upload`, `push`)."""
    _counts[kind] += 1
    return _counts[kind]
