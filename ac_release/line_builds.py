"""Where a line build already is: the Airflow wheel and sdist (`2.2.4+astro.1`) that several product versions
install (AC 2.2.4-1, Runtime 4.2.0, 4.2.1). The shared query of the wheel and sign stages, so that a line build is
built and signed once, by the first product version that makes it, and its bytes are taken from there after.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ac_release.context import ReleaseContext
from ac_release.errors import ReleaseError
from ac_release.fsutil import sha256_file
from ac_release.manifest import FILENAME, Manifest
from ac_release.names import line_build_names
from ac_release.records import WheelRecord


@dataclass(frozen=True)
class LineBuild:
    release: str  # the product version whose dist/ holds it (`2.2.4-1`)
    dist: Path
    sha256: dict[str, str]  # file name -> sha256 its wheel record holds

    def bundles(self, target: str) -> Path:
        """Where its signer's bundles and attestations are (ReleaseContext.bundles of that release)."""
        return self.dist / "sigstore" / target


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
