"""The release manifest `dist/<version>/release.json`: what every stage produced, written atomically.

Layout: `{"schema": 2, "version": ..., "wheel": {...}, "targets": {"<target>": {"sign": {...}, ...}}}`. Records are
read and written as the typed records of ac_release/records.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from ac_release.errors import ReleaseError
from ac_release.fsutil import atomic_write_text
from ac_release.records import Record, WheelRecord

SCHEMA = 2
FILENAME = "release.json"
R = TypeVar("R", bound=Record)


class Manifest:
    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    @classmethod
    def load(cls, dist: Path, version: str) -> Manifest:
        path = dist / FILENAME
        if not path.exists():
            return cls(path, {"schema": SCHEMA, "version": version, "wheel": None, "targets": {}})
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ReleaseError(
                f"{path} is not valid JSON ({exc.msg}); restore it or remove {dist} to start over"
            ) from exc
        if data.get("version") != version or data.get("schema") != SCHEMA:
            raise ReleaseError(
                f"{path} belongs to {data.get('version')!r} (schema {data.get('schema')}), not {version}"
            )
        return cls(path, data)

    def get(self, kind: type[R], target: str | None = None) -> R | None:
        """The record of a stage: the wheel stage's (target-independent), or another stage's for `target`."""
        raw = self.data.get("wheel") if kind is WheelRecord else self.data["targets"].get(target, {}).get(kind.STAGE)
        return kind.from_json(raw) if raw else None

    def put(self, record: Record, target: str | None = None) -> None:
        if isinstance(record, WheelRecord):
            self.data["wheel"] = record.to_json()
        else:
            assert target, f"the {record.STAGE} record belongs to a target"
            self.data["targets"].setdefault(target, {})[record.STAGE] = record.to_json()
        self.save()

    def stages(self, target: str) -> list[str]:
        """The stages with a record for `target` (the wheel stage's counts for every target)."""
        return (["wheel"] if self.data.get("wheel") else []) + sorted(self.data["targets"].get(target, {}))

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")
