"""`invoke audit`: the security status of what the fleet has shipped, read from real sources.

For every line supported today (wheel/support.toml) and every product built on it, the newest release on the
target's registry: for each flavour and platform of it, the Debian packages its published SBOM lists (the CycloneDX
attestation, verified with cosign as `invoke verify` does) compared with the distro's current suites in Debian's
signed archive, and for each package with a newer version there, the CVEs that version's own Debian changelog names
(supply_chain/debian_updates.py). Also the pins of the release's lock whose exact file PyPI now marks as yanked.

A terminal table (nothing cut: references and digests print whole) and, with `--json`, a JSON document for machines.
The exit status says whether any supported release has pending security updates (PENDING_EXIT), or failed (1).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from invoke import Exit

from ac_release.building.lock import files_path, read_files
from ac_release.clients.debian_archive import DebianArchive
from ac_release.clients.pypi_simple import yanked_files
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_bytes
from ac_release.model.catalog import Catalog, load_catalog
from ac_release.model.debian import debian_arch
from ac_release.model.products import Product
from ac_release.model.support import Support
from ac_release.model.version import ACVersion, ProductVersion
from ac_release.supply_chain import cosign
from ac_release.supply_chain.debian_updates import (
    ArchiveView,
    Pending,
    installed_from_sbom,
    pending,
    with_fixed_cves,
)
from ac_release.world.context import ReleaseContext
from ac_release.world.released_images import release_tag_version, released_images

PENDING_EXIT = 3  # not an error: the audit ran, and a supported release has pending security updates


@dataclass(frozen=True)
class YankedPin:
    """A pin of a release's lock whose file for `platform` the index marks as yanked."""

    name: str
    version: str
    platform: str
    filename: str
    reason: str

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "platform": self.platform,
            "file": self.filename,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ImageAudit:
    """One platform's image of a flavour of a release, and its packages with newer versions in the archive."""

    flavour: str
    platform: str
    reference: str  # <repository>@<the platform's manifest digest>
    updates: tuple[Pending, ...]

    @property
    def security(self) -> tuple[Pending, ...]:
        """The updates that are security updates: from the distro's security suite, or naming a CVE they fix."""
        return tuple(item for item in self.updates if item.available.suite.security or item.cves)

    def to_json(self) -> dict:
        return {
            "flavour": self.flavour,
            "platform": self.platform,
            "image": self.reference,
            "security_updates": len(self.security),
            "updates": [item.to_json() for item in self.updates],
        }


@dataclass(frozen=True)
class ReleaseAudit:
    """The newest release of one product on one supported line (`version` None: nothing released there yet)."""

    product: Product
    line: str
    support: Support
    version: ACVersion | ProductVersion | None
    images: tuple[ImageAudit, ...] = ()
    yanked: tuple[YankedPin, ...] = ()
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.product.title} {self.version.image_tag if self.version else self.line}"

    @property
    def pending_security(self) -> bool:
        return any(image.security for image in self.images)

    @property
    def cves(self) -> tuple[str, ...]:
        found = {cve for image in self.images for item in image.updates for cve in item.cves or ()}
        return tuple(sorted(found, key=lambda cve: tuple(int(part) for part in cve.split("-")[1:])))

    def to_json(self) -> dict:
        return {
            "product": self.product.name,
            "line": self.line,
            "lts": self.support.lts,
            "supported_until": self.support.until.isoformat(),
            "version": str(self.version) if self.version else None,
            "pending_security_updates": self.pending_security,
            "cves": list(self.cves),
            "images": [image.to_json() for image in self.images],
            "yanked_pins": [pin.to_json() for pin in self.yanked],
            "note": self.note or None,
        }


@dataclass
class Sources:
    """Where the audit reads: Debian's archive (one view per distro and architecture, read once per run) and the
    yanked files of PyPI's projects (one request per project per run)."""

    archive: DebianArchive
    yanked_of: Callable[[str], dict[str, str]] = yanked_files
    _views: dict[tuple[str, str], ArchiveView] = field(default_factory=dict)
    _yanked: dict[str, dict[str, str]] = field(default_factory=dict)

    def view(self, distro: str, arch: str) -> ArchiveView:
        if (distro, arch) not in self._views:
            self._views[distro, arch] = ArchiveView.read(self.archive, distro, arch)
        return self._views[distro, arch]

    def yanked(self, projects: set[str]) -> dict[str, dict[str, str]]:
        missing = sorted(projects - set(self._yanked))
        with ThreadPoolExecutor(max_workers=8) as pool:
            for project, files in zip(missing, pool.map(self.yanked_of, missing), strict=True):
                self._yanked[project] = files
        return {project: self._yanked[project] for project in projects}


