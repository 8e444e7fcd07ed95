"""What a release would do, computed from the same state the stages check, without writing anything.

Used by `invoke release --dry-run` (the plan) and `invoke status` (what exists where). Remote state is read only
where it can be read without starting anything: a local target whose services are down shows as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from ac_release import registry
from ac_release.context import ReleaseContext
from ac_release.errors import ReleaseError
from ac_release.fsutil import sha256_file
from ac_release.images.matrix import ONBUILD, flavours_of
from ac_release.signing import bundle_name
from ac_release.stages import wheel
from ac_release.stages.images import images_dir
from ac_release.stages.push import highest_released_build
from ac_release.stages.test import session_name, tested_images
from ac_release.upgrade import previous_release


@dataclass(frozen=True)
class Step:
    stage: str
    action: str  # build / sign / upload / push / move / tag / run / skip / keep / refuse / unknown
    target: str
    detail: str = ""
    state: str = ""  # what `invoke status` shows, where the action alone does not say it


def _services_up(ctx: ReleaseContext) -> bool:
    if not ctx.target.local_services:
        return True
    from ac_release.services.manager import LocalServices

    return all(state.startswith("up") for state in LocalServices(ctx.settings.services).status().values())


def _artifact_names(ctx: ReleaseContext) -> list[str]:
    recorded = ctx.manifest.stage("wheel")
    if recorded:
        return sorted(recorded["artifacts"])
    v = ctx.version
    return sorted(
        [
            f"apache_airflow-{v.wheel_version}-py3-none-any.whl",
            f"apache-airflow-{v.wheel_version}.tar.gz",
            f"astronomer_certified-{v.meta_version}-py3-none-any.whl",
        ]
    )


def _upgrade_source(ctx: ReleaseContext, up: bool) -> str:
    repository = ctx.target.registries[0]
    if not up:
        return f"from the newest earlier release on {repository} (unknown)"
    previous = previous_release(ctx)
    return (
        f"from {previous.version} ({previous.reference})" if previous else f"none: no earlier release on {repository}"
    )


def plan(ctx: ReleaseContext) -> list[Step]:
    steps: list[Step] = []
    up = _services_up(ctx)
    if not up:
        steps.append(Step("preflight", "run", "local services", "would start them; their state is unknown"))
    steps.append(Step("preflight", "run", "checks", "clean tree, changelog entry, credentials, remotes"))

    recorded = ctx.manifest.stage("wheel")
    fresh = recorded and recorded.get("inputs") == wheel.input_fingerprint(ctx)
    for name in _artifact_names(ctx):
        path = ctx.dist / name
        if fresh and path.exists() and sha256_file(path) == recorded["artifacts"][name]["sha256"]:
            steps.append(Step("wheel", "keep", f"dist/{ctx.version}/{name}", recorded["artifacts"][name]["sha256"]))
        else:
            steps.append(Step("wheel", "build", f"dist/{ctx.version}/{name}", "compared byte for byte if present"))
        bundle = ctx.dist / bundle_name(name)
        steps.append(
            Step(
                "sign",
                "keep" if bundle.exists() else "sign",
                f"dist/{ctx.version}/{bundle.name}",
                "verified against the expected identity",
            )
        )

    if up and recorded:
        from ac_release.stages.publish import index_state

        on_index = index_state(ctx, ctx.target.index.password.read())
        for name, meta in sorted(recorded["artifacts"].items()):
            remote = on_index.get(name)
            action = "upload" if remote is None else "skip" if remote.sha256 == meta["sha256"] else "refuse"
            detail = "" if remote is None else f"index {remote.sha256[:16]}… vs ours {meta['sha256'][:16]}…"
            steps.append(Step("publish", action, f"{ctx.target.index.url} {name}", detail))
    else:
        steps.append(Step("publish", "unknown", ctx.target.index.url, "compared by sha256 when the stage runs"))

    built = ctx.manifest.stage("images") or {}
    tested = ctx.manifest.stage("test") or {}
    upgrade = _upgrade_source(ctx, up)
    for flavour in flavours_of(images_dir(ctx), ctx.line.airflow):
        entry = built.get(flavour.name)
        for variant in ("base", ONBUILD):
            present = entry and ctx.docker.image_id(entry[variant]["ref"]) == entry[variant]["image"]
            steps.append(
                Step(
                    "images",
                    "keep" if present else "build",
                    flavour.local_ref(ctx.version, variant),
                    entry[variant]["image"][:19] if present else "",
                )
            )
        record = tested.get(flavour.name, {})
        passed = entry and record.get("result") == "passed" and record.get("images") == tested_images(entry)
        for kind in ("smoke", "upgrade"):
            detail = upgrade if kind == "upgrade" else ""
            steps.append(
                Step("test", "skip" if passed else "run", session_name(str(ctx.version), flavour.name, kind), detail)
            )
        for repository in ctx.target.registries:
            for variant in ("base", ONBUILD):
                image = entry[variant]["image"] if entry else None
                for tag in flavour.tags(ctx.version, variant):
                    steps.append(_push_step(repository, tag, image, up))
                immutable = flavour.tags(ctx.version, variant)[-1]
                for tag in flavour.floating_tags(ctx.version, variant):
                    steps.append(_floating_step(ctx, repository, tag, immutable, image, up))
    steps.append(_tag_step(ctx))
    return steps


def _push_step(repository: str, tag: str, image: str | None, up: bool) -> Step:
    if not up:
        return Step("push", "unknown", f"{repository}:{tag}", "registry not running")
    remote = registry.remote_image(repository, tag)
    if remote is None:
        return Step("push", "push", f"{repository}:{tag}", image[:19] if image else "the image built above")
    if image and remote.config == image:
        return Step("push", "skip", f"{repository}:{tag}", f"already {remote.digest[:19]}")
    return Step("push", "refuse", f"{repository}:{tag}", f"holds {remote.config[:19]}, ours {str(image)[:19]}")


def _floating_step(ctx: ReleaseContext, repository: str, tag: str, immutable: str, image: str | None, up: bool) -> Step:
    """What the push stage will do with a floating tag: move it only to the highest released build."""
    if not up:
        return Step("push", "unknown", f"{repository}:{tag}", "registry not running")
    highest = highest_released_build(repository, ctx.version, immutable)
    if highest > ctx.version.build:
        return Step("push", "keep", f"{repository}:{tag}", f"{ctx.version.airflow_version}-{highest} is newer")
    remote = registry.remote_image(repository, tag)
    if remote is not None and image and remote.config == image:
        return Step("push", "skip", f"{repository}:{tag}", f"already {remote.digest[:19]}")
    held = f"from {remote.config[:19]} " if remote is not None else ""
    return Step("push", "move", f"{repository}:{tag}", f"{held}to {ctx.version}")


def _tag_step(ctx: ReleaseContext) -> Step:
    from ac_release.stages.tag import git, remote_tag_commit

    head = git(ctx, "rev-parse", "HEAD")
    try:
        remote = remote_tag_commit(ctx)
    except ReleaseError:
        return Step("tag", "unknown", f"{ctx.target.git_remote} {ctx.version.git_tag}", "remote not reachable")
    if remote is None:
        return Step(
            "tag", "tag", f"{ctx.target.git_remote} {ctx.version.git_tag}", f"annotated, at {head[:12]}, with the notes"
        )
    if remote == head:
        return Step("tag", "skip", f"{ctx.target.git_remote} {ctx.version.git_tag}", f"already at {head[:12]}")
    # Released from another commit: present for `status`, refused for a release from this tree.
    return Step(
        "tag",
        "refuse",
        f"{ctx.target.git_remote} {ctx.version.git_tag}",
        f"at {remote[:12]}, HEAD is {head[:12]}",
        state="present",
    )


_STATUS = {"keep": "present", "skip": "present", "refuse": "CONFLICT", "unknown": "unknown", "run": "to run"}


def print_steps(steps: list[Step], title: str, as_status: bool = False) -> None:
    """The plan or the status is what the command answers: standard output (progress and errors use stderr)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("stage", "state" if as_status else "action", "what", "detail"):
        table.add_column(column, overflow="fold")
    for step in steps:
        if as_status and step.stage == "preflight":
            continue
        action = (step.state or _STATUS.get(step.action, "missing")) if as_status else step.action
        style = "red" if action in ("refuse", "CONFLICT") else "green" if action in ("keep", "skip", "present") else ""
        table.add_row(step.stage, f"[{style}]{action}[/]" if style else action, step.target, step.detail)
    Console(highlight=False).print(table)
