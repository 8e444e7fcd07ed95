"""`invoke verify <version>`: check a finished release from the outside, as a user would meet it.

Downloads every artifact from the index into an empty directory, verifies it against the wheel stage's sha256 and
its bundle, resolves every pushed tag to its digest, pulls each image by digest and runs `airflow version` in it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ac_release import registry
from ac_release.context import ReleaseContext
from ac_release.errors import ReleaseError
from ac_release.names import artifact_names, bundle_name
from ac_release.published import fetch_verified
from ac_release.records import PushRecord, WheelRecord


def run_verify(ctx: ReleaseContext) -> list[tuple[str, str]]:
    checks: list[tuple[str, str]] = []
    wheel, pushed = ctx.manifest.get(WheelRecord), ctx.record(PushRecord)
    if wheel is None or pushed is None:
        raise ReleaseError(f"{ctx.version} is not released to {ctx.target.name}: nothing to verify")
    with tempfile.TemporaryDirectory(prefix="ac-verify-") as tmp:
        client, bundles = Path(tmp) / "files", Path(tmp) / "bundles"
        bundles.mkdir()
        names = artifact_names(ctx.version)
        for name in names:
            shutil.copy(ctx.bundles / bundle_name(name), bundles / bundle_name(name))
        fetch_verified(ctx, names, client, bundles)
        for name in names:
            checks.append((name, f"sha256 {wheel.sha256(name)}, signature of {ctx.target.signing.identity}"))
    released = [t for t in pushed.tags if t.action != "kept"]
    for pushed_tag in released:
        remote = registry.remote_image(ctx.target.registry(pushed_tag.repository), pushed_tag.tag)
        if remote is None or remote.config != pushed_tag.image:
            raise ReleaseError(
                f"{pushed_tag.repository}:{pushed_tag.tag} does not point to the released image {pushed_tag.image}"
            )
    for repository, image, digest in sorted({(t.repository, t.image, t.digest) for t in released if not t.floating}):
        reference = f"{repository}@{digest}"
        with registry.authenticated(ctx.docker, ctx.target.registry(repository)) as docker:
            docker("pull", "--quiet", reference, capture=True)
        if ctx.docker.image_id(reference) != image:
            raise ReleaseError(f"{reference} pulled as {ctx.docker.image_id(reference)}, released {image}")
        out = ctx.docker("run", "--rm", reference, "airflow", "version", capture=True).stdout.decode().strip()
        if out.splitlines()[-1:] != [ctx.version.wheel_version]:
            raise ReleaseError(f"airflow version in {reference} prints {out!r}, expected {ctx.version.wheel_version}")
        tags = sorted(t.tag for t in released if t.repository == repository and t.image == image)
        checks.append((reference, f"tags {', '.join(tags)}; airflow {ctx.version.wheel_version}"))
    return checks
