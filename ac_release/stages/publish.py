"""Stage `publish`: upload the signed artifacts to the target's pip index with twine, then their bundles,
attestations and the wheel stage's record as the release-files artifact of the target's first registry
(`<registry>/release-files:<version>`, ac_release/clients/oci_release_files.py).

The index is read first: a file already there with the same sha256 is skipped, the same name with other bytes is
refused. The verification gate runs before anything is uploaded. The release files are what a machine that did not
build the wheels (the workflow's images job, `invoke verify`) reads back; published once, they never change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

from ac_release.building import build_inputs
from ac_release.clients import oci_release_files as release_files
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_bytes
from ac_release.model.names import ATTESTATION_KINDS, BUILD_INPUTS, WHEEL_RECORD, attestation_name
from ac_release.model.records import PublishRecord, WheelRecord
from ac_release.stages.steps import Step, changed_artifact, open_steps
from ac_release.supply_chain.signing import verify_all
from ac_release.world.context import ReleaseContext, services_running
from ac_release.world.index_state import index_state
from ac_release.world.line_builds import line_build_source, planned_sha256

NAME = "publish"


@dataclass(frozen=True)
class Upload:
    """An artifact of dist/ to the index."""

    artifact: str


@dataclass(frozen=True)
class ReleaseFiles:
    """The bundles, attestations and wheel record, as the release-files artifact of the first registry."""

    repository: str
    tag: str


def decide(ctx: ReleaseContext, earlier: Collection[str] = ()) -> list[Step[Upload | ReleaseFiles]]:
    """upload what the index lacks; skip what it serves with our sha256; refuse other bytes under our name, and an
    artifact in dist/ that is not the wheel stage's. The index is read only when it can be without starting
    anything (a dry run with the local services down says unknown). The release files are refused while the
    artifacts are not all signed, unless the sign stage runs before in this run."""
    wheel = ctx.manifest.get(WheelRecord)
    on_index = index_state(ctx) if services_running(ctx) else None
    source = line_build_source(ctx)
    steps = []
    for name in ctx.artifact_names:
        where = f"{ctx.target.index.url.rstrip('/')}/{name}"
        ours = planned_sha256(ctx, name, wheel.sha256(name) if wheel else None, source)
        upload = Upload(name)
        if changed := changed_artifact(ctx, name, ours):
            steps.append(Step(NAME, "refuse", where, changed, upload))
        elif on_index is None:
            steps.append(
                Step(NAME, "unknown", where, "index not running: compared by sha256 when the stage runs", upload)
            )
        elif name not in on_index:
            steps.append(Step(NAME, "upload", where, "not on the index", upload))
        elif ours is None:
            steps.append(
                Step(NAME, "unknown", where, "on the index: compared by sha256 once the wheel is built", upload)
            )
        elif on_index[name].sha256 == ours:
            steps.append(Step(NAME, "skip", where, f"the index serves sha256 {ours}", upload))
        else:
            reason = (
                f"the index serves sha256 {on_index[name].sha256 or 'unknown'}, ours is {ours}: published files "
                f"never change, release the next build number"
            )
            steps.append(Step(NAME, "refuse", where, reason, upload))
    if ctx.target.registries:
        steps.append(_release_files_step(ctx, on_index is not None, signed_before="sign" in earlier))
    return steps


def release_files_content(ctx: ReleaseContext) -> dict[str, bytes] | None:
    """{name: bytes} of the release files, or None until every artifact is built and signed."""
    wheel = ctx.manifest.get(WheelRecord)
    files = {}
    for name in ctx.release_files:
        path = ctx.bundles / name
        if name == WHEEL_RECORD and wheel is not None:
            files[name] = release_files.wheel_record_bytes(wheel)
        elif name == BUILD_INPUTS:
            files[name] = build_inputs.record_bytes(ctx.settings.root, ctx.version)
        elif name not in (WHEEL_RECORD, BUILD_INPUTS) and path.is_file():
            files[name] = path.read_bytes()
        else:
            return None
    return files


def _release_files_step(ctx: ReleaseContext, running: bool, signed_before: bool) -> Step[ReleaseFiles]:
    files_at = ReleaseFiles(release_files.location(ctx.target.registries[0]), str(ctx.version))
    where = f"{files_at.repository}:{files_at.tag}"
    if not running:
        return Step(NAME, "unknown", where, "registry not running", files_at)
    try:
        published = ctx.world.release_files(files_at.repository, files_at.tag)
    except ReleaseError as exc:
        return Step(NAME, "refuse", where, str(exc), files_at)
    files = release_files_content(ctx)
    ours = _sha256s(files or {})
    if published is None:
        if files is None and not signed_before:
            return Step(NAME, "refuse", where, _not_signed(ctx), files_at)
        what = "the bundles, attestations and wheel record"
        return Step(NAME, "push", where, what if files else f"{what}, once signed", files_at)
    if files is None or published == ours:
        reason = f"already holds the {len(published)} bundles, attestations and record"
        return Step(NAME, "skip", where, reason, files_at)
    differ = sorted(name for name in published.keys() | ours.keys() if published.get(name) != ours.get(name))
    reason = f"holds other files ({', '.join(differ)}): published files never change, release the next build"
    return Step(NAME, "refuse", where, reason, files_at)


def _not_signed(ctx: ReleaseContext) -> str:
    return f"the artifacts are not all signed: run `invoke sign {ctx.version}`"


def act(ctx: ReleaseContext, steps: list[Step[Upload | ReleaseFiles]]) -> PublishRecord:
    artifacts = [ctx.dist / name for name in ctx.artifact_names]
    # the gate, verifying what leaves, whatever was decided: nothing unsigned or signed by someone else leaves
    verify_all(ctx, artifacts, ctx.bundles)
    password = ctx.target.index.password.read()
    to_upload = [ctx.dist / step.payload.artifact for step in open_steps(steps) if isinstance(step.payload, Upload)]
    for artifact in to_upload:
        ctx.log(f"publish: uploading {artifact.name} to {ctx.target.index.url}")
        attestations = [ctx.bundles / attestation_name(artifact.name, kind) for kind in ATTESTATION_KINDS]
        ctx.world.upload(artifact, password, [a for a in attestations if a.is_file()])
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
    for step in open_steps(steps):
        if isinstance(step.payload, ReleaseFiles):
            _push_release_files(ctx, step.target, step.payload)
    record = PublishRecord(
        index=ctx.target.index.url,
        files={a.name: on_index[a.name].sha256 for a in artifacts},
        uploaded=[a.name for a in to_upload],
    )
    ctx.save(record)
    return record


def _sha256s(files: dict[str, bytes]) -> dict[str, str]:
    """{name: sha256} as the release-files listing names them."""
    return {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}


def _push_release_files(ctx: ReleaseContext, where: str, files_at: ReleaseFiles) -> None:
    files = release_files_content(ctx)
    if files is None:  # decided signed, then a bundle went missing
        raise ReleaseError(f"{where}: {_not_signed(ctx)}")
    for name in (WHEEL_RECORD, BUILD_INPUTS) if ctx.version.dev else (WHEEL_RECORD,):
        atomic_write_bytes(ctx.bundles / name, files[name])  # beside the bundles, as users get them
    ctx.log(f"publish: the bundles, attestations and wheel record as {where}")
    ctx.world.push_release_files(files_at.repository, files_at.tag, files)
    if release_files.listing(files_at.repository, files_at.tag) != _sha256s(files):
        raise ReleaseError(f"after the push {where} does not hold the release's files")
