"""Apply a line's patch series to an extracted source tree, in order, failing on the first that does not apply."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ac_release.core.errors import ReleaseError
from ac_release.model.line import check_patch


def apply_series(patches: tuple[Path, ...], tree: Path) -> None:
    for patch in patches:
        check_patch(patch, patch.name)  # the series was checked when its line loaded; this is what patch will read
        rejects = tree.parent / f"{patch.stem}.rej"
        rejects.unlink(missing_ok=True)
        result = subprocess.run(
            [
                "patch",
                "-p1",
                "--forward",
                "--batch",
                "--no-backup-if-mismatch",
                f"--reject-file={rejects}",
                "-i",
                str(patch),
            ],
            cwd=tree,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ReleaseError(f"patch {patch.name} does not apply: {_what_failed(result.stdout, rejects)}")


def _what_failed(output: str, rejects: Path) -> str:
    """The file, hunk and hunk header that failed: what the maintainer must rebase."""
    current = "?"
    for line in output.splitlines():
        if line.startswith("patching file "):
            current = line.removeprefix("patching file ").strip()
        elif "Reversed (or previously applied) patch detected" in line:
            return f"{current}: already applied (reversed or previously applied patch)"
        elif "can't find file to patch" in line:
            return f"{current}: file to patch not found"
        elif match := re.match(r"Hunk #(\d+) FAILED at (\d+)", line):
            header = (
                next((h for h in rejects.read_text().splitlines() if h.startswith("@@")), "")
                if rejects.exists()
                else ""
            )
            return (
                f"{current}: hunk #{match[1]} FAILED at line {match[2]}, rejected hunk {header.strip()} "
                f"(full reject: {rejects})"
            )
    tail = output.strip().splitlines()
    return tail[-1] if tail else "no output from patch"
