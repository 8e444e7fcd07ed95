"""What makes a build, as one digest: the git-tracked content of the line's wheel recipe, the images, the pipeline,
the line's changelog and pyproject.toml. A dev build publishes it among its release files (`names.BUILD_INPUTS`), so
that a later nightly of the same day, on any machine, can tell whether it would build the same thing again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ac_release.clients.git import git
from ac_release.core.errors import ReleaseError
from ac_release.model.version import ACVersion


def input_paths(airflow: str) -> list[str]:
    return [f"wheel/{airflow}", "images", "ac_release", f"changelog/{airflow}.md", "pyproject.toml"]


def digest(root: Path, airflow: str) -> str:
    """sha256 over the path, mode and blob id of every tracked file of the inputs (as git's index holds them: the
    commit's content once the tree is clean, which a nightly demands)."""
    listed = git(root, "ls-files", "--stage", "-z", "--", *input_paths(airflow))
    if not listed:
        raise ReleaseError(f"no tracked inputs of line {airflow} in {root}: is it the release repository?")
    return hashlib.sha256(listed.encode()).hexdigest()


def record_bytes(root: Path, version: ACVersion) -> bytes:
    """The published record: the same bytes for the same inputs and version (no commit, no time)."""
    record = {"version": str(version), "paths": input_paths(version.airflow_version)}
    record["sha256"] = digest(root, version.airflow_version)
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()


def recorded_digest(data: bytes) -> str | None:
    """The digest a published record names, or None when it is not one."""
    try:
        value = json.loads(data).get("sha256")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
