"""Stage `sign`: a Sigstore bundle beside every artifact of the wheel stage, verified before it is kept."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ac_release.context import ReleaseContext, ensure_local_services
from ac_release.errors import ReleaseError
from ac_release.fsutil import atomic_copy, sha256_file
from ac_release.signing import bundle_name, sign, verify, verify_all

NAME = "sign"


def artifacts_of(ctx: ReleaseContext):
    built = ctx.manifest.stage("wheel")
    if not built:
        raise ReleaseError(f"nothing to sign for {ctx.version}: run `invoke wheel {ctx.version}` first")
    return [ctx.dist / name for name in sorted(built["artifacts"])]


def run(ctx: ReleaseContext) -> dict:
    ensure_local_services(ctx)
    artifacts = artifacts_of(ctx)
    unsigned = [a for a in artifacts if not (ctx.dist / bundle_name(a.name)).exists()]
    # A bundle already there is kept only if it verifies for these bytes and this identity; otherwise refuse.
    for artifact in artifacts:
        if artifact not in unsigned:
            verify(ctx, artifact, ctx.dist / bundle_name(artifact.name))
    if unsigned:
        ctx.log(f"sign: signing {', '.join(a.name for a in unsigned)}")
        staging = tempfile.mkdtemp(prefix=".sign-", dir=ctx.dist)
        try:
            staging_dir = Path(staging)
            sign(ctx, unsigned, staging_dir)
            verify_all(ctx, unsigned, staging_dir)
            for artifact in unsigned:
                atomic_copy(staging_dir / bundle_name(artifact.name), ctx.dist / bundle_name(artifact.name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    else:
        ctx.log("sign: every artifact already carries a bundle that verifies, skipping")
    signing = ctx.target.signing
    result = {
        "identity": signing.identity,
        "issuer": signing.issuer,
        "instance": signing.instance,
        "bundles": {
            a.name: {"bundle": bundle_name(a.name), "sha256": sha256_file(ctx.dist / bundle_name(a.name))}
            for a in artifacts
        },
    }
    ctx.manifest.record(NAME, result)
    return result
