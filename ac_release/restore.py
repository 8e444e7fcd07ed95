"""What a machine that did not run the earlier stages reads back before it acts.

A job of the release workflow starts on a fresh machine, without dist/: the state of the release is where it was
published. The release files the publish stage pushed (bundles, attestations and the wheel stage's record) are
fetched into dist/, and the wheel record must name the sha256 the index serves for every artifact. The images
stage then downloads the wheels and verifies them against these bundles, as on the machine that built them. Images,
test results and pushed digests are not restored: images are built and tested again where they are pushed, and the
promote, tag and verify steps read the registry itself.

So is the line build another product version made (restore_line_build): Runtime 4.2.0's wheel job finds AC
2.2.4-1's Airflow wheel, bundles and attestations as 2.2.4-1 published them, and reuses them.
"""

from __future__ import annotations

import json

from ac_release import release_files
from ac_release.context import ReleaseContext, services_running
from ac_release.errors import ReleaseError
from ac_release.fsutil import atomic_write_bytes
from ac_release.line_builds import line_build_source
from ac_release.names import WHEEL_RECORD
from ac_release.published import fetch_verified, index_state
from ac_release.records import WheelRecord
from ac_release.runlock import held


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


def restore_line_build(ctx: ReleaseContext) -> str | None:
    """The line build as the release that published it left it on the target (line_builds.published_line_build),
    when this machine's dist/ holds it nowhere: that release's wheel record, and the line build's bundles and
    attestations, from its release files; the files from the index, checked against the record and verified against
    their bundles; all written to dist/<that version>/, where the wheel and sign stages find it (built_elsewhere) and
    reuse it rather than build and sign it again. Returns that version, or None."""
    source = line_build_source(ctx)
    if source is None or not source.published:
        return None
    other = ReleaseContext.create(source.release, ctx.settings, ctx.release_target.name)
    repository, tag = source.published.rsplit(":", 1)
    files = release_files.fetch_files(repository, tag, [WHEEL_RECORD, *sorted(source.signed)])
    record = WheelRecord.from_json(json.loads(files.pop(WHEEL_RECORD)))
    if {name: record.sha256(name) for name in source.sha256} != source.sha256:
        raise ReleaseError(f"{source.published} changed while it was read: run again")
    if (here := other.manifest.get(WheelRecord)) is not None and here.to_json() != record.to_json():
        raise ReleaseError(
            f"dist/{other.version}/release.json holds a wheel record other than {source.published} publishes: "
            f"restore it from there, or remove dist/{other.version}"
        )
    _check_against_index(other, record, source.published)
    with held(other.dist, str(other.version)):  # dist/<other> is that version's: no run of it writes there meanwhile
        for name, data in files.items():  # the bundles first: fetch_verified verifies the files against them
            atomic_write_bytes(other.bundles / name, data)
        fetch_verified(other, list(source.sha256), other.dist, other.bundles, record)
        other.manifest.put(record)  # last: a record names files that are all there
    ctx.log(f"restored the line build {ctx.version.wheel_version} from {source.published}: {', '.join(source.sha256)}")
    return source.release
