"""What a machine that did not run the earlier stages reads back before it acts.

A job of the release workflow starts on a fresh machine, without dist/: the state of the release is where it was
published. The release files the publish stage pushed (bundles, attestations and the wheel stage's record) are
fetched into dist/, and the wheel record must name the sha256 the index serves for every artifact. The images
stage then downloads the wheels and verifies them against these bundles, as on the machine that built them. Images,
test results and pushed digests are not restored: images are built and tested again where they are pushed, and the
promote, tag and verify steps read the registry itself.
"""

from __future__ import annotations

import json

from ac_release import release_files
from ac_release.context import ReleaseContext, services_running
from ac_release.errors import ReleaseError
from ac_release.fsutil import atomic_write_bytes
from ac_release.names import WHEEL_RECORD
from ac_release.published import index_state
from ac_release.records import WheelRecord


def restore_release_files(ctx: ReleaseContext) -> list[str]:
    """Fetch every published release file dist/ lacks; returns their names. Files already here are kept (the
    stages compare them with what is published and refuse a difference)."""
    if not ctx.target.registries or not services_running(ctx):
        return []
    repository, tag = release_files.location(ctx.target.registries[0]), str(ctx.version)
    published = release_files.listing(repository, tag)
    if published is None:
        return []
    missing = release_files.fetch_files(
        repository, tag, [name for name in sorted(published) if not (ctx.bundles / name).is_file()]
    )
    record = None
    if WHEEL_RECORD in missing and ctx.manifest.get(WheelRecord) is None:  # else built here: publish compares them
        record = WheelRecord.from_json(json.loads(missing[WHEEL_RECORD]))
        _check_against_index(ctx, record, f"{repository}:{tag}")  # before anything is written
    for name, data in missing.items():
        atomic_write_bytes(ctx.bundles / name, data)
    if record is not None:
        ctx.manifest.put(record)
    restored = sorted(missing)
    if restored:
        ctx.log(f"restored from {repository}:{tag}: {', '.join(restored)}")
    return restored


def _check_against_index(ctx: ReleaseContext, record: WheelRecord, where: str) -> None:
    on_index = index_state(ctx)
    for name, artifact in sorted(record.artifacts.items()):
        served = on_index[name].sha256 if name in on_index else None
        if served != artifact.sha256:
            raise ReleaseError(
                f"the wheel record of {where} names {name} with sha256 {artifact.sha256}, the index "
                f"{ctx.target.index.url} serves {served or 'nothing'}: the published release is inconsistent"
            )
