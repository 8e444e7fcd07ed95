"""The typed context every stage receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from rich.console import Console

from ac_release.clients.docker import Docker
from ac_release.core.errors import ReleaseError
from ac_release.core.progress import LiveView, console
from ac_release.model.catalog import Catalog, catalog_of
from ac_release.model.config import Settings, Signer, Target, docker_command
from ac_release.model.flavours import Flavour, Platform
from ac_release.model.line import ReleaseLine
from ac_release.model.manifest import Manifest, R
from ac_release.model.names import artifact_names, release_files
from ac_release.model.products import DEFAULT_PRODUCT, Product
from ac_release.model.records import Record
from ac_release.model.version import ACVersion, ProductVersion
from ac_release.world.view import World


@dataclass
class ReleaseContext:
    """`target` is where this build goes: for a dev build (`2.2.4-2-dev`, a nightly) the target's dev index and dev
    registries, chosen here and nowhere else; `release_target` is the target as configured, whose registries hold
    the releases (an upgrade test starts from the newest of them)."""

    version: ACVersion | ProductVersion
    line: ReleaseLine  # as the product version installs it (Product.line_of)
    catalog: Catalog  # what is declared, read once for the command: settings, products, lines, changelogs, flavours
    target: Target
    console: Console = field(default_factory=console)
    releasing: bool = False  # `invoke release`: preflight also demands a clean tree, a changelog entry, ...
    force_unsupported: bool = False  # `--force-unsupported`: release a line past its support (wheel/support.toml)
    view: LiveView = field(default_factory=LiveView)  # off unless run_stages shows it
    flavour: str | None = None  # one image flavour only (a workflow's images job); None: every flavour of the line
    platform: str | None = None  # one platform only (`linux/arm64`: a workflow's images job); None: every one
    release_target: Target | None = None  # None: `target`

    def __post_init__(self) -> None:
        if self.release_target is None:
            self.release_target = self.target

    @classmethod
    def create(cls, version: str, declared: Catalog | Settings, target: str | None = None, **kwargs) -> ReleaseContext:
        """The context of `version` on `target`, from the command's catalog (settings alone: their catalog is
        read here)."""
        catalog = declared if isinstance(declared, Catalog) else catalog_of(declared)
        parsed = catalog.parse_version(version)
        product = catalog.product(parsed.product)
        line = product.line_of(catalog.line(parsed), parsed)
        build_target, configured = targets_of(catalog, parsed, target)
        ctx = cls(version=parsed, line=line, catalog=catalog, target=build_target, release_target=configured, **kwargs)
        if ctx.flavour is not None:
            flavours(ctx)  # an unknown flavour is refused here, before anything runs
        if ctx.platform is not None:
            platforms(ctx)  # so is a platform the release does not build
        return ctx

    @property
    def settings(self) -> Settings:
        return self.catalog.settings

    @property
    def product(self) -> Product:
        return self.catalog.product(self.version.product)

    def release_target_of(self, product: Product) -> Target:
        """The release target as another product sees it: its repositories beside this product's."""
        return _for_product(self.catalog, self.settings.target(self.release_target.name), product)

    @property
    def artifact_names(self) -> list[str]:
        return artifact_names(self.version, self.product.meta_project)

    @property
    def release_files(self) -> list[str]:
        return release_files(self.version, self.product.meta_project)

    @property
    def signer(self) -> Signer:
        """Who signs this build on its target: a nightly's signer is the nightly workflow, anything else the release
        workflow's (the local target: its one identity)."""
        return self.target.signing.signer(nightly=bool(self.version.nightly))

    @property
    def dist(self) -> Path:
        return self.settings.dist_dir / self.version.dist_name

    @property
    def bundles(self) -> Path:
        """Where the Sigstore bundles of this target's signer live: one directory per target."""
        return self.dist / "sigstore" / self.target.name

    @property
    def images_dir(self) -> Path:
        return self.settings.root / "images"

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest.load(self.dist, str(self.version))

    def record(self, kind: type[R]) -> R | None:
        """This target's record of a stage (the wheel stage's is shared by every target)."""
        return self.manifest.get(kind, self.target.name)

    def save(self, record: Record) -> None:
        self.manifest.put(record, self.target.name)

    @cached_property
    def docker(self) -> Docker:
        docker = Docker(docker_command(self.settings.docker), on_write=self.world.engine_wrote)
        docker.ensure_engine()
        return docker

    @cached_property
    def world(self) -> World:
        """What is out there, as this run has asked it (world/view.py)."""
        return World(self.target, self.settings.root, lambda: self.docker, self.log)

    @property
    def cache(self) -> Path:
        return self.settings.cache_dir

    def log(self, message: str) -> None:
        self.console.print(message, soft_wrap=True)  # a log line is never wrapped or cut: digests print whole


def targets_of(catalog: Catalog, version: ACVersion | ProductVersion, target: str | None) -> tuple[Target, Target]:
    """Where a build of `version` goes on `target` (a dev build: its dev locations), and where its releases are."""
    configured = _for_product(catalog, catalog.settings.target(target), catalog.product(version.product))
    return (configured.for_dev_build() if version.dev else configured), configured


def _for_product(catalog: Catalog, target: Target, product: Product) -> Target:
    """A target as configured names AC's image repositories; a product's are beside them (Target.for_repository)."""
    return target.for_repository(catalog.product(DEFAULT_PRODUCT).repository, product.repository)


def ensure_local_services(ctx: ReleaseContext) -> None:
    """The local target's services are started (idempotent, once per run) before a stage talks to them. A target's
    standing services (staging) are only reached: a release never starts them, nor makes their keys or CA."""
    ctx.world.ensure_services()


def services_running(ctx: ReleaseContext) -> bool:
    """Can the target's remote state be read without starting anything? Always for targets with services of their
    own elsewhere; for `local`, only while the pipeline's services run (the dry run never starts them)."""
    return ctx.world.services_running()


def flavours(ctx: ReleaseContext) -> list[Flavour]:
    """The line's flavours, or the one the context is restricted to (`--flavour`)."""
    every = [f.with_tagging(ctx.product.tagging) for f in ctx.catalog.flavours_of(ctx.line.airflow)]
    if ctx.flavour is None:
        return every
    chosen = [flavour for flavour in every if flavour.name == ctx.flavour]
    if not chosen:
        names = ", ".join(flavour.name for flavour in every)
        raise ReleaseError(f"no flavour {ctx.flavour!r} for Airflow {ctx.line.airflow}: one of {names}")
    return chosen


def release_platforms(ctx: ReleaseContext) -> tuple[Platform, ...]:
    """Every platform of the release: the line's, narrowed by the target; the first is preferred (its images get the
    local references without an architecture)."""
    return ctx.catalog.release_platforms(ctx.line.airflow, ctx.release_target.name)


def platforms(ctx: ReleaseContext) -> tuple[Platform, ...]:
    """The release's platforms, or the one the context is restricted to (`--platform`)."""
    every = release_platforms(ctx)
    if ctx.platform is None:
        return every
    chosen = tuple(platform for platform in every if str(platform) == ctx.platform)
    if not chosen:
        names = ", ".join(map(str, every))
        raise ReleaseError(
            f"{ctx.version} on {ctx.target.name} is not built for {ctx.platform!r}: name one of {names} (--platform)"
        )
    return chosen
