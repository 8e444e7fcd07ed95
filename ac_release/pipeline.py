"""Run stages in order over one context, record what each produced and how long it took, report at the end."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.table import Table

from ac_release import faults
from ac_release.context import ReleaseContext
from ac_release.progress import LiveView
from ac_release.stages import images, preflight, publish, push, sign, tag, test, wheel

STAGES = {module.NAME: module for module in (preflight, wheel, sign, publish, images, test, push, tag)}
RELEASE = list(STAGES)


def run_stages(ctx: ReleaseContext, names: Sequence[str]) -> dict[str, dict]:
    results: dict[str, dict] = {}
    timings: dict[str, float] = {}
    ctx.view = LiveView(ctx.console)
    with ctx.view.shown():
        for name in names:
            started = time.monotonic()
            with ctx.view.row(f"[bold]{name}[/bold] {ctx.version}"):
                results[name] = STAGES[name].run(ctx)
            timings[name] = time.monotonic() - started
            ctx.log(f"[green]✓[/green] {name} ({timings[name]:.1f} s)")
            faults.reached(f"after:{name}")
    _summary(ctx, timings)
    return results


def _summary(ctx: ReleaseContext, timings: dict[str, float]) -> None:
    stages = ctx.manifest.data["stages"]
    artifacts = Table(title=f"AC {ctx.version} → {ctx.target.name}")
    for column in ("artifact", "sha256", "bundle", "index"):
        artifacts.add_column(column)
    signed = stages.get("sign", {}).get("bundles", {})
    published = stages.get("publish", {}).get(ctx.target.name, {}).get("files", {})
    for name, meta in sorted(stages.get("wheel", {}).get("artifacts", {}).items()):
        artifacts.add_row(
            name, meta["sha256"], "✓" if name in signed else "-", published.get(name, {}).get("action", "-")
        )
    ctx.console.print(artifacts)
    if stages.get("images"):
        images = Table()
        for column in ("image", "id", "tests", "registry digest", "tags"):
            images.add_column(column)
        pushed = stages.get("push", {}).get(ctx.target.name, {}).get("images", {})
        for flavour, entry in sorted(stages["images"].items()):
            test = stages.get("test", {}).get(flavour, {})
            for variant in ("base", "onbuild"):
                image = entry[variant]["image"]
                tested = _test_summary(test) if test.get("images", {}).get(variant) == image else "-"
                remote = [p for p in pushed.values() if p["image"] == image]
                tags = ", ".join(sorted({t for p in remote for t in p["tags"] + p["floating_moved"]}))
                digest = remote[0]["digest"] if remote else "-"
                images.add_row(entry[variant]["ref"], image[:19], tested, digest, tags or "-")
        ctx.console.print(images)
    if stages.get("tag"):
        ctx.log(f"git tag {stages['tag']['tag']} at {stages['tag']['commit'][:12]} on {stages['tag']['remote']}")
    ctx.log("time: " + "  ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items()))
    ctx.log(f"manifest: {ctx.manifest.path}")


def _test_summary(test: dict) -> str:
    smoke, upgrade = test.get("smoke", {}), test.get("upgrade", {})
    text = f"smoke {smoke.get('result')}: {smoke.get('summary')}"
    if upgrade.get("from"):
        return f"{text}; upgrade from {upgrade['from']} {upgrade['result']}: {upgrade.get('summary')}"
    return f"{text}; upgrade: {upgrade.get('result', '-')}"
