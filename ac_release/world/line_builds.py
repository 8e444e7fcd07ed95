"""Where a line build already is: the Airflow wheel and sdist (`2.2.4+astro.1`) that several product versions
install (AC 2.2.4-1, Runtime 4.2.0, 4.2.1). The shared query of the wheel and sign stages, so that a line build is
built and signed once, by the first product version that makes it, and its bytes are taken from there after.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ac_release.clients import oci_release_files as release_files
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.catalog import Declared
from ac_release.model.manifest import FILENAME, Manifest
from ac_release.model.names import WHEEL_RECORD, line_build_names, signed_names
from ac_release.model.records import WheelRecord
from ac_release.world.context import ReleaseContext, services_running, targets_of
from ac_release.world.index_state import index_state


@dataclass(frozen=True)
class LineBuild:
    release: str  # the product version whose dist/ holds it (`2.2.4-1`), or will once read back
    dist: Path
    sha256: dict[str, str]  # file name -> sha256 its wheel record holds
    # Where it is published, when this machine's dist/ does not hold it yet: `<registry>/…/release-files:<version>`
    # (ac_release/pipeline/restore_dist.py reads it back into `dist` before the wheel and sign stages run)
    published: str = ""
    signed: frozenset[str] = frozenset()  # its bundles and attestations there

    def bundles(self, target: str) -> Path:
        """Where its signer's bundles and attestations are (ReleaseContext.bundles of that release)."""
        return self.dist / "sigstore" / target

    def holds(self, signed: str, target: str) -> bool:
        """Does it carry this bundle or attestation (in its dist/, or published with it)?"""
        return signed in self.signed if self.published else (self.bundles(target) / signed).is_file()

    @property
    def where(self) -> str:
        return f"{self.release}, read back from {self.published}" if self.published else self.release


def line_build_source(ctx: ReleaseContext) -> LineBuild | None:
    """Where the wheel and sign stages take this version's line build from rather than make it: another release in
    dist/ (built_elsewhere), else, when dist/ does not hold it, the release that published it on the target
    (published_line_build). One query for the dry run and the run: the run reads a published one back first."""
    if found := built_elsewhere(ctx):
        return found
    names = line_build_names(ctx.version)
    if all((ctx.dist / name).is_file() for name in names) or not services_running(ctx):
        return None
    others = ctx.catalog.same_line_build(str(ctx.version))[1:]
    if not others:
        return None  # no other version is declared on this line build
    # A published line build is on the index first: the registries are asked only when the index serves it.
    on_index = index_state(ctx)
    return published_line_build(ctx, others) if all(name in on_index for name in names) else None


def published_line_build(ctx: ReleaseContext, others: list[str]) -> LineBuild | None:
    """The first of `others` (the other versions declared on this line build, same_line_build) whose release files
    on the target hold a wheel record naming the line build, and the line build's bundles and attestations. Reads,
    never writes; asked while the target's services run (line_build_source), which are every version's there. Each
    version's registry is the one its context would name, from the catalog."""
    names = line_build_names(ctx.version)
    signed = signed_names(names)
    for other in others:
        version = ctx.catalog.parse_version(other)
        target, _ = targets_of(ctx.catalog, version, ctx.release_target.name)
        if not target.registries:
            continue
        repository = release_files.location(target.registries[0])
        listed = ctx.world.release_files(repository, other) or {}
        if any(name not in listed for name in (WHEEL_RECORD, *signed)):
            continue
        record = WheelRecord.from_json(json.loads(release_files.fetch(repository, other, WHEEL_RECORD)))
        if any(record.sha256(name) is None for name in names):
            continue
        return LineBuild(
            other,
            ctx.settings.dist_dir / version.dist_name,  # ReleaseContext.dist of that version
            {name: record.sha256(name) for name in names},
            published=f"{repository}:{other}",
            signed=frozenset(signed),
        )
    return None


def built_elsewhere(ctx: ReleaseContext) -> LineBuild | None:
    """Another release in dist/ whose wheel record holds this version's line build, with those very bytes still in
    its dist/ directory; the oldest-named first, so every product version finds the same one."""
    names = line_build_names(ctx.version)
    root = ctx.settings.dist_dir
    for manifest_path in sorted(root.glob(f"*/{FILENAME}")) if root.is_dir() else ():
        dist = manifest_path.parent
        if dist == ctx.dist:
            continue
        try:
            record = Manifest.load(dist, dist.name).get(WheelRecord)
        except ReleaseError:  # another release's manifest is that release's business: a broken one is not a source
            continue
        if record is None or any(record.sha256(name) is None for name in names):
            continue
        if all((dist / name).is_file() and sha256_file(dist / name) == record.sha256(name) for name in names):
            return LineBuild(dist.name, dist, {name: record.sha256(name) for name in names})
    return None


def planned_sha256(ctx: ReleaseContext, name: str, recorded: str | None, source: LineBuild | None) -> str | None:
    """The sha256 the wheel stage gives `name`: its record's, or, before it ran, that of the line build it will
    reuse (the wheel stage's own decision: the file is not in this release's dist/ and `source` holds it). So the
    dry run plans the later stages as the run then does them."""
    if recorded or source is None or (ctx.dist / name).exists():
        return recorded
    return source.sha256.get(name)


def same_line_build(declared: Declared | Path, version: str) -> list[str]:
    """Declared.same_line_build, of a catalog or of the tree under a root (noxfile.py: no release.toml needed)."""
    return (declared if isinstance(declared, Declared) else Declared.under(declared)).same_line_build(version)
