"""Release notes: the changelog entry plus what the manifest says was released (hashes, bundles, digests, tags)."""

from __future__ import annotations

from ac_release.changelog import Entry
from ac_release.context import ReleaseContext
from ac_release.names import bundle_name
from ac_release.records import PushRecord, SignRecord, WheelRecord


def render(ctx: ReleaseContext, entry: Entry) -> str:
    lines = [f"# Astronomer Certified {ctx.version} ({entry.date})", "", entry.markdown(), "", "## Python packages", ""]
    lines += [
        f"Apache Airflow {ctx.line.airflow} with the AC patches as `apache-airflow=={ctx.version.wheel_version}`; "
        f"`astronomer-certified=={ctx.version.meta_version}` pins it and re-exposes every extra.",
        "",
        "| file | sha256 | Sigstore bundle |",
        "| --- | --- | --- |",
    ]
    wheel, signing = ctx.manifest.get(WheelRecord), ctx.record(SignRecord)
    for name, artifact in sorted(wheel.artifacts.items() if wheel else []):
        bundle = f"`{bundle_name(name)}`" if signing and name in signing.bundles else "-"
        lines.append(f"| `{name}` | `{artifact.sha256}` | {bundle} |")
    if signing:
        lines += ["", f"Signed with Sigstore as `{signing.identity}` (issuer `{signing.issuer}`)."]
    pushed = ctx.record(PushRecord)
    if pushed:
        lines += ["", "## Images", "", "| image | digest | tags |", "| --- | --- | --- |"]
        released = [t for t in pushed.tags if t.action != "kept"]
        for repository, digest in sorted({(t.repository, t.digest) for t in released if not t.floating}):
            tags = ", ".join(f"`{t.tag}`" for t in released if (t.repository, t.digest) == (repository, digest))
            lines.append(f"| `{repository}` | `{digest}` | {tags} |")
    return "\n".join(lines).rstrip() + "\n"
