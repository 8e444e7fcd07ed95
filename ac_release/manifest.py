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
        data, problem = _read(path)
        if problem is None:
            problem = _schema_problem(data)
        if problem is not None:
            raise ReleaseError(
                f"{path} is not a valid release manifest ({problem}): restore it or remove {dist} to start over"
            )
        if data["version"] != version:
            raise ReleaseError(f"{path} belongs to {data['version']!r} (schema {data['schema']}), not {version}")
        return cls(path, data)

    def stage(self, name: str) -> dict[str, Any] | None:
        return self.data["stages"].get(name)

    def record(self, name: str, result: dict[str, Any]) -> None:
        self.data["stages"][name] = result
        self.save()

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")


def _read(path: Path) -> tuple[Any, str | None]:
    """The parsed JSON, or what makes the file unreadable."""
    if path.is_dir():
        return None, "a directory"
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


def _schema_problem(data: Any) -> str | None:
    """What keeps `data` from being a manifest of this schema: an object with schema, version and stage records."""
    if not isinstance(data, dict):
        kind = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(data), "null")
        return f"a JSON {kind}, not an object"
    missing = [key for key in ("schema", "version", "stages") if key not in data]
    if missing:
        return f"no {', '.join(missing)}"
    if data["schema"] != SCHEMA or type(data["schema"]) is not int:
        return f"schema {data['schema']!r}, this pipeline reads schema {SCHEMA}"
    if not isinstance(data["version"], str):
        return "version is not a string"
    stages = data["stages"]
    if not isinstance(stages, dict) or not all(isinstance(record, dict) for record in stages.values()):
        return "stages is not an object of stage records"
    return None
