"""Release notes: the changelog entry plus what the manifest says was released (hashes, bundles, digests, tags)."""

from __future__ import annotations

from ac_release.changelog import Entry
from ac_release.context import ReleaseContext


def render(ctx: ReleaseContext, entry: Entry) -> str:
    stages = ctx.manifest.data["stages"]
    lines = [f"# Astronomer Certified {ctx.version} ({entry.date})", "", entry.markdown(), "", "## Python packages", ""]
    lines += [
        f"Apache Airflow {ctx.line.airflow} with the AC patches as `apache-airflow=={ctx.version.wheel_version}`; "
        f"`astronomer-certified=={ctx.version.meta_version}` pins it and re-exposes every extra.",
        "",
        "| file | sha256 | Sigstore bundle |",
        "| --- | --- | --- |",
    ]
    bundles = stages.get("sign", {}).get("bundles", {})
    for name, meta in sorted(stages.get("wheel", {}).get("artifacts", {}).items()):
        lines.append(f"| `{name}` | `{meta['sha256']}` | `{bundles.get(name, {}).get('bundle', '-')}` |")
    signing = stages.get("sign", {})
    if signing:
        lines += ["", f"Signed with Sigstore as `{signing['identity']}` (issuer `{signing['issuer']}`)."]
    pushed = stages.get("push", {}).get(ctx.target.name, {})
    if pushed:
        lines += ["", "## Images", "", "| image | digest | tags |", "| --- | --- | --- |"]
        for key, image in sorted(pushed.get("images", {}).items()):
            tags = ", ".join(f"`{t}`" for t in image["tags"] + image.get("floating_moved", []))
            lines.append(f"| `{image['repository']}` ({key}) | `{image['digest']}` | {tags} |")
    return "\n".join(lines).rstrip() + "\n"
