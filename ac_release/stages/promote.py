"""Stage `promote`: the floating tags (`2.2.4`, `2.2.4-bullseye-onbuild`, ...), moved registry-side to the digest of
the build's immutable tag, once every flavour is pushed, tested and attested.

A floating tag moves only when this build is the highest released build of its Airflow version on that registry:
releasing an older build, another line or a dev build never moves it. Nothing local is read: the source of every
move is what the registry holds under the immutable tag, so the step runs on any machine (a workflow's own job).
Each move is decided again right before it is made: a newer build of the line released since `check()` keeps it.
"""

from __future__ import annotations

from ac_release.clients import registry
from ac_release.core.errors import ReleaseError
from ac_release.model.flavours import VARIANTS
from ac_release.model.records import PromoteRecord, PushedTag
from ac_release.stages.steps import Step
from ac_release.world.context import ReleaseContext, ensure_local_services, flavours, services_running
from ac_release.world.released_images import highest_released_build

NAME = "promote"


def check(ctx: ReleaseContext) -> list[Step]:
    """keep a floating tag behind a newer build; skip one already on this build's image; move the rest."""
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
                if not running:
                    steps += [Step(NAME, "unknown", f"{repository}:{tag}", "registry not running") for tag in floating]
                    continue
                steps += _decide(ctx, repository, flavour.tags(ctx.version, variant)[-1], floating)
    return steps


def _decide(ctx: ReleaseContext, repository: str, immutable: str, floating: list[str]) -> list[Step]:
    """The decision for floating tags of one image, on what the registry holds now: check() decides with it, and
    run() again right before a move (another build of the line may have been released since check())."""
    source = ctx.world.remote_image(repository, immutable)
    highest = highest_released_build(ctx.world.tags(repository), ctx.version, immutable)
    data = {"repository": repository, "immutable": immutable}
    return [_floating(ctx, repository, tag, source, highest, data | {"tag": tag}) for tag in floating]


def _floating(ctx, repository: str, tag: str, source: registry.RemoteImage | None, highest: int, data) -> Step:
    where = f"{repository}:{tag}"
    if highest > ctx.version.build:
        return Step(NAME, "keep", where, f"{ctx.version.airflow_version}-{highest} is newer", data)
    if source is None:
        return Step(NAME, "move", where, f"to {data['immutable']} once it is pushed", data)
    remote = ctx.world.remote_image(repository, tag)
    if remote is not None and remote.config == source.config:
        reason = f"already {remote.digest} (image {source.config})"
        return Step(NAME, "skip", where, reason, data | {"digest": remote.digest, "image": source.config})
    held = f"from {remote.config} " if remote is not None else ""
    reason = f"{held}to {source.digest} ({data['immutable']})"
    return Step(NAME, "move", where, reason, data | {"digest": source.digest, "image": source.config})


def run(ctx: ReleaseContext, steps: list[Step]) -> PromoteRecord:
    ensure_local_services(ctx)
    tags: list[PushedTag] = []
    for step in steps if not ctx.version.dev else ():
        repository, tag = step.data["repository"], step.data["tag"]
        if step.open:  # decided earlier: decide again on what the registry holds now, right before the move
            step = _fresh(ctx, step)
        if step.action == "keep":
            tags.append(PushedTag(repository, tag, "", "", True, "kept"))
            continue
        if "digest" not in step.data:
            raise ReleaseError(
                f"{repository}:{step.data['immutable']} is not pushed: the images of {ctx.version} are pushed (after "
                f"their tests) before a floating tag moves"
            )
        digest, image = step.data["digest"], step.data["image"]
        if step.open:
            ctx.log(f"promote: {step.target} -> {digest} ({ctx.version})")
            with ctx.view.row(step.target, level=1):
                ctx.world.tag_digest(repository, digest, tag)
            registry.check_pushed(repository, tag, digest, image)
        tags.append(PushedTag(repository, tag, image, digest, True, "moved" if step.open else "present"))
    record = PromoteRecord(tags)
    ctx.save(record)
    return record


def _fresh(ctx: ReleaseContext, step: Step) -> Step:
    """The decision for `step`'s floating tag made again now: two builds of one line promoting at once must not
    leave the tag on the older one (it decided `move` before the newer build was released, and moves after it)."""
    ctx.world.forget_repository(step.data["repository"])  # what this run remembers of it may be older than that
    (fresh,) = _decide(ctx, step.data["repository"], step.data["immutable"], [step.data["tag"]])
    if fresh.action == "keep":
        ctx.log(f"promote: {fresh.target} kept: {fresh.reason} (released while this run promoted)")
    elif fresh.action == "skip":
        ctx.log(f"promote: {fresh.target} present: {fresh.reason} (moved while this run promoted)")
    return fresh
