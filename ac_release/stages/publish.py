"""Stage `publish`: upload the signed artifacts to the target's pip index with twine.

The index is read first: a file already there with the same sha256 is skipped, the same name with other bytes is
refused. The verification gate runs before anything is uploaded. Bundles stay beside the artifacts in dist/ and
in the manifest (a private index cannot hold them).
"""

from __future__ import annotations

from pathlib import Path

from ac_release.context import ReleaseContext, ensure_local_services
from ac_release.errors import ReleaseError
from ac_release.fsutil import sha256_file
from ac_release.index import IndexFile, project_files
from ac_release.signing import bundle_name, verify_all
from ac_release.stages.sign import artifacts_of
from ac_release.upload import upload

NAME = "publish"
PROJECTS = ("apache-airflow", "astronomer-certified")


def index_state(ctx: ReleaseContext, password: str) -> dict[str, IndexFile]:
    files: dict[str, IndexFile] = {}
    for project in PROJECTS:
        files.update(project_files(ctx.target.index, password, project))
    return files


def plan(ctx: ReleaseContext, artifacts: list[Path], on_index: dict[str, IndexFile]) -> list[Path]:
    """The artifacts still to upload; refuses when the index holds other bytes under one of our names."""
    to_upload = []
    for artifact in artifacts:
        digest = sha256_file(artifact)
        remote = on_index[artifact.name].sha256 if artifact.name in on_index else None
        if remote is None:
            to_upload.append(artifact)
        elif remote != digest:
            raise ReleaseError(
                f"{ctx.target.index.url} already holds {artifact.name} with sha256 {remote or 'unknown'}, "
                f"ours is {digest}: published files are immutable, release a new build number"
            )
    return to_upload


def run(ctx: ReleaseContext) -> dict:
    ensure_local_services(ctx)
    artifacts = artifacts_of(ctx)
    verify_all(ctx, artifacts, ctx.dist)  # the gate: nothing unsigned or re-signed by someone else leaves
    password = ctx.target.index.password.read()
    to_upload = plan(ctx, artifacts, index_state(ctx, password))
    for artifact in to_upload:
        ctx.log(f"publish: uploading {artifact.name} to {ctx.target.index.url}")
        upload(ctx.target.index, artifact, password)
    if not to_upload:
        ctx.log(f"publish: {ctx.target.index.url} already holds every artifact with the same sha256, skipping")
    on_index = index_state(ctx, password)
    files = {}
    for artifact in artifacts:
        digest = sha256_file(artifact)
        served = on_index[artifact.name].sha256 if artifact.name in on_index else "nothing"
        if served != digest:
            raise ReleaseError(
                f"after upload {ctx.target.index.url} serves {artifact.name} with sha256 {served}, expected {digest}"
            )
        files[artifact.name] = {
            "sha256": digest,
            "bundle": bundle_name(artifact.name),
            "action": "uploaded" if artifact in to_upload else "present",
        }
    previous = ctx.manifest.stage(NAME) or {}
    result = {**previous, ctx.target.name: {"index": ctx.target.index.url, "files": files}}
    ctx.manifest.record(NAME, result)
    return result[ctx.target.name]
