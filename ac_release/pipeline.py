"""Run stages in order over one context, record what each produced and how long it took, report at the end."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.table import Table

from ac_release import faults
from ac_release.context import ReleaseContext
from ac_release.stages import images, preflight, publish, push, sign, tag, test, wheel

STAGES = {module.NAME: module for module in (preflight, wheel, sign, publish, images, test, push, tag)}
RELEASE = list(STAGES)


def run_stages(ctx: ReleaseContext, names: Sequence[str]) -> dict[str, dict]:
    results: dict[str, dict] = {}
    timings: dict[str, float] = {}
    for name in names:
        started = time.monotonic()
        with ctx.console.status(f"[bold]{name}[/bold] {ctx.version}"):
            results[name] = STAGES[name].run(ctx)
        timings[name] = time.monotonic() - started
        ctx.log(f"[green]✓[/green] {name} ({timings[name]:.1f} s)")
        faults.reached(f"after:{name}")
    _summary(ctx, timings)
    return results


def _summary(ctx: ReleaseContext, timings: dict[str, float]) -> None:
    table = Table(title=f"AC {ctx.version} → {ctx.target.name}")
    table.add_column("artifact")
    table.add_column("sha256")
    table.add_column("bundle")
    table.add_column("index")
    built = ctx.manifest.stage("wheel") or {"artifacts": {}}
    signed = (ctx.manifest.stage("sign") or {}).get("bundles", {})
    published = ((ctx.manifest.stage("publish") or {}).get(ctx.target.name) or {}).get("files", {})
    for name, meta in sorted(built["artifacts"].items()):
        table.add_row(
            name, meta["sha256"][:16] + "…", "✓" if name in signed else "-", published.get(name, {}).get("action", "-")
        )
    ctx.console.print(table)
    ctx.log("  ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items()))
    ctx.log(f"manifest: {ctx.manifest.path}")
