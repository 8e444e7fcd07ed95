"""`invoke verify <version>`: check a finished release from the outside, as a user would meet it.

Downloads every artifact from the index into an empty directory, verifies it against its bundle and the manifest's
sha256, resolves every pushed tag to its digest, pulls each image by digest and runs `airflow version` in it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ac_release import registry
from ac_release.context import ReleaseContext
from ac_release.errors import ReleaseError
from ac_release.fsutil import atomic_write_bytes, sha256_file
from ac_release.index import download
from ac_release.signing import bundle_name, verify
from ac_release.stages.publish import index_state


def run_verify(ctx: ReleaseContext) -> list[tuple[str, str]]:
    checks: list[tuple[str, str]] = []
    built = (ctx.manifest.stage("wheel") or {}).get("artifacts")
    pushed = ((ctx.manifest.stage("push") or {}).get(ctx.target.name) or {}).get("images")
    if not built or not pushed:
        raise ReleaseError(f"{ctx.version} is not released to {ctx.target.name}: nothing to verify")
    password = ctx.target.index.password.read()
    on_index = index_state(ctx, password)
    with tempfile.TemporaryDirectory(prefix="ac-verify-") as tmp:
        client = Path(tmp)
        for name, meta in sorted(built.items()):
            if name not in on_index:
                raise ReleaseError(f"{ctx.target.index.url} does not serve {name}")
            path = client / name
            atomic_write_bytes(path, download(ctx.target.index, password, on_index[name]))
            if sha256_file(path) != meta["sha256"]:
                raise ReleaseError(f"{name} from the index has sha256 {sha256_file(path)}, released {meta['sha256']}")
            shutil.copy(ctx.dist / bundle_name(name), client / bundle_name(name))
            verify(ctx, path, client / bundle_name(name))
            checks.append((name, f"sha256 {meta['sha256'][:16]}…, signature of {ctx.target.signing.identity}"))
    for key, image in sorted(pushed.items()):
        repository, digest = image["repository"], image["digest"]
        for tag in image["tags"] + image["floating_moved"]:
            remote = registry.remote_image(repository, tag)
            if remote is None or remote.config != image["image"]:
                raise ReleaseError(f"{repository}:{tag} does not point to the released image {image['image']}")
        reference = f"{repository}@{digest}"
        ctx.docker("pull", "--quiet", reference, capture=True)
        if ctx.docker.image_id(reference) != image["image"]:
            raise ReleaseError(f"{reference} pulled as {ctx.docker.image_id(reference)}, released {image['image']}")
        out = ctx.docker("run", "--rm", reference, "airflow", "version", capture=True).stdout.decode().strip()
        if out.splitlines()[-1:] != [ctx.version.wheel_version]:
            raise ReleaseError(f"airflow version in {reference} prints {out!r}, expected {ctx.version.wheel_version}")
        tag_count = len(image["tags"] + image["floating_moved"])
        checks.append((key, f"{digest[:19]}…, {tag_count} tags, airflow {ctx.version.wheel_version}"))
    return checks
