"""Which Debian packages of an image have a newer version in its distro's suites, and which CVEs that version fixes.

The installed packages come from the image's CycloneDX SBOM as syft writes it
(`pkg:deb/debian/<name>@<version>?arch=<arch>&upstream=<source>[@<source version>]`), the versions out there from
the suites' signed indexes (clients/debian_archive), and the CVEs from the newer version's own Debian changelog:
Debian's security uploads name the CVEs they fix in their entry, so the entries after the installed version up to the
newer one are what the update brings. A package whose changelog cannot be read keeps `cves=None` and says why; the
rest of the audit goes on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import unquote

from debian.changelog import Changelog
from debian.debian_support import Version

from ac_release.clients.debian_archive import BinaryPackage, DebianArchive, NoChangelog, NotServed
from ac_release.core.errors import ReleaseError
from ac_release.model.debian import Suite, suites

CVE = re.compile(r"CVE-(\d{4})-(\d{4,})")
_PURL = "pkg:deb/debian/"


@dataclass(frozen=True)
class Installed:
    """A Debian package installed in an image, as its SBOM names it."""

    name: str
    version: str
    arch: str
    source: str
    source_version: str  # the version of the source package: the binary's own unless the purl's upstream names one

    def to_json(self) -> dict:
        return {
            "package": self.name,
            "version": self.version,
            "arch": self.arch,
            "source": self.source,
            "source_version": self.source_version,
        }


@dataclass(frozen=True)
class Pending:
    """An installed package with a newer version in a suite. `cves`: what the newer version fixes (None until read,
    or when its changelog could not be read: `reason` says why)."""

    installed: Installed
    available: BinaryPackage
    cves: tuple[str, ...] | None = None
    reason: str | None = None

    def to_json(self) -> dict:
        return {
            "package": self.installed.name,
            "arch": self.installed.arch,
            "installed": self.installed.version,
            "available": self.available.version,
            "suite": self.available.suite.name,
            "source": self.available.source,
            "source_version": self.available.source_version,
            "cves": None if self.cves is None else list(self.cves),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ArchiveView:
    """The newest entry of each package in each suite of a distro, for one Debian architecture, in the suites'
    order (the point release, its updates, its security updates)."""

    arch: str
    indexes: Mapping[Suite, Mapping[str, BinaryPackage]]

    @classmethod
    def read(cls, archive: DebianArchive, distro: str, arch: str) -> ArchiveView:
        return cls(arch, {suite: archive.packages(suite, arch) for suite in suites(distro)})

    def newest(self, name: str) -> BinaryPackage | None:
        """The highest version of `name` among the suites; on a tie, the earlier suite's."""
        found: BinaryPackage | None = None
        for index in self.indexes.values():
            candidate = index.get(name)
            if candidate is not None and (found is None or Version(candidate.version) > Version(found.version)):
                found = candidate
        return found


def installed_from_sbom(cyclonedx: dict) -> list[Installed]:
    """The Debian packages of a CycloneDX SBOM (components with a `pkg:deb/debian/` purl), by name and arch."""
    found: dict[tuple[str, str], Installed] = {}
    for component in cyclonedx.get("components", []):
        purl = component.get("purl", "") if isinstance(component, dict) else ""
        if purl.startswith(_PURL):
            installed = _from_purl(purl)
            found[installed.name, installed.arch] = installed
    return [found[key] for key in sorted(found)]


def pending(installed: Iterable[Installed], view: ArchiveView) -> list[Pending]:
    """The installed packages that a suite of the view has in a greater version (Debian's version order)."""
    result = []
    for package in installed:
        if package.arch not in (view.arch, "all", ""):
            raise ReleaseError(
                f"{package.name} is installed for {package.arch}, the archive is read for {view.arch}: audit each "
                "platform's SBOM against its own architecture"
            )
        newest = view.newest(package.name)
        if newest is not None and Version(newest.version) > Version(package.version):
            result.append(Pending(package, newest))
    return result


def fixed_cves(changelog_text: str, installed_version: str, new_version: str) -> tuple[str, ...]:
    """The CVE ids named by the changelog's entries after `installed_version` up to and including `new_version`
    (source versions: the changelog's), each once, in the order of year and number."""
    installed, new = Version(installed_version), Version(new_version)
    found: set[tuple[int, int]] = set()
    for block in Changelog(changelog_text, strict=False):
        if block.version is not None and installed < block.version <= new:
            found |= {(int(year), int(number)) for year, number in CVE.findall("\n".join(block.changes()))}
    return tuple(f"CVE-{year}-{number:04d}" for year, number in sorted(found))


def with_fixed_cves(
    pending: Sequence[Pending], archive: DebianArchive, elsewhere: Sequence[ArchiveView] = ()
) -> list[Pending]:
    """`pending`, each with the CVEs its newer version fixes. The packages of one source version share one changelog
    (libssl1.1 and openssl): it is read once, from the first of them whose .deb has it. A source version's changelog
    is the same on every architecture, so where this one's .deb is not served (bullseye-security's arm64 pool
    answered 404 while its index listed it), the same packages of the views `elsewhere` (another architecture's) are
    read instead."""
    by_source: dict[tuple[str, str], list[BinaryPackage]] = {}
    for item in pending:
        by_source.setdefault((item.available.source, item.available.source_version), []).append(item.available)
    for key, packages in by_source.items():
        for view in elsewhere:
            for package in list(packages):
                other = view.newest(package.name)
                if other is not None and (other.source, other.source_version) == key and other not in packages:
                    packages.append(other)
    changelogs = {key: _changelog(packages, archive) for key, packages in by_source.items()}
    result = []
    for item in pending:
        text, reason = changelogs[item.available.source, item.available.source_version]
        if text is None:
            result.append(replace(item, cves=None, reason=reason))
        else:
            cves = fixed_cves(text, item.installed.source_version, item.available.source_version)
            result.append(replace(item, cves=cves, reason=None))
    return result


def _changelog(packages: Sequence[BinaryPackage], archive: DebianArchive) -> tuple[str | None, str | None]:
    """(the source version's changelog, None), or (None, why none of its packages gave one)."""
    reasons = []
    for package in packages:
        try:
            text = archive.changelog(package)
        except (NoChangelog, NotServed) as exc:
            reasons.append(str(exc))
            continue
        versions = {str(block.version) for block in Changelog(text, strict=False)}
        if package.source_version in versions:
            return text, None
        reasons.append(f"{package.name} {package.version}: its changelog has no entry for {package.source_version}")
    return None, reasons[0]


def _from_purl(purl: str) -> Installed:
    path, _, query = purl.removeprefix(_PURL).partition("#")[0].partition("?")
    name, _, version = (unquote(part) for part in path.partition("@"))
    if not name or not version:
        raise ReleaseError(f"SBOM purl {purl!r} has no package name or version: scan the image again with syft")
    qualifiers = dict(
        (unquote(key), unquote(value)) for key, _, value in (pair.partition("=") for pair in query.split("&") if pair)
    )
    source, _, source_version = qualifiers.get("upstream", name).partition("@")
    return Installed(name, version, qualifiers.get("arch", ""), source or name, source_version or version)
