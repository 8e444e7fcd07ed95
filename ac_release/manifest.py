"""The release manifest `dist/<version>/release.json`: what every stage produced, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ac_release.errors import ReleaseError
from ac_release.fsutil import atomic_write_text

SCHEMA = 1
FILENAME = "release.json"


class Manifest:
    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    @classmethod
    def load(cls, dist: Path, version: str) -> Manifest:
        path = dist / FILENAME
        if not path.exists():
            return cls(path, {"schema": SCHEMA, "version": version, "stages": {}})
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

    def stage(self, name: str) -> dict[str, Any] | None:
        return self.data["stages"].get(name)

    def record(self, name: str, result: dict[str, Any]) -> None:
        self.data["stages"][name] = result
        self.save()

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")
