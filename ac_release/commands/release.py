"""The commands of one version: `release` (or its dry run), the stage tasks, `status` and `verify`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ac_release.model.catalog import Catalog, load_catalog
from ac_release.pipeline.run import plan, print_steps, released_state, run_stages, stage_names
from ac_release.pipeline.runlock import held
from ac_release.world.context import ReleaseContext


def context(version: str, target: str | None, catalog: Catalog | None = None, **options) -> ReleaseContext:
    """The release context of `version` on `target` (None: the default target), from the command's catalog (read
    here when the command has not read it yet)."""
    return ReleaseContext.create(version, catalog or load_catalog(), target, **options)


def under_run_lock(
    version: str,
    target: str | None,
    work: Callable[[ReleaseContext], object],
    catalog: Catalog | None = None,
    **options,
) -> None:
    """`work` on the version's context, while no other writing command runs on the version."""
    ctx = context(version, target, catalog, **options)
    with held(ctx.dist, str(ctx.version)):
        work(ctx)


def run(version: str, target: str | None, names: Sequence[str], catalog: Catalog | None = None, **options) -> None:
    """The stages `names` of a version, in pipeline order, each skipping what is done."""
    under_run_lock(version, target, lambda ctx: run_stages(ctx, names), catalog, **options)


def release(
    version: str,
    target: str | None,
    dry_run: bool,
    stages: str | None,
    flavour: str | None,
    platform: str | None,
    force_unsupported: bool = False,
) -> None:
    """`invoke release`: the stages (all, or `--stages`), or with `--dry-run` their plan; with `--flavour` and
    `--platform`, of that flavour and platform's images only."""
    names = stage_names(stages)
    options = {"flavour": flavour, "platform": platform, "force_unsupported": force_unsupported}
    if dry_run:
        ctx = context(version, target, releasing=True, **options)
        print_steps(
            plan(ctx, names), title=f"dry run: {ctx.product.title} {version} -> {ctx.target.name} (nothing written)"
        )
        return
    run(version, target, names, releasing=True, **options)


def status(version: str, target: str | None) -> None:
    ctx = context(version, target)
    print_steps(released_state(ctx), title=f"{ctx.product.title} {version} on {ctx.target.name}", as_status=True)


def verify(version: str, target: str | None) -> None:
    from ac_release.supply_chain.verify import run_verify  # Sigstore's libraries: loaded by the commands that verify

    for what, result in run_verify(context(version, target)):
        print(f"ok  {what}: {result}")
