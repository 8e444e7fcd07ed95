"""Stage `promote`: the floating tags (`2.2.4`, `2.2.4-bullseye-onbuild`, ...), moved registry-side to the digest of
the build's immutable tag (the index of its platforms, moved whole), once every flavour is pushed, tested, attested
and indexed.

A floating tag moves only when this build is the highest released build of its Airflow version on that registry:
releasing an older build, another line or a dev build never moves it. Nothing local is read: the source of every
move is what the registry holds under the immutable tag, so the step runs on any machine (a workflow's own job).
Each move is decided again right before it is made: a newer build of the line released since `decide()` keeps it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from ac_release.clients import registry
from ac_release.core.errors import ReleaseError
from ac_release.model.flavours import VARIANTS
from ac_release.model.records import PromoteRecord, PushedTag
from ac_release.stages.steps import Step
from ac_release.world.context import ReleaseContext, flavours, services_running
from ac_release.world.released_images import highest_released_build

NAME = "promote"


@dataclass(frozen=True)
class FloatingTag:
    """A floating tag of one registry, moved to what its build's `immutable` tag holds: the index `digest` of the
    `platforms` ({platform: manifest digest})."""

    repository: str
    tag: str
    immutable: str
    digest: str | None = None
    platforms: tuple[tuple[str, str], ...] = ()


def decide(ctx: ReleaseContext, earlier: Collection[str] = ()) -> list[Step[FloatingTag | None]]:
    """keep a floating tag behind a newer build; skip one already on this build's image; move the rest; refuse one
    whose immutable tag is not pushed, unless the push stage runs before in this run."""
    if ctx.version.dev:
        return [Step(NAME, "skip", "floating-tags", "a dev build moves no floating tag")]
    running = services_running(ctx)
    steps = []
    for repository in ctx.target.registries:
        for flavour in flavours(ctx):
            for variant in VARIANTS:
                floating = flavour.floating_tags(ctx.version, variant)
                if not floating:
                    continue
                immutable = flavour.tags(ctx.version, variant)[-1]
                if not running:
                    for tag in floating:
                        unknown = FloatingTag(repository, tag, immutable)
                        steps.append(Step(NAME, "unknown", f"{repository}:{tag}", "registry not running", unknown))
                    continue
                steps += _decide(ctx, repository, immutable, floating, pushed_before="index" in earlier)
    return steps


def _decide(
    ctx: ReleaseContext, repository: str, immutable: str, floating: list[str], pushed_before: bool
) -> list[Step[FloatingTag]]:
    """The decision for floating tags of one image, on what the registry holds now: decide() makes it, and act()
    again right before a move (another build of the line may have been released since decide())."""
    source = ctx.world.remote_platforms(repository, immutable)
    highest = highest_released_build(ctx.world.tags(repository), ctx.version, immutable)
    return [_floating(ctx, source, highest, FloatingTag(repository, tag, immutable), pushed_before) for tag in floating]


def _floating(
    ctx: ReleaseContext,
    source: registry.RemotePlatforms | None,
    highest: int,
    floating: FloatingTag,
    pushed_before: bool,
) -> Step[FloatingTag]:
    where = f"{floating.repository}:{floating.tag}"
    if highest > ctx.version.build:
        return Step(NAME, "keep", where, f"{ctx.version.airflow_version}-{highest} is newer", floating)
    if source is None and pushed_before:
        return Step(NAME, "move", where, f"to {floating.immutable} once it is pushed", floating)
    if source is None:
        reason = (
            f"{floating.repository}:{floating.immutable} is not pushed: the images of {ctx.version} are pushed (after "
            f"their tests) and indexed before a floating tag moves"
        )
        return Step(NAME, "refuse", where, reason, floating)
    remote = ctx.world.remote_platforms(floating.repository, floating.tag)
    floating = replace(floating, digest=source.digest, platforms=tuple(source.platforms.items()))
    if remote is not None and remote.digest == source.digest:
        reason = f"already {remote.digest} ({floating.immutable})"
        return Step(NAME, "skip", where, reason, floating)
    held = f"from {remote.digest} " if remote is not None else ""
    return Step(NAME, "move", where, f"{held}to {source.digest} ({floating.immutable})", floating)


def act(ctx: ReleaseContext, steps: list[Step[FloatingTag | None]]) -> PromoteRecord:
    tags: list[PushedTag] = []
    for step in steps if not ctx.version.dev else ():
        if step.open:  # decided earlier: decide again on what the registry holds now, right before the move
            step = _fresh(ctx, step)
        floating = step.payload
        if step.action == "keep":
            tags.append(PushedTag(floating.repository, floating.tag, "", "", True, "kept"))
            continue
        if step.action == "refuse":  # decided again: the immutable tag is gone since decide()
            raise ReleaseError(f"{step.target}: {step.reason}")
        if step.open:
            ctx.log(f"promote: {step.target} -> {floating.digest} ({ctx.version})")
            with ctx.view.row(step.target, level=1):
                ctx.world.tag_digest(floating.repository, floating.digest, floating.tag)
            registry.check_platforms(floating.repository, floating.tag, floating.digest, dict(floating.platforms))
        action = "moved" if step.open else "present"
        platforms = dict(floating.platforms)
        tags.append(PushedTag(floating.repository, floating.tag, "", floating.digest, True, action, "", platforms))
    record = PromoteRecord(tags)
    ctx.save(record)
    return record


def _fresh(ctx: ReleaseContext, step: Step[FloatingTag]) -> Step[FloatingTag]:
    """The decision for `step`'s floating tag made again now: two builds of one line promoting at once must not
    leave the tag on the older one (it decided `move` before the newer build was released, and moves after it)."""
    floating = step.payload
    ctx.world.forget_repository(floating.repository)  # what this run remembers of it may be older than that
    (fresh,) = _decide(ctx, floating.repository, floating.immutable, [floating.tag], pushed_before=False)
    if fresh.action == "keep":
        ctx.log(f"promote: {fresh.target} kept: {fresh.reason} (released while this run promoted)")
    elif fresh.action == "skip":
        ctx.log(f"promote: {fresh.target} present: {fresh.reason} (moved while this run promoted)")
    return fresh
