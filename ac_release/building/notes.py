"""Release notes: the changelog entry plus what was released (hashes, bundles, and the digests and tags the
registries hold)."""

from __future__ import annotations

from ac_release.model.changelog import Entry
from ac_release.model.names import bundle_name
from ac_release.model.records import WheelRecord
from ac_release.world.context import ReleaseContext
from ac_release.world.released_images import ReleasedImage


def render(ctx: ReleaseContext, entry: Entry, images: list[ReleasedImage]) -> str:
    product = ctx.product
    named = str(ctx.version).removeprefix(product.prefix)  # `Astro Runtime 4.2.0`, `Astronomer Certified 2.2.4-1`
    lines = [f"# {product.title} {named} ({entry.date})", "", entry.markdown(), "", "## Python packages", ""]
    pins = f" and {', '.join(f'`{pin}`' for pin in ctx.line.meta_pins)}" if ctx.line.meta_pins else ""
    lines += [
        f"Apache Airflow {ctx.line.airflow} with Astronomer's patches as "
        f"`apache-airflow=={ctx.version.wheel_version}`; "
        f"`{product.meta_project}=={ctx.version.meta_version}` pins it{pins} and re-exposes every extra.",
        "",
        "| file | sha256 | Sigstore bundle |",
        "| --- | --- | --- |",
    ]
    wheel, signer = ctx.manifest.get(WheelRecord), ctx.signer
    for name, artifact in sorted(wheel.artifacts.items() if wheel else []):
        lines.append(f"| `{name}` | `{artifact.sha256}` | `{bundle_name(name)}` |")
    lines += ["", f"Signed with Sigstore as `{signer.identity}` (issuer `{signer.issuer}`)."]
    if images:
        lines += ["", "## Images", "", "| image | index digest | platforms | tags |", "| --- | --- | --- | --- |"]
        for image in sorted(images, key=lambda i: (i.repository, i.digest)):
            tags = ", ".join(f"`{tag}`" for tag in image.tags)
            held = "<br>".join(f"{platform} `{digest}`" for platform, digest in image.platforms.items())
            lines.append(f"| `{image.repository}` | `{image.digest}` | {held} | {tags} |")
    return "\n".join(lines).rstrip() + "\n"
