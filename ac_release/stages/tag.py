"""Stage `tag`: release notes, and the annotated git tag `v<version>` carrying them, pushed to the target's remote.

It runs last: the tag says the release is complete. A tag that already exists at the same commit is kept; one at
another commit is refused.
"""

from __future__ import annotations

import subprocess

from ac_release.changelog import release_entry
from ac_release.context import ReleaseContext, ensure_local_services
from ac_release.errors import ReleaseError
from ac_release.fsutil import atomic_write_text
from ac_release.notes import render

NAME = "tag"
NOTES = "RELEASE_NOTES.md"


def git(ctx: ReleaseContext, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", "-C", str(ctx.settings.root), *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise ReleaseError(f"git {args[0]} failed: {(result.stderr or result.stdout).strip().splitlines()[-1]}")
    return result.stdout.strip() if result.returncode == 0 else ""


def remote_tag_commit(ctx: ReleaseContext) -> str | None:
    """The commit the remote's release tag points to (peeled), or None when the remote has no such tag."""
    tag = ctx.version.git_tag
    lines = git(ctx, "ls-remote", "--tags", ctx.target.git_remote, f"refs/tags/{tag}", f"refs/tags/{tag}^{{}}")
    refs = dict(reversed(line.split("\t")) for line in lines.splitlines() if line)
    return refs.get(f"refs/tags/{tag}^{{}}") or refs.get(f"refs/tags/{tag}")


def run(ctx: ReleaseContext) -> dict:
    ensure_local_services(ctx)
    entry = release_entry(ctx.settings.root / "changelog", ctx.version)
    tag = ctx.version.git_tag
    head = git(ctx, "rev-parse", "HEAD")
    # Every refusal comes before the first write.
    local = git(ctx, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}", check=False)
    if local and local != head:
        raise ReleaseError(f"tag {tag} already points to {local}, not HEAD {head}: a release tag never moves")
    remote = remote_tag_commit(ctx)
    if remote is not None and remote != head:
        raise ReleaseError(f"{ctx.target.git_remote} has tag {tag} at {remote}, this release is at {head}: refusing")
    notes = ctx.dist / NOTES
    atomic_write_text(notes, render(ctx, entry))
    if not local:
        # verbatim: the default cleanup would drop every markdown heading as a comment line
        git(ctx, "tag", "--annotate", "--cleanup=verbatim", tag, "--file", str(notes), "HEAD")
        ctx.log(f"tag: created {tag} at {head[:12]}")
    if remote is None:
        git(ctx, "push", "--quiet", ctx.target.git_remote, f"refs/tags/{tag}")
        ctx.log(f"tag: pushed {tag} to {ctx.target.git_remote}")
    action = "pushed" if remote is None else "present"
    result = {"tag": tag, "commit": head, "remote": ctx.target.git_remote, "notes": NOTES, "action": action}
    ctx.manifest.record(NAME, result)
    return result
