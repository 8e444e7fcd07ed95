"""Git queries and writes of the release: HEAD, the release tag here and on the target's remote."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ac_release.clients import proc
from ac_release.core.errors import ReleaseError


def git(root: Path, *args: str, check: bool = True) -> str:
    """git in the repository at `root`, bounded (a remote that hangs is reported, never waited on forever)."""
    result = proc.run(["git", "-C", str(root), *args], kind="git", stdin=subprocess.DEVNULL)
    stdout, stderr = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    if check and result.returncode != 0:
        lines = (stderr or stdout).strip().splitlines() or ["no output"]
        raise ReleaseError(f"git {args[0]} failed: {lines[-1]}")
    return stdout.strip() if result.returncode == 0 else ""


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


@contextlib.contextmanager
def checkout_of(root: Path, commit: str) -> Iterator[Path]:
    """A read-only look at the tree of `commit` (a detached worktree in a temporary directory, removed after)."""
    with tempfile.TemporaryDirectory(prefix="ac-release-tree-") as tmp:
        tree = Path(tmp) / "tree"
        git(root, "worktree", "add", "--quiet", "--detach", str(tree), commit)
        try:
            yield tree
        finally:
            git(root, "worktree", "remove", "--force", str(tree), check=False)
