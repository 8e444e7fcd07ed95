"""Stage `sign`: for every artifact of the wheel stage, by the target's signer, each verified before it is kept:
a Sigstore bundle, and the PEP 740 attestations `publish` and `slsa` (provenance). They live in
dist/<version>/sigstore/<target>/, one directory per target."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ac_release.building.image_build import revision
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_copy, atomic_write_bytes, sha256_file
from ac_release.model.names import ATTESTATION_KINDS, attestation_name, bundle_name
from ac_release.model.records import SignRecord, WheelRecord
from ac_release.stages.steps import Step, changed_artifact, open_steps
from ac_release.supply_chain import wheel_attestations
from ac_release.supply_chain.signing import sign, verify, verify_all
from ac_release.world.context import ReleaseContext
from ac_release.world.line_builds import line_build_source, planned_sha256

NAME = "sign"


@dataclass(frozen=True)
class Signed:
    """One signed file of an artifact: its bundle (`kind` None) or a PEP 740 attestation of `kind`; `source`: the
    line build's, to be copied (a `reuse` step)."""

    artifact: str
    kind: str | None
    source: Path | None = None


def decide(ctx: ReleaseContext, earlier: Collection[str] = ()) -> list[Step[Signed]]:
    """sign what has no bundle or attestation; keep one that verifies for these bytes and this identity; refuse an
    artifact whose bytes are not the wheel stage's, and a bundle or attestation that does not verify."""
    wheel = ctx.manifest.get(WheelRecord)
    source = line_build_source(ctx)
    steps = []
    for name in ctx.artifact_names:
        artifact = ctx.dist / name
        recorded = wheel.sha256(name) if wheel else None
        ours = planned_sha256(ctx, name, recorded, source)
        files = [(ctx.bundles / bundle_name(name), None)]
        files += [(ctx.bundles / attestation_name(name, kind), kind) for kind in ATTESTATION_KINDS]
        changed = changed_artifact(ctx, name, ours)
        for path, kind in files:
            where = str(path.relative_to(ctx.settings.dist_dir))
            payload = Signed(name, kind)
            if changed:
                steps.append(Step(NAME, "refuse", where, changed, payload))
            elif (
                not path.exists()
                and ours
                and source
                and source.sha256.get(name) == ours
                and source.holds(path.name, ctx.target.name)
            ):
                reason = f"the line build's, signed when {source.where} was released: verified before it is kept"
                payload = Signed(name, kind, source.bundles(ctx.target.name) / path.name)
                steps.append(Step(NAME, "reuse", where, reason, payload))
            elif not path.exists() or not recorded or not artifact.exists():
                steps.append(Step(NAME, "sign", where, f"as {ctx.signer.identity}", payload))
            else:
                try:
                    if kind is None:
                        verify(ctx, artifact, path)
                    else:
                        wheel_attestations.verify(ctx, artifact, path, kind)
                except ReleaseError as exc:
                    steps.append(Step(NAME, "refuse", where, f"{exc}; delete it to sign again", payload))
                else:
                    reason = f"verifies for sha256 {ours} as {ctx.signer.identity}"
                    steps.append(Step(NAME, "keep", where, reason, payload))
    return steps


def _predicate(ctx: ReleaseContext, artifact: Path, kind: str, sha256: str) -> dict | None:
    """The SLSA provenance of an artifact: its build inputs and the commit signing it (a later commit that keeps
    the same bytes keeps the provenance: only the inputs that decide the bytes are compared)."""
    if kind != "slsa":
        return None
    return wheel_attestations.slsa_predicate(ctx, artifact.name, sha256, revision(ctx.settings.root))


def _reuse(ctx: ReleaseContext, files: list[Signed]) -> None:
    """The line build's bundles and attestations, as the release that built it made them: each verified for these
    bytes and this target's identity before the first lands (a line build is signed once)."""
    ctx.log(f"sign: the line build {ctx.version.wheel_version} keeps the bundles and attestations it was signed with")
    staging = Path(tempfile.mkdtemp(prefix=".reuse-", dir=ctx.bundles))
    try:
        for file in files:
            staged = staging / file.source.name
            shutil.copy(file.source, staged)
            artifact = ctx.dist / file.artifact
            if file.kind is None:
                verify(ctx, artifact, staged)
            else:
                wheel_attestations.verify(ctx, artifact, staged, file.kind)
        for file in files:
            atomic_copy(staging / file.source.name, ctx.bundles / file.source.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def act(ctx: ReleaseContext, steps: list[Step[Signed]]) -> SignRecord:
    names = ctx.artifact_names
    reused = [step.payload for step in steps if step.action == "reuse"]
    wanted = [step.payload for step in open_steps(steps) if step.action != "reuse"]
    ctx.bundles.mkdir(parents=True, exist_ok=True)
    if reused:
        _reuse(ctx, reused)
    unsigned = [ctx.dist / s.artifact for s in wanted if s.kind is None]
    unattested = [(ctx.dist / s.artifact, s.kind) for s in wanted if s.kind is not None]
    if unsigned:
        ctx.log(f"sign: signing {', '.join(a.name for a in unsigned)} as {ctx.signer.identity}")
        staging = Path(tempfile.mkdtemp(prefix=".sign-", dir=ctx.bundles))
        try:
            sign(ctx, unsigned, staging)
            verify_all(ctx, unsigned, staging)
            for artifact in unsigned:
                atomic_copy(staging / bundle_name(artifact.name), ctx.bundles / bundle_name(artifact.name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if unattested:
        ctx.log(f"sign: attesting {', '.join(f'{a.name} ({k})' for a, k in unattested)}")
        wheel = ctx.manifest.get(WheelRecord)
        predicates = {(a.name, k): _predicate(ctx, a, k, wheel.sha256(a.name)) for a, k in unattested}
        made = wheel_attestations.sign(ctx, [(a, k, predicates[(a.name, k)]) for a, k in unattested])
        staging = Path(tempfile.mkdtemp(prefix=".attest-", dir=ctx.bundles))
        try:
            for artifact, kind in unattested:
                staged = staging / attestation_name(artifact.name, kind)
                staged.write_bytes(made[(artifact.name, kind)])
                wheel_attestations.verify(ctx, artifact, staged, kind)
            for artifact, kind in unattested:  # every one verified before the first lands
                name = attestation_name(artifact.name, kind)
                atomic_write_bytes(ctx.bundles / name, (staging / name).read_bytes())
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if not unsigned and not unattested:
        ctx.log("sign: every artifact already carries a bundle and attestations that verify, skipping")
    signer = ctx.signer
    record = SignRecord(
        identity=signer.identity,
        issuer=signer.issuer,
        instance=ctx.target.signing.instance,
        bundles={name: sha256_file(ctx.bundles / bundle_name(name)) for name in names},
        attestations={
            attestation_name(name, kind): sha256_file(ctx.bundles / attestation_name(name, kind))
            for name in names
            for kind in ATTESTATION_KINDS
        },
    )
    ctx.save(record)
    return record
