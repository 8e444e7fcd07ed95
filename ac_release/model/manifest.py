"""The release manifest `dist/<version>/release.json`: what every stage produced, written atomically.

Layout: `{"schema": 2, "version": ..., "wheel": {...}, "targets": {"<target>": {"sign": {...}, ...}}}`. Records are
read and written as the typed records of ac_release/model/records.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_text
from ac_release.model.records import RECORDS, Record, WheelRecord

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
    """What keeps `data` from being a manifest of this schema: an object with schema, version, the wheel record
    (or null) and per-target records of known stages, each of which reads back as its typed record."""
    if not isinstance(data, dict):
        kind = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(data), "null")
        return f"a JSON {kind}, not an object"
    missing = [key for key in ("schema", "version", "wheel", "targets") if key not in data]
    if missing:
        return f"no {', '.join(missing)}"
    if data["schema"] != SCHEMA or type(data["schema"]) is not int:
        return f"schema {data['schema']!r}, this pipeline reads schema {SCHEMA}"
    if not isinstance(data["version"], str):
        return "version is not a string"
    records = [("wheel", WheelRecord, data["wheel"])] if data["wheel"] is not None else []
    targets = data["targets"]
    if not isinstance(targets, dict) or not all(isinstance(stages, dict) for stages in targets.values()):
        return "targets is not an object of per-target stage records"
    for target, stages in targets.items():
        for stage, raw in stages.items():
            if stage not in RECORDS or stage == WheelRecord.STAGE:
                return f"unknown stage {stage!r} under targets.{target}"
            records.append((f"targets.{target}.{stage}", RECORDS[stage], raw))
    for where, kind, raw in records:
        if not isinstance(raw, dict):
            return f"{where} is not an object"
        try:
            kind.from_json(raw)
        except (TypeError, KeyError, AttributeError, ValueError) as exc:
            return f"{where} is not a {kind.STAGE} record: {exc}"
    return None
