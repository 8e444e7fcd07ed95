"""`nox -s bench`: image build time and size against an AC-2022-style baseline, then the whole release on a scratch
target (ac_release/bench/release.py), all measured in the same run.

Cold means an empty build cache (`docker builder prune`) with the base image present; warm means a rebuild with
the cache of the previous build. Figures are printed as ratios to the baseline of this run, and written as JSON.
Every platform of the release after the first (linux/arm64: emulated on an amd64 machine) is built cold too, and
shown as a ratio to the first platform's cold build of the same run.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ac_release.bench.line import line_lines, measure_line
from ac_release.bench.release import measure_release, print_release
from ac_release.building import image_build as build
from ac_release.building.baseimage import ensure_base
from ac_release.building.lock import without_hashes
from ac_release.clients.platforms import require_buildable
from ac_release.model.flavours import AMD64, ONBUILD, Platform
from ac_release.supply_chain.fetch import fetch_verified
from ac_release.world.context import ReleaseContext, ensure_local_services, flavours, release_platforms

BASELINE = Path(__file__).parents[2] / "bench" / "baseline.Dockerfile"
BENCH_REPOSITORY = "ac-release/bench"  # every image the benchmark builds, removed at its end


def _prune(ctx: ReleaseContext) -> None:
    ctx.docker("builder", "prune", "--all", "--force", capture=True)


def _baseline(ctx: ReleaseContext, flavour, wheels: dict[str, Path], work: Path) -> tuple[float, int]:
    context = work / f"baseline-{flavour.name}"
    (context / "wheels").mkdir(parents=True)
    for path in wheels.values():
        shutil.copy(path, context / "wheels" / path.name)
    # AC's 2022 build had no hashes (and its pip would demand them for the local wheels too): the same pins, plain
    (context / "constraints.txt").write_text(without_hashes(ctx.line.lock_file.read_text()))
    bundle = ctx.settings.extra_ca_bundle
    (context / "build-ca.crt").write_bytes(bundle.read_bytes() if bundle and bundle.is_file() else b"")
    meta = next(name for name in wheels if name.startswith(f"{ctx.product.meta_distribution}-"))
    started = time.monotonic()
    image = ctx.docker.build(
        context,
        f"{BENCH_REPOSITORY}:baseline-{flavour.name}",
        dockerfile=BASELINE,
        build_args={
            "BASE_IMAGE": ensure_base(ctx.docker, ctx.target.base_images, flavour.distro, flavour.python, ctx.log),
            "RUNTIME_PACKAGES": " ".join(flavour.runtime_packages),
            "BUILD_PACKAGES": " ".join(flavour.build_packages),
            "PYTHON": flavour.python,
            "META_WHEEL": meta,
            "EXTRAS": ",".join(ctx.line.all_extras),
            "PIP_VERSION": flavour.pip,
        },
        log=ctx.cache / "logs" / f"bench-baseline-{flavour.name}.log",
    )
    return time.monotonic() - started, ctx.docker.image_size(image)


def _ours(ctx: ReleaseContext, flavours, wheels: dict[str, Path], label: str, platform: Platform = AMD64) -> dict:
    """Build every flavour as the images stage does (the shared build, the same arguments), under names of the
    benchmark's own: it never reads or writes the release's image names, manifest or registry."""
    figures = {}
    for flavour in flavours:
        built = build.build_named(ctx, flavour, wheels, f"{BENCH_REPOSITORY}:{label}", platform)
        figures[flavour.name] = {variant: {"seconds": s, "size": size} for variant, (s, size) in built.items()}
    return figures


def run_bench(ctx: ReleaseContext, release: bool = True, json_path: Path | None = None) -> dict:
    """The image benchmark, then (with `release`) the whole release cold on a scratch target; the figures of both
    are written as JSON to `json_path` (default: <cache>/bench/<version>-<UTC time>.json)."""
    ensure_local_services(ctx)
    selected = flavours(ctx)
    names = [name for name in ctx.artifact_names if name.endswith(".whl")]
    wheels = fetch_verified(ctx, names, ctx.cache / "images" / str(ctx.version) / "wheels", ctx.bundles)
    first, *others = release_platforms(ctx)
    require_buildable(others)
    for flavour in selected:  # base images are present in every measurement
        for platform in (first, *others):
            ensure_base(ctx.docker, ctx.target.base_images, flavour.distro, flavour.python, ctx.log, platform)
    try:
        with tempfile.TemporaryDirectory(prefix="ac-bench-") as tmp:
            work = Path(tmp)
            _prune(ctx)
            baseline = {flavour.name: _baseline(ctx, flavour, wheels, work) for flavour in selected}
            _prune(ctx)
            cold = _ours(ctx, selected, wheels, "cold", first)
            warm = _ours(ctx, selected, wheels, "warm", first)
            platforms = {}
            for platform in others:  # cold, as the first platform's cold build
                _prune(ctx)
                platforms[str(platform)] = _ours(ctx, selected, wheels, f"cold-{platform.architecture}", platform)
            _prune(ctx)
            line_versions = ctx.catalog.same_line_build(str(ctx.version))
            line, left_out = measure_line(ctx.catalog, ctx.release_target.name, line_versions, BENCH_REPOSITORY)
    finally:
        remove_bench_images(ctx)
    figures = {"baseline": baseline, "cold": cold, "warm": warm, "first_platform": str(first), "platforms": platforms}
    figures |= {"line": [vars(image) for image in line], "line_left_out": left_out}
    _print(
        ctx.console,
        f"image build benchmark, AC {ctx.version} (ratios against the baseline of this run)",
        selected,
        figures,
    )
    for text in line_lines(line, left_out):
        ctx.console.print(text, soft_wrap=True, highlight=False)
    if release:
        _prune(ctx)
        baseline_seconds = sum(seconds for seconds, _ in baseline.values())
        whole = measure_release(
            ctx.settings, ctx.docker, str(ctx.version), ctx.target.base_images, baseline_seconds, ctx.log
        )
        figures["release"] = whole.as_json()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = json_path or ctx.cache / "bench" / f"{ctx.version}-{stamp}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    if release:
        print_release(ctx.console, whole, json_path)
    else:
        ctx.console.print(f"figures as JSON: {json_path}", soft_wrap=True, highlight=False)
    return figures


def bench_images(ctx: ReleaseContext) -> list[str]:
    out = ctx.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", BENCH_REPOSITORY, capture=True).stdout
    return out.decode().split()


def remove_bench_images(ctx: ReleaseContext) -> None:
    for reference in bench_images(ctx):
        ctx.docker("image", "rm", reference, capture=True, check=False)


def figure_lines(flavours, figures: dict) -> list[str]:
    """Every figure as a plain line: whole values, whatever the width of the terminal or log."""
    lines = []
    for flavour in flavours:
        base_s, base_size = figures["baseline"][flavour.name]
        cold, warm = figures["cold"][flavour.name], figures["warm"][flavour.name]
        cold_s, warm_s, size = cold["base"]["seconds"], warm["base"]["seconds"], cold["base"]["size"]
        onbuild_s = cold[ONBUILD]["seconds"]
        lines.append(
            f"figure {flavour.name}: baseline cold {base_s:.0f} s {base_size / 1e6:.0f} MB; ours cold "
            f"{cold_s:.0f} s ({cold_s / base_s:.2f}x), warm {warm_s:.1f} s ({warm_s / base_s:.3f}x), "
            f"{size / 1e6:.0f} MB ({size / base_size:.2f}x); onbuild {onbuild_s:.1f} s ({onbuild_s / cold_s:.3f} of "
            "the first)"
        )
    for platform, built in figures.get("platforms", {}).items():
        for flavour in flavours:
            first_s = figures["cold"][flavour.name]["base"]["seconds"]
            other_s, size = built[flavour.name]["base"]["seconds"], built[flavour.name]["base"]["size"]
            base_s = figures["baseline"][flavour.name][0]
            lines.append(
                f"platform {platform} {flavour.name}: cold {other_s:.0f} s = {other_s / first_s:.2f}x the "
                f"{figures['first_platform']} cold build of this run ({other_s / base_s:.2f}x the baseline), "
                f"{size / 1e6:.0f} MB"
            )
    if len(flavours) > 1:
        first = figures["cold"][flavours[0].name]["base"]["seconds"]
        for flavour in flavours[1:]:
            extra = figures["cold"][flavour.name]["base"]["seconds"]
            lines.append(f"extra flavour {flavour.name}: {extra:.0f} s = {extra / first:.2f} of the first")
    return lines


def _table(title: str, flavours, figures: dict) -> Table:
    table = Table(title=title)
    for column in (
        "flavour",
        "baseline s",
        "ours cold s",
        "cold ratio",
        "ours warm s",
        "warm ratio",
        "baseline MB",
        "ours MB",
        "size ratio",
        "onbuild s",
        "onbuild / first",
    ):
        table.add_column(column, justify="right")
    for flavour in flavours:
        base_s, base_size = figures["baseline"][flavour.name]
        cold, warm = figures["cold"][flavour.name], figures["warm"][flavour.name]
        cold_s, warm_s = cold["base"]["seconds"], warm["base"]["seconds"]
        size = cold["base"]["size"]
        onbuild_s = cold[ONBUILD]["seconds"]
        table.add_row(
            flavour.name,
            f"{base_s:.0f}",
            f"{cold_s:.0f}",
            f"{cold_s / base_s:.2f}",
            f"{warm_s:.1f}",
            f"{warm_s / base_s:.3f}",
            f"{base_size / 1e6:.0f}",
            f"{size / 1e6:.0f}",
            f"{size / base_size:.2f}",
            f"{onbuild_s:.1f}",
            f"{onbuild_s / cold_s:.3f}",
        )
    for platform, built in figures.get("platforms", {}).items():
        for flavour in flavours:  # a row per other platform: its cold build, ratios against the baseline
            base_s, base_size = figures["baseline"][flavour.name]
            other, size = built[flavour.name]["base"]["seconds"], built[flavour.name]["base"]["size"]
            onbuild_s = built[flavour.name][ONBUILD]["seconds"]
            first_s = figures["cold"][flavour.name]["base"]["seconds"]
            table.add_row(
                f"{flavour.name} {platform} = {other / first_s:.2f}x {figures['first_platform']}",
                f"{base_s:.0f}",
                f"{other:.0f}",
                f"{other / base_s:.2f}",
                "-",
                "-",
                f"{base_size / 1e6:.0f}",
                f"{size / 1e6:.0f}",
                f"{size / base_size:.2f}",
                f"{onbuild_s:.1f}",
                f"{onbuild_s / other:.3f}",
            )
    return table


def _print(console: Console, title: str, flavours, figures: dict) -> None:
    """The table on a terminal; in a log (CI, a pipe), whose width rich cannot know, plain lines that are never
    wrapped or cut. The plain lines follow the table on a terminal too: they are what a pasted run shows."""
    if console.is_terminal:
        console.print(_table(title, flavours, figures))
    else:
        console.print(title, soft_wrap=True, highlight=False)
    for line in figure_lines(flavours, figures):
        console.print(line, soft_wrap=True, highlight=False)
