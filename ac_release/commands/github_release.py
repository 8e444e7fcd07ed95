"""The GitHub release of a finished release (connected world only): the tag's notes, with the wheels, the sdist,
their Sigstore bundles and PEP 740 attestations (`publish`, `slsa`) and the manifest attached, through the `gh`
CLI of GitHub Actions: where users of targets without services of their own fetch the bundles and attestations.

Idempotent like the stages: an existing release keeps the assets it has (same name and size) and gets the
missing ones; an asset with the same name and another size is refused.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from ac_release.commands import release
from ac_release.core.errors import ReleaseError
from ac_release.model.names import NOTES
from ac_release.model.records import TagRecord
from ac_release.supply_chain.fetch import fetch_verified
from ac_release.world.context import ReleaseContext

GH_TIMEOUT_S = 600  # one call; an upload of every asset takes well under a minute, a hung connection forever


def _gh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    if shutil.which("gh") is None:
        raise ReleaseError("the GitHub CLI `gh` is not installed: the GitHub release is made in GitHub Actions")
    try:
        result = subprocess.run(["gh", *args], capture_output=True, text=True, timeout=GH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ReleaseError(
            f"gh {args[0]} {args[1]} did not finish in {GH_TIMEOUT_S} s: check GitHub's status and run the step again"
        ) from None
    if check and result.returncode != 0:
        raise ReleaseError(f"gh {args[0]} {args[1]} failed: {result.stderr.strip().splitlines()[-1:]}")
    return result


def release_title(ctx: ReleaseContext) -> str:
    """The product and the version its users know: "Astronomer Certified 2.2.4-1", "Astro Runtime 4.2.0"."""
    return f"{ctx.product.title} {ctx.version.image_tag}"


def publish_github_release(ctx: ReleaseContext) -> str:
    tagged = ctx.record(TagRecord)
    if not tagged:
        raise ReleaseError(f"{ctx.version} has no git tag yet: run `invoke release {ctx.version}` first")
    names = ctx.artifact_names
    if missing := [name for name in names if not (ctx.dist / name).is_file()]:  # a job that did not build them
        fetch_verified(ctx, missing, ctx.dist, ctx.bundles)
    assets = [ctx.dist / name for name in names] + [ctx.bundles / name for name in ctx.release_files]
    assets.append(ctx.manifest.path)
    tag = tagged.tag
    view = _gh("release", "view", tag, "--json", "assets", check=False)
    if view.returncode != 0:
        _gh(
            "release",
            "create",
            tag,
            "--verify-tag",
            "--title",
            release_title(ctx),
            "--notes-file",
            str(ctx.dist / NOTES),
            *map(str, assets),
        )
        return "created"
    existing = {a["name"]: a["size"] for a in json.loads(view.stdout)["assets"]}
    for asset in assets:
        if asset.name in existing and existing[asset.name] != asset.stat().st_size:
            raise ReleaseError(
                f"GitHub release {tag} has another {asset.name} ({existing[asset.name]} bytes): refusing"
            )
    missing = [str(a) for a in assets if a.name not in existing]
    if missing:
        _gh("release", "upload", tag, *missing)
    return "updated" if missing else "present"


def github_release_command(version: str, target: str | None) -> None:
    """`invoke github-release`: prints created, updated or present."""
    print(publish_github_release(release.context(version, target)))
