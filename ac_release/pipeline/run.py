"""The release as a pipeline of stages over one context: each stage decides (`decide`) and acts (`act`).

`plan` asks every stage's `decide` without writing anything, telling each which stages act before it in this run:
the dry run and `status` print it. A run starts with the preflight, then plans every stage and refuses before the
first write; each stage then decides again on the state its predecessors left, logs its steps and acts on the open
ones. A stage refuses nothing else: the plan and the run refuse the same steps for the same reasons.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

from rich.table import Table

from ac_release.clients import faults
from ac_release.clients.git import checkout_of
from ac_release.clients.platforms import require_buildable
from ac_release.core import progress
from ac_release.core.errors import ReleaseError
from ac_release.core.progress import LiveView
from ac_release.model.records import (
    ImagesRecord,
    IndexRecord,
    PromoteRecord,
    PublishRecord,
    PushRecord,
    SessionsRecord,
    SignRecord,
    TagRecord,
    WheelRecord,
)
from ac_release.pipeline.restore_dist import restore_line_build, restore_release_files
from ac_release.pipeline.runlock import line_held
from ac_release.pipeline.stage_times import time_line
from ac_release.stages import attest, images, index, preflight, promote, publish, push, sign, tag, test, wheel
from ac_release.stages.steps import Stage, Step, refuse_any
from ac_release.supply_chain.signing import require_ambient_identity
from ac_release.world.context import ReleaseContext, ensure_local_services, flavours, platforms

STAGES: dict[str, Stage] = {
    module.NAME: module for module in (preflight, wheel, sign, publish, images, test, push, attest, index, promote, tag)
}
RELEASE = list(STAGES)


def stage_names(spec: str | None) -> list[str]:
    """`--stages wheel,sign,publish` -> the preflight and those stages, in pipeline order (a workflow job runs a
    part of the release on its own machine); None -> the whole release."""
    if spec is None:
        return RELEASE
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if unknown := [name for name in names if name not in STAGES]:
        raise ReleaseError(
            f"unknown stage {unknown[0]!r}: --stages takes a comma-separated list of {', '.join(RELEASE)}"
        )
    if not names:
        raise ReleaseError(f"--stages is empty: name one or more of {', '.join(RELEASE)}")
    return [name for name in RELEASE if name == "preflight" or name in names]


def plan(ctx: ReleaseContext, names: Sequence[str] = RELEASE) -> list[Step]:
    """Every step the stages would take from the current state: what the dry run and `status` print. Each stage
    decides knowing which stages act before it (a push after the test stage does not refuse untested images)."""
    return [step for i, name in enumerate(names) for step in STAGES[name].decide(ctx, earlier=names[:i])]


def released_state(ctx: ReleaseContext) -> list[Step]:
    """What exists where, judged against the inputs the version was released from: a version tagged at an earlier
    commit is looked at in a checkout of that commit (a later backport changes the line's inputs, not the release)."""
    (tag_step,) = STAGES["tag"].decide(ctx)
    if tag_step.state != "present":
        return plan(ctx)
    with checkout_of(ctx.settings.root, tag_step.payload.commit) as tree:
        then = ReleaseContext.create(str(ctx.version), replace(ctx.settings, root=tree), ctx.target.name)
        return plan(then)


def run_stage(ctx: ReleaseContext, name: str, log_steps: bool = False):
    """Decide, refuse on any refusal, act on the open steps: one stage, entered once, deciding on the state the
    stages before it left (none of them acts before it any more)."""
    if name not in ("preflight", "wheel"):  # the preflight starts them after its own checks; the wheel needs none
        ensure_local_services(ctx)  # a run decides on what the services answer, never on `unknown`
    steps = STAGES[name].decide(ctx)
    for step in steps if log_steps else ():  # the log tells what each stage acts on
        ctx.console.print(f"  {step.line()}", soft_wrap=True, markup=False)
    refuse_any(steps, ctx.version)
    if unknown := [step for step in steps if step.action == "unknown"]:
        raise ReleaseError(f"{name}: cannot decide about {unknown[0].target}: {unknown[0].reason}")
    try:
        return STAGES[name].act(ctx, steps)
    except BaseException:
        ctx.world.forget_all()  # what the failed act touched is unknown now: a later decision asks again
        raise


def run_stages(ctx: ReleaseContext, names: Sequence[str]) -> dict[str, object]:
    """The stages, while no other build of the line runs on the target (runlock.line_held)."""
    line = (ctx.product.name, ctx.version.airflow_version)
    with line_held(ctx.settings.dist_dir, *line, ctx.release_target.name, str(ctx.version)):
        return _run_stages(ctx, names)


def _run_stages(ctx: ReleaseContext, names: Sequence[str]) -> dict[str, object]:
    results: dict[str, object] = {}
    timings: dict[str, float] = {}
    ctx.view = LiveView(ctx.console)
    ahead: dict[str, Future] = {}
    with ctx.view.shown(), ThreadPoolExecutor(max_workers=2) as pool:
        for name in names:
            if name in ahead:
                _settle(ctx, name, ahead.pop(name))
            started = time.monotonic()
            with ctx.view.row(f"[bold]{name}[/bold] {ctx.version}"):
                results[name] = run_stage(ctx, name, log_steps=name != "preflight")
                if name == "preflight":
                    # on a fresh machine (a workflow job), what the earlier jobs published, then every refusal of
                    # the stages to come, before the first write
                    restore_release_files(ctx)
                    if {"wheel", "sign"} & set(names):  # the stages that reuse a line build another release made
                        restore_line_build(ctx)
                    planned = plan(ctx, [n for n in names if n != "preflight"])
                    refuse_any(planned, ctx.version)
                    if any(step.open for step in planned if step.stage in ("sign", "attest", "index")):
                        require_ambient_identity(ctx)  # a job without GitHub's identity stops before the build
                    if any(step.open for step in planned if step.stage == "images"):
                        require_buildable(platforms(ctx))  # a machine without arm64 emulation stops here too
                    ahead = {
                        later: pool.submit(STAGES[later].prepare, ctx)
                        for later in names[2:]  # a stage runs before it: something to overlap with
                        if hasattr(STAGES[later], "prepare")
                    }
            timings[name] = time.monotonic() - started
            ctx.log(f"[green]✓[/green] {name} ({timings[name]:.1f} s)")
            faults.reached(f"after:{name}")
    _summary(ctx, timings)
    return results


def _settle(ctx: ReleaseContext, stage: str, work: Future) -> None:
    """Wait for a stage's work ahead (its `prepare`: deciding nothing, it builds what the stage will find done,
    while the stages before it run). When it failed, the stage does that work itself."""
    try:
        work.result()
    except ReleaseError as exc:
        ctx.log(f"{stage}: the work ahead failed, the stage does it itself: {exc}")


_STATUS = {"keep": "present", "skip": "present", "refuse": "CONFLICT", "unknown": "unknown"}


def status_of(step: Step) -> str:
    """What `invoke status` shows for a step: present, missing, CONFLICT or unknown."""
    return step.state or _STATUS.get(step.action, "missing")


def print_steps(steps: list[Step], title: str, as_status: bool = False) -> None:
    """The plan or the status is what the command answers: standard output (progress and errors use stderr).
    On a terminal a table; on a log or a pipe one plain line per step, every value whole."""
    console = progress.console(stderr=False)
    shown = [step for step in steps if not (as_status and step.stage == "preflight")]
    if not console.is_terminal:
        print(title)
        for step in shown:
            print(f"{step.stage:<9} {status_of(step):<8} {step.target}  — {step.reason}" if as_status else step.line())
        return
    table = Table(title=title)
    for column in ("stage", "state" if as_status else "action", "what", "detail"):
        table.add_column(column, overflow="fold")
    for step in shown:
        action = status_of(step) if as_status else step.action
        style = {"refuse": "red", "CONFLICT": "red", "keep": "green", "skip": "green", "present": "green"}.get(action)
        table.add_row(step.stage, f"[{style}]{action}[/]" if style else action, step.target, step.reason)
    console.print(table)


def _summary(ctx: ReleaseContext, timings: dict[str, float]) -> None:
    """Artifacts with their sha256, images with their digests and tags, test results, time per stage. On a log
    every value prints whole: the lines below the tables say the same without a width limit."""
    wheel_record = ctx.manifest.get(WheelRecord)
    signed = ctx.record(SignRecord)
    published = ctx.record(PublishRecord)
    lines = []
    for name, artifact in sorted((wheel_record.artifacts if wheel_record else {}).items()):
        bundle = "signed" if signed and name in signed.bundles else "unsigned"
        index = "uploaded" if published and name in published.uploaded else "on the index" if published else "-"
        lines.append(f"artifact {name} sha256 {artifact.sha256} {bundle}, {index}")
    built, tested, pushed = ctx.record(ImagesRecord), ctx.record(SessionsRecord), ctx.record(PushRecord)
    indexed, promoted = ctx.record(IndexRecord), ctx.record(PromoteRecord)
    for flavour in flavours(ctx) if built else []:
        for platform in platforms(ctx):
            entry = built.of(flavour.name, platform)
            if entry is None:
                continue
            result = tested.of(flavour.name, platform) if tested else None
            tests = "not tested"
            if result and result.images == entry.ids():
                upgrade = (
                    f"upgrade from {result.upgrade_from}: {result.upgrade.summary}"
                    if result.upgrade_from
                    else f"upgrade: {result.upgrade.result}"
                )
                tests = f"smoke {result.smoke.summary}; {upgrade}"
            for image in entry.variants.values():
                lines.append(f"image {image.ref} ({platform}) id {image.image} ({tests})")
                for pushed_tag in pushed.tags if pushed else []:
                    if pushed_tag.image == image.image:
                        lines.append(
                            f"  {pushed_tag.repository}:{pushed_tag.tag}@{pushed_tag.digest} {pushed_tag.action}"
                        )
    for index_tag in [*(indexed.tags if indexed else []), *(promoted.tags if promoted else [])]:
        held = ", ".join(f"{platform} {digest}" for platform, digest in index_tag.platforms.items())
        lines.append(f"index {index_tag.repository}:{index_tag.tag}@{index_tag.digest} {index_tag.action} ({held})")
    tagged = ctx.record(TagRecord)
    if tagged:
        lines.append(f"git tag {tagged.tag} at {tagged.commit} on {tagged.remote} ({tagged.action})")
    lines.append(time_line(timings))
    lines.append(f"manifest: {ctx.manifest.path}")
    for line in lines:
        ctx.console.print(line, soft_wrap=True)
