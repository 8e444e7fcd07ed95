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

from ac_release.clients import oci_release_files as release_files
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_bytes
from ac_release.model.names import BUILD_INPUTS, WHEEL_RECORD, signed_names
from ac_release.model.records import WheelRecord
from ac_release.pipeline.runlock import held
from ac_release.supply_chain.fetch import fetch_verified
from ac_release.world.context import ReleaseContext, services_running
from ac_release.world.index_state import index_state
from ac_release.world.line_builds import line_build_source


def restore_release_files(ctx: ReleaseContext) -> list[str]:
    """Fetch every published release file dist/ lacks; returns their names. Files already here are kept (the
    stages compare them with what is published and refuse a difference). A name the registry's annotations give is
    trusted only as the release's record accounts for it (_accounted: the record here, else the one published);
    any other, or one that is not a plain file name, is refused before anything is written."""
    if not ctx.target.registries or not services_running(ctx):
        return []
    repository, tag = release_files.location(ctx.target.registries[0]), str(ctx.version)
    where = f"{repository}:{tag}"
    published = ctx.world.release_files(repository, tag)
    if published is None:
        return []
    _refuse_unplain(published, where)  # before a name is joined onto dist/, even to ask whether it is there
    here = ctx.manifest.get(WheelRecord)
    fetched = {}
    if here is None and WHEEL_RECORD in published:  # the record that accounts for the others: fetched first
        fetched = release_files.fetch_files(repository, tag, [WHEEL_RECORD])
    read_back = WheelRecord.from_json(json.loads(fetched[WHEEL_RECORD])) if fetched else None
    _refuse_unaccounted(sorted(published), _accounted(here or read_back, ctx.version.dev), where)
    wanted = [name for name in sorted(published) if not (ctx.bundles / name).is_file()]
    missing = {name: fetched[name] for name in wanted if name in fetched}
    if rest := [name for name in wanted if name not in fetched]:
        missing |= release_files.fetch_files(repository, tag, rest)
    record = None
    if WHEEL_RECORD in missing and here is None:  # else built here: publish compares them
        record = read_back
        _check_against_index(ctx, record, where)  # before anything is written
    for name, data in missing.items():
        atomic_write_bytes(ctx.bundles / name, data)
    if record is not None:
        ctx.manifest.put(record)
    restored = sorted(missing)
    if restored:
        ctx.log(f"restored from {repository}:{tag}: {', '.join(restored)}")
    return restored


def _plain(name: object) -> bool:
    """A file name of its own: not a path (no `/` or `\\`, so never absolute), not `.` or `..`, no NUL, not empty."""
    return isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\\0")


def _accounted(record: WheelRecord | None, dev: bool) -> set[str]:
    """The release files a release's record accounts for, as the publish stage pushes them: the record itself, the
    bundle and attestations of each artifact it names (names.signed_names), and a dev build's inputs digest."""
    names = {WHEEL_RECORD, *([BUILD_INPUTS] if dev else [])}
    return names | set(signed_names(sorted(record.artifacts))) if record is not None else names


def _refuse_unplain(names, where: str) -> None:
    for name in names:
        if not _plain(name):
            raise ReleaseError(
                f"refusing the release file {name!r} of {where}: not a plain file name; "
                f"remove it from {where} or republish"
            )


def _refuse_unaccounted(names: list[str], accounted: set[str], where: str) -> None:
    for name in names:
        if name not in accounted:
            raise ReleaseError(
                f"refusing the release file {name!r} of {where}: not the wheel record, nor a bundle or attestation "
                f"of an artifact it names; remove it from {where} or republish"
            )


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
    other = ReleaseContext.create(source.release, ctx.catalog, ctx.release_target.name)
    repository, tag = source.published.rsplit(":", 1)
    _refuse_unplain([WHEEL_RECORD, *sorted(source.signed, key=repr)], source.published)
    record = WheelRecord.from_json(json.loads(release_files.fetch(repository, tag, WHEEL_RECORD)))
    _refuse_unaccounted(sorted(source.signed), _accounted(record, other.version.dev), source.published)
    files = release_files.fetch_files(repository, tag, sorted(source.signed))
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
