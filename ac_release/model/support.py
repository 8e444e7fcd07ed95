"""The fleet's support policy (wheel/support.toml): which release lines are supported, until when, which are LTS.

Kept apart from each line's line.toml on purpose: line.toml is an input of the line's builds (the wheel stage
fingerprints its text), and a line's end of life changing must not make its wheel another one.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import read_utf8

SUPPORT_FILE = "support.toml"
FORCE_FLAG = "--force-unsupported"


@dataclass(frozen=True)
class Support:
    """A line is supported through `until` (inclusive); `lts`: a long-term-support line."""

    line: str
    until: dt.date
    lts: bool = False

    def supported_on(self, day: dt.date) -> bool:
        return day <= self.until

    @property
    def summary(self) -> str:
        return f"{'LTS, ' if self.lts else ''}supported until {self.until.isoformat()}"


def read_support(wheel_dir: Path) -> dict[str, Support]:
    """Every line's entry of wheel/support.toml, checked: a date for `until`, a bool for `lts`, nothing else."""
    path = wheel_dir / SUPPORT_FILE
    if not path.is_file():
        raise ReleaseError(f"{path} is missing: it says which release lines are supported and until when")
    try:
        data = tomllib.loads(read_utf8(path))
    except tomllib.TOMLDecodeError as exc:
        raise ReleaseError(f"{path} is not valid TOML ({exc}): fix it") from None
    entries = {}
    for line, entry in (data.get("lines") or {}).items():
        where = f'{path.name} [lines."{line}"]'
        if not isinstance(entry, dict) or set(entry) - {"until", "lts"}:
            raise ReleaseError(f"{where}: expected only `until` (a date) and `lts` (true or false)")
        until, lts = entry.get("until"), entry.get("lts", False)
        if not isinstance(until, dt.date) or isinstance(until, dt.datetime):
            raise ReleaseError(f"{where}: `until` must be a date (until = 2027-11-30), not {until!r}")
        if not isinstance(lts, bool):
            raise ReleaseError(f"{where}: `lts` must be true or false, not {lts!r}")
        entries[line] = Support(line, until, lts)
    return entries


def no_entry(wheel_dir: Path, line: str) -> ReleaseError:
    return ReleaseError(
        f'release line {line} has no entry in {wheel_dir / SUPPORT_FILE}: add [lines."{line}"] with `until` '
        "(the last day it is supported) and `lts`"
    )


def unsupported_reason(support: Support, today: dt.date) -> str | None:
    """Why a release of the line is refused on `today` (None: it is supported)."""
    if support.supported_on(today):
        return None
    return (
        f"release line {support.line} is not supported since {support.until.isoformat()} ({SUPPORT_FILE}): "
        f"release it anyway with {FORCE_FLAG}"
    )
