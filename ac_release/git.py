"""Git queries and writes of the release: HEAD, the release tag here and on the target's remote."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ac_release.errors import ReleaseError

TIMEOUT = 300  # seconds: a remote that hangs is reported, never waited on forever


def git(root: Path, *args: str, check: bool = True) -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise ReleaseError(f"git {args[0]} did not finish in {TIMEOUT} s") from None
    if check and result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise ReleaseError(f"git {args[0]} failed: {lines[-1]}")
    return result.stdout.strip() if result.returncode == 0 else ""


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD")


def local_tag_commit(root: Path, tag: str) -> str | None:
    return git(root, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}", check=False) or None


def remote_tag_commit(root: Path, remote: str, tag: str) -> str | None:
    """The commit the remote's tag points to (peeled), or None when the remote has no such tag."""
    lines = git(root, "ls-remote", "--tags", "--", remote, f"refs/tags/{tag}", f"refs/tags/{tag}^{{}}")
    refs = dict(reversed(line.split("\t")) for line in lines.splitlines() if line)
    return refs.get(f"refs/tags/{tag}^{{}}") or refs.get(f"refs/tags/{tag}")


def uncommitted(root: Path) -> str:
    """The first uncommitted change of the tree, or '' when it is clean."""
    changes = git(root, "status", "--porcelain", "--untracked-files=normal")
    return changes.splitlines()[0].strip() if changes else ""
