"""Stage `publish`: upload the signed artifacts to the target's pip index with twine.

The index is read first: a file already there with the same sha256 is skipped, the same name with other bytes is
refused. The verification gate runs before anything is uploaded. Bundles stay in dist/ and in the manifest (a
private index cannot hold them).
"""

from __future__ import annotations

from ac_release.context import ReleaseContext, ensure_local_services, services_running
from ac_release.errors import ReleaseError
from ac_release.fsutil import sha256_file
from ac_release.names import ATTESTATION_KINDS, artifact_names, attestation_name
from ac_release.published import index_state
from ac_release.records import PublishRecord, WheelRecord
from ac_release.signing import verify_all
from ac_release.steps import Step, open_steps
from ac_release.upload import upload

NAME = "publish"


def check(ctx: ReleaseContext) -> list[Step]:
    """upload what the index lacks; skip what it serves with our sha256; refuse other bytes under our name, and an
    artifact in dist/ that is not the wheel stage's. The index is read only when it can be without starting
    anything (a dry run with the local services down says unknown)."""
    wheel = ctx.manifest.get(WheelRecord)
    on_index = index_state(ctx) if services_running(ctx) else None
    steps = []
    for name in artifact_names(ctx.version):
        where = f"{ctx.target.index.url.rstrip('/')}/{name}"
        ours = wheel.sha256(name) if wheel else None
        path = ctx.dist / name
        if ours and path.exists() and (actual := sha256_file(path)) != ours:
            reason = f"dist/{ctx.version}/{name} has sha256 {actual}, the wheel stage built {ours}"
            steps.append(Step(NAME, "refuse", where, reason))
        elif on_index is None:
            steps.append(Step(NAME, "unknown", where, "index not running: compared by sha256 when the stage runs"))
        elif name not in on_index:
            steps.append(Step(NAME, "upload", where, "not on the index"))
        elif ours is None:
            steps.append(Step(NAME, "unknown", where, "on the index: compared by sha256 once the wheel is built"))
        elif on_index[name].sha256 == ours:
            steps.append(Step(NAME, "skip", where, f"the index serves sha256 {ours}"))
        else:
            reason = (
                f"the index serves sha256 {on_index[name].sha256 or 'unknown'}, ours is {ours}: published files "
                f"never change, release the next build number"
            )
            steps.append(Step(NAME, "refuse", where, reason))
    return steps


def run(ctx: ReleaseContext, steps: list[Step]) -> PublishRecord:
    ensure_local_services(ctx)
    artifacts = [ctx.dist / name for name in artifact_names(ctx.version)]
    verify_all(ctx, artifacts, ctx.bundles)  # the gate: nothing unsigned or signed by someone else leaves
    password = ctx.target.index.password.read()
    to_upload = [ctx.dist / step.target.rsplit("/", 1)[-1] for step in open_steps(steps)]
    for artifact in to_upload:
        ctx.log(f"publish: uploading {artifact.name} to {ctx.target.index.url}")
        attestations = [ctx.bundles / attestation_name(artifact.name, kind) for kind in ATTESTATION_KINDS]
        upload(ctx.target.index, artifact, password, [a for a in attestations if a.is_file()])
    if not to_upload:
        ctx.log(f"publish: {ctx.target.index.url} already holds every artifact with the same sha256, skipping")
    on_index = index_state(ctx)
    wheel = ctx.manifest.get(WheelRecord)
    for artifact in artifacts:
        served = on_index[artifact.name].sha256 if artifact.name in on_index else "nothing"
        if served != wheel.sha256(artifact.name):
            raise ReleaseError(
                f"after upload {ctx.target.index.url} serves {artifact.name} with sha256 {served}, "
                f"expected {wheel.sha256(artifact.name)}"
            )
    record = PublishRecord(
        index=ctx.target.index.url,
        files={a.name: on_index[a.name].sha256 for a in artifacts},
        uploaded=[a.name for a in to_upload],
    )
    ctx.save(record)
    return record