def newest_releases(catalog: Catalog, target: str | None, today: dt.date) -> list[ReleaseAudit | ReleaseContext]:
    """For each line supported on `today` and each product with versions on it: the context of its newest release
    on the target's registry, or an audit that says none is released yet."""
    found: list[ReleaseAudit | ReleaseContext] = []
    for line in catalog.supported_lines(today):
        support = catalog.support_of(line)
        for product in catalog.products.values():
            declared = _declared_versions(catalog, product, line)
            if not declared:
                continue
            ctx = ReleaseContext.create(declared[0], catalog, target)
            repository = ctx.release_target.registries[0]
            released = [
                version
                for tag in ctx.world.tags(repository)
                if (version := release_tag_version(tag, product)) and version.airflow_version == line
            ]
            if not released:
                found.append(ReleaseAudit(product, line, support, None, note=f"nothing released on {repository}"))
            else:
                found.append(ReleaseContext.create(str(max(released)), catalog, target))
    return found


def _declared_versions(catalog: Catalog, product: Product, line: str) -> list[str]:
    """The product's versions on the line, as the tree declares them (AC: the line's changelog; others: [versions])."""
    if not product.prefix:
        return catalog.builds(line) if line in catalog.changelogs else []
    return [
        f"{product.prefix}{number}"
        for number in product.versions
        if catalog.parse_version(f"{product.prefix}{number}").airflow_version == line
    ]


def audit_release(ctx: ReleaseContext, sources: Sources) -> ReleaseAudit:
    """The Debian packages of every flavour and platform image of the release (each platform's base variant: the
    onbuild variant adds triggers, no packages), and the yanked pins of its lock."""
    trust, images = cosign.trust_of(ctx), []
    for image in released_images(ctx):
        if image.variant != "base":
            continue
        for platform, digest in image.platforms.items():
            reference = cosign.ImageReference.of(ctx.target.registry(image.repository), digest)
            (statement, *_) = cosign.verify_attestation(trust, reference, "cyclonedx", ctx.signer)
            installed = installed_from_sbom(statement["predicate"])
            arch = debian_arch(platform)
            view = sources.view(image.flavour.distro, arch)
            others = [sources.view(image.flavour.distro, a) for a in ("amd64", "arm64") if a != arch]
            updates = with_fixed_cves(pending(installed, view), sources.archive, others)
            images.append(ImageAudit(image.flavour.name, platform, f"{image.repository}@{digest}", tuple(updates)))
    support = ctx.catalog.support_of(ctx.line.airflow)
    return ReleaseAudit(ctx.product, ctx.line.airflow, support, ctx.version, tuple(images), yanked_pins(ctx, sources))


def yanked_pins(ctx: ReleaseContext, sources: Sources) -> tuple[YankedPin, ...]:
    """The pins of the release's lock whose file, on a platform of its images, the index marks as yanked."""
    listing = files_path(ctx.line.lock_file)
    if not listing.is_file():
        raise ReleaseError(f"{listing} is missing: run `invoke lock {ctx.line.lock_name or ctx.line.airflow}`")
    files = read_files(listing.read_text(encoding="utf-8"))
    yanked = sources.yanked({name for pins in files.values() for name in pins})
    found = []
    for platform, pins in sorted(files.items()):
        for name, file in sorted(pins.items()):
            if file.filename in yanked[name]:
                found.append(YankedPin(name, file.version, platform, file.filename, yanked[name][file.filename]))
    return tuple(found)


def audit(target: str | None, json_path: str | None, today: dt.date | None = None) -> None:
    """`invoke audit`: print the audit, write it as JSON when asked, and exit PENDING_EXIT when a supported release
    has pending security updates."""
    catalog = load_catalog()
    today = today or dt.datetime.now(dt.UTC).date()
    sources = Sources(DebianArchive(catalog.settings.cache_dir / "debian"))
    audits = [
        item if isinstance(item, ReleaseAudit) else audit_release(item, sources)
        for item in newest_releases(catalog, target, today)
    ]
    if json_path:
        document = {"date": today.isoformat(), "releases": [item.to_json() for item in audits]}
        atomic_write_bytes(Path(json_path), (json.dumps(document, indent=2) + "\n").encode())
    print_audit(audits)
    behind = [item.name for item in audits if item.pending_security]
    if behind:
        raise Exit(f"pending security updates: {', '.join(behind)}", code=PENDING_EXIT)


def print_audit(audits: list[ReleaseAudit]) -> None:
    """Each release: its summary line, then each image's security updates (package, versions, suite, CVEs), then
    the yanked pins. Plain lines: a CI log shows them whole."""
    for item in audits:
        support = item.support.summary
        if item.version is None:
            print(f"{item.name} ({support}): {item.note}")
            continue
        count = sum(len(image.security) for image in item.images)
        state = f"{count} pending security updates, {len(item.cves)} CVEs" if count else "current"
        print(f"{item.name} (line {item.line}, {support}): {state}")
        for image in item.images:
            print(
                f"  {image.flavour} {image.platform} {image.reference}: {len(image.security) or 'no'} security updates"
            )
            for update in image.security:
                cves = " ".join(update.cves) if update.cves else (update.reason or "no CVE named")
                print(
                    f"    {update.installed.name} {update.installed.version} -> {update.available.version} "
                    f"({update.available.suite.name}): {cves}"
                )
        for pin in item.yanked:
            reason = f": {pin.reason}" if pin.reason else ""
            print(f"  yanked on PyPI: {pin.name}=={pin.version} ({pin.platform} {pin.filename}){reason}")
