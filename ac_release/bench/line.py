"""`invoke bench`'s line figures: every image made from one line build (each product version that installs it, each
variant), built cold one after the other, the first one timed as the reference.

The line's venv (Airflow and the line's lock) is one stage and one layer of every image of the line
(images/Dockerfile.j2, `line` and `airflow`): after the first image, another product or variant builds only its own
difference. The figures say how much that is, as a share of the first image, with the targets of the issue beside.
"""

from __future__ import annotations

from dataclasses import dataclass

from ac_release.building import image_build as build
from ac_release.core.errors import ReleaseError
from ac_release.model.catalog import Catalog
from ac_release.supply_chain.fetch import fetch_verified
from ac_release.world.context import ReleaseContext, flavours

EACH_TARGET = 0.10  # every further image of a line build, as a share of the first one's cold build
WHOLE_TARGET = 1.30  # every image of the line build together, against the first


@dataclass(frozen=True)
class LineImage:
    version: str
    variant: str
    seconds: float
    size: int


def measure_line(
    catalog: Catalog, target: str | None, versions: list[str], repository: str
) -> tuple[list[LineImage], dict[str, str]]:
    """Build the default flavour's images of each of `versions`, in order, under `repository` (the caller empties
    the build cache first). A version whose wheels the target's index does not serve, verified, is left out with the
    reason: ({measured images}, {version left out: why})."""
    ready, left_out = {}, {}
    for version in versions:  # every download before the first build: none of it counts in a build's time
        ctx = ReleaseContext.create(version, catalog, target)
        names = [name for name in ctx.artifact_names if name.endswith(".whl")]
        try:
            ready[version] = (ctx, fetch_verified(ctx, names, ctx.cache / "images" / version / "wheels", ctx.bundles))
        except ReleaseError as exc:
            left_out[version] = f"{exc} (`invoke build {version}` first)"
    measured = []
    for version, (ctx, wheels) in ready.items():
        built = build.build_named(ctx, flavours(ctx)[0], wheels, f"{repository}:line-{version}")
        measured += [LineImage(version, variant, seconds, size) for variant, (seconds, size) in built.items()]
    return measured, left_out


def line_lines(images: list[LineImage], left_out: dict[str, str] | None = None) -> list[str]:
    """Every figure as a plain line, shares of the first image with the targets beside."""
    first, *further = images
    lines = [
        f"line build: first image {first.version} {first.variant} cold {first.seconds:.1f} s, {first.size / 1e6:.0f} MB"
    ]
    for image in further:
        share = image.seconds / first.seconds
        lines.append(
            f"line build: then {image.version} {image.variant} {image.seconds:.1f} s = {share:.3f} of the first "
            f"({'within' if share < EACH_TARGET else 'over'} the {EACH_TARGET:.2f} target), {image.size / 1e6:.0f} MB "
            f"({image.size / first.size:.2f}x its size)"
        )
    whole = sum(image.seconds for image in images) / first.seconds
    lines.append(
        f"line build: all {len(images)} images {sum(image.seconds for image in images):.1f} s = {whole:.2f}x the first "
        f"({'within' if whole < WHOLE_TARGET else 'over'} the {WHOLE_TARGET:.2f}x target)"
    )
    lines += [f"line build: {version} not measured: {why}" for version, why in (left_out or {}).items()]
    return lines
