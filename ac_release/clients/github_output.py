"""Step outputs of a GitHub Actions job: `name=value` lines appended to the file $GITHUB_OUTPUT names."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ac_release.core.errors import ReleaseError


def require_github_output() -> Path:
    """The file of the step's outputs; checked before a command writes anything else."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        raise ReleaseError("--github-output needs $GITHUB_OUTPUT (set by GitHub Actions in every step); unset here")
    return Path(path)


def write_github_output(values: dict[str, str]) -> Path:
    """Append every value to $GITHUB_OUTPUT: one `name=value` line, or for a value of several lines GitHub's
    `name<<DELIMITER` form with a random delimiter (a line of the value can never end the value early)."""
    path = require_github_output()
    lines = []
    for name, value in values.items():
        if "\n" in value:
            delimiter = f"ac_release_{secrets.token_hex(16)}"
            lines.append(f"{name}<<{delimiter}\n{value.rstrip(chr(10))}\n{delimiter}\n")
        else:
            lines.append(f"{name}={value}\n")
    try:
        with open(path, "a", encoding="utf-8") as output:
            output.write("".join(lines))
    except OSError as exc:
        raise ReleaseError(f"cannot write the step output to $GITHUB_OUTPUT ({path}): {exc.strerror}") from None
    return Path(path)
