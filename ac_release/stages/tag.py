"""Stage `tag`: release notes, and the annotated git tag `v<version>` carrying them, pushed to the target's remote.

It runs last: the tag says the release is complete. A tag that already exists at the same commit is kept; one at
another commit, here or on the remote, is refused.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ac_release.building.notes import render
from ac_release.clients.git import git, head, local_tag_commit
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_text
from ac_release.model.names import NOTES
from ac_release.model.records import TagRecord
from ac_release.stages.steps import Step
from ac_release.world.context import ReleaseContext, services_running
from ac_release.world.released_images import released_images

NAME = "tag"


@dataclass(frozen=True)
class Released:
    """The commit this version was released from, on the target's remote: `status` judges it there."""

    commit: str


def decide(ctx: ReleaseContext, earlier: Collection[str] = ()) -> list[Step[Released | None]]:
    root, tag, remote_name = ctx.settings.root, ctx.version.git_tag, ctx.target.git_remote
    where = f"{tag}@{remote_name}"
    if ctx.version.dev:
        return [Step(NAME, "skip", where, "no release tag for dev builds (their notes are written to dist/)")]
    commit = head(root)
    local = local_tag_commit(root, tag)
    remote, why_unknown = None, ""
    if not services_running(ctx):
        why_unknown = "remote not running"
    else:
        try:
            remote = ctx.world.remote_tag_commit(tag)
        except ReleaseError as exc:
            why_unknown = f"remote not reachable ({exc})"
    released = remote or local  # the commit this version was released from, as far as can be told
    if released and released != commit:
        reason = (
            f"{ctx.version} is already released from {released}, this tree is at {commit}: "
            f"a tag never moves; release the next build number"
        )
        if remote and (local is None or local == remote):
            # `status` shows a release made from an earlier commit as present; a release from this tree is refused
            return [Step(NAME, "refuse", where, reason, Released(remote), state="present")]
        return [Step(NAME, "refuse", where, reason)]
    if why_unknown:
        return [Step(NAME, "unknown", where, why_unknown)]
    if remote is None:
        return [Step(NAME, "tag", where, f"annotated, at {commit}, with the release notes")]
    return [Step(NAME, "skip", where, f"already at {commit}")]


def act(ctx: ReleaseContext, steps: list[Step[Released | None]]) -> TagRecord | None:
    root, tag = ctx.settings.root, ctx.version.git_tag
    if ctx.version.dev:
        _dev_notes(ctx)
        return None
    (step,) = steps
    commit = head(root)
    notes = ctx.dist / NOTES
    images = released_images(ctx)  # what the registries hold: this job may not be the one that pushed
    atomic_write_text(notes, render(ctx, ctx.catalog.release_entry(ctx.version), images))
    if not local_tag_commit(root, tag):
        # verbatim: the default cleanup would drop every markdown heading as a comment line
        git(root, "tag", "--annotate", "--cleanup=verbatim", tag, "--file", str(notes), "HEAD")
        ctx.log(f"tag: created {tag} at {commit}")
    if step.open:
        ctx.world.push_git_tag(tag)
        ctx.log(f"tag: pushed {tag} to {ctx.target.git_remote}")
    record = TagRecord(tag, commit, ctx.target.git_remote, NOTES, "pushed" if step.open else "present")
    ctx.save(record)
    return record


def _dev_notes(ctx: ReleaseContext) -> None:
    """A dev build's notes: the changelog entry of its build number when there is one; never a git tag."""
    entry = ctx.catalog.dev_build_entry(ctx.version)
    if entry is None:
        ctx.log(f"tag: {ctx.version} is a dev build: no git tag, and no changelog entry for its notes")
        return
    atomic_write_text(ctx.dist / NOTES, render(ctx, entry, released_images(ctx)))
    ctx.log(f"tag: {ctx.version} is a dev build: no git tag; notes from the entry of {entry.version} in dist/")
