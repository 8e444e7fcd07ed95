"""Stage `sign`: a Sigstore bundle for every artifact of the wheel stage, by the target's signer, verified before
it is kept. Bundles live in dist/<version>/sigstore/<target>/, one directory per target."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ac_release.context import ReleaseContext, ensure_local_services
from ac_release.errors import ReleaseError
from ac_release.fsutil import atomic_copy, sha256_file
from ac_release.names import artifact_names, bundle_name
from ac_release.records import SignRecord, WheelRecord
from ac_release.signing import sign, verify, verify_all
from ac_release.steps import Step, open_steps

NAME = "sign"


def check(ctx: ReleaseContext) -> list[Step]:
    """sign what has no bundle; keep a bundle that verifies for these bytes and this identity; refuse an artifact
    whose bytes are not the wheel stage's, and a bundle that does not verify."""
    wheel = ctx.manifest.get(WheelRecord)
    steps = []
    for name in artifact_names(ctx.version):
        artifact, bundle = ctx.dist / name, ctx.bundles / bundle_name(name)
        where = str(bundle.relative_to(ctx.settings.dist_dir))
        ours = wheel.sha256(name) if wheel else None
        if ours and artifact.exists() and (actual := sha256_file(artifact)) != ours:
            steps.append(
                Step(
                    NAME,
                    "refuse",
                    where,
                    f"dist/{ctx.version}/{name} has sha256 {actual}, the wheel stage built {ours}",
                )
            )
        elif not bundle.exists() or not ours or not artifact.exists():
            steps.append(Step(NAME, "sign", where, f"as {ctx.target.signing.identity}"))
        else:
            try:
                verify(ctx, artifact, bundle)
            except ReleaseError as exc:
                steps.append(Step(NAME, "refuse", where, f"{exc}; delete the bundle to sign again"))
            else:
                steps.append(Step(NAME, "keep", where, f"verifies for sha256 {ours} as {ctx.target.signing.identity}"))
    return steps


def run(ctx: ReleaseContext, steps: list[Step]) -> SignRecord:
    ensure_local_services(ctx)
    names = artifact_names(ctx.version)
    unsigned = [ctx.dist / name for name in names if (ctx.bundles / bundle_name(name)) in _bundles(ctx, steps)]
    if unsigned:
        ctx.log(f"sign: signing {', '.join(a.name for a in unsigned)} as {ctx.target.signing.identity}")
        ctx.bundles.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".sign-", dir=ctx.bundles))
        try:
            sign(ctx, unsigned, staging)
            verify_all(ctx, unsigned, staging)
            for artifact in unsigned:
                atomic_copy(staging / bundle_name(artifact.name), ctx.bundles / bundle_name(artifact.name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    else:
        ctx.log("sign: every artifact already carries a bundle that verifies, skipping")
    signing = ctx.target.signing
    record = SignRecord(
        identity=signing.identity,
        issuer=signing.issuer,
        instance=signing.instance,
        bundles={name: sha256_file(ctx.bundles / bundle_name(name)) for name in names},
    )
    ctx.save(record)
    return record


def _bundles(ctx: ReleaseContext, steps: list[Step]) -> set[Path]:
    return {ctx.settings.dist_dir / step.target for step in open_steps(steps)}
