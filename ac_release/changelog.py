"""`changelog/<airflow>.md`: one file per Airflow version, newest build first (`## 2.2.4-1, 2026-11-22`)."""

from __future__ import annotations

import re
from pathlib import Path

from ac_release.errors import ReleaseError

HEADING = re.compile(r"^## (?P<version>\S+), (?P<date>\S+)$", re.MULTILINE)


def builds(changelog_dir: Path, airflow: str) -> list[tuple[str, str]]:
    """(version, date) of every build entry, in file order (newest first)."""
    path = changelog_dir / f"{airflow}.md"
    if not path.exists():
        raise ReleaseError(f"no changelog for Airflow {airflow}: add {path}")
    return [(m["version"], m["date"]) for m in HEADING.finditer(path.read_text())]


def newest_build(changelog_dir: Path, airflow: str) -> str:
    entries = builds(changelog_dir, airflow)
    if not entries:
        raise ReleaseError(f"changelog/{airflow}.md has no build entry (`## {airflow}-1, YYYY-MM-DD`)")
    return entries[0][0]
