"""What the tree declares, read once per command: the settings (release.toml), the products (products/*.toml), the
lines (wheel/<airflow>/line.toml), their changelogs (changelog/*.md) and the flavours (images/matrix.toml).

`load_catalog` reads release.toml and every product; a line, a changelog and the matrix are read the first time they
are asked for, and never again: a command that never asks about Airflow 2.3.0 is not refused for its line's data.
The catalog answers with the refusals of the loaders it calls (load_product, load_line, changelog.parse, ...).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from ac_release.core.errors import ReleaseError
from ac_release.model import changelog
from ac_release.model.changelog import Entry
from ac_release.model.config import Settings, load_settings
from ac_release.model.flavours import (
    MATRIX_FILE,
    Flavour,
    Platform,
    distro_build_packages,
    line_flavours,
    line_platforms,
    lines_of,
    no_build_packages,
    read_matrix,
    release_platforms,
)
from ac_release.model.line import LINE_FILE, ReleaseLine, known_lines, no_line, read_line
from ac_release.model.products import DEFAULT_PRODUCT, PRODUCTS_DIR, Product, load_product, no_product, version_of
from ac_release.model.support import Support, no_entry, read_support
from ac_release.model.version import ACVersion, ProductVersion

CHANGELOG_DIR = "changelog"
IMAGES_DIR = "images"
WHEEL_DIR = "wheel"

K = TypeVar("K")
V = TypeVar("V")


class _Once:
    """A value computed on first use, once (a refusal too: asked again, it is raised again, nothing is re-read)."""

    def __init__(self, compute: Callable[[], object]):
        self._compute, self._lock, self._outcome = compute, threading.Lock(), None

    def __call__(self):
        with self._lock:  # the pipeline's work ahead asks from another thread
            if self._outcome is None:
                try:
                    self._outcome = (self._compute(), None)
                except ReleaseError as exc:
                    self._outcome = (None, exc)
        value, refusal = self._outcome
        if refusal is not None:
            raise refusal
        return value


class _Lazy(Mapping[K, V]):
    """A read-only mapping whose keys and each value are computed on first use, once."""

    def __init__(self, keys: Callable[[], Iterable[K]], load: Callable[[K], V]):
        self._keys = _Once(lambda: tuple(keys()))
        self._values: dict[K, _Once] = {}
        self._load, self._lock = load, threading.Lock()

    def __getitem__(self, key: K) -> V:
        if key not in self._keys():
            raise KeyError(key)
        with self._lock:
            once = self._values.setdefault(key, _Once(lambda: self._load(key)))
        return once()

    def __contains__(self, key: object) -> bool:  # Mapping's would load the value
        return key in self._keys()

    def __iter__(self) -> Iterator[K]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def __repr__(self) -> str:
        return f"<{len(self)} declared, read when asked>"


@dataclass(frozen=True, eq=False)  # compared, two catalogs would read all they hold: one is only itself
class Declared:
    """What the tree under `root` declares. Every collection is read-only; lines, changelogs and flavours are read
    when first asked for."""

    root: Path
    products: Mapping[str, Product]  # by name (products/<name>.toml)
    lines: Mapping[str, ReleaseLine]  # by Airflow version, as declared (no product's pins)
    changelogs: Mapping[str, tuple[Entry, ...]]  # by changelog name (`2.2.4`, `runtime-4.2`), newest first
    flavours: Mapping[str, tuple[Flavour, ...]]  # by Airflow version, AC's tagging (flavours() gives the product's)
    distros: Mapping[str, tuple[str, ...]]  # the build packages of each distro of the matrix
    support: Mapping[str, Support]  # by Airflow version: wheel/support.toml, read when first asked for

    @classmethod
    def under(cls, root: Path) -> Declared:
        return cls(**_declared(root))

    @property
    def wheel_dir(self) -> Path:
        return self.root / WHEEL_DIR

    def parse_version(self, text: str) -> ACVersion | ProductVersion:
        """products.parse_version, among the products read."""
        return version_of(text, self.products.values())

    def product(self, name: str) -> Product:
        if name not in self.products:
            raise no_product(name)
        return self.products[name]

    def line(self, version: ACVersion | ProductVersion) -> ReleaseLine:
        """The line the version is built on, as declared (Product.line_of gives it with a product version's pins)."""
        if version.airflow_version not in self.lines:
            raise no_line(self.wheel_dir, version)
        return self.lines[version.airflow_version]

    def support_of(self, airflow: str) -> Support:
        """The line's support entry (refused when wheel/support.toml has none)."""
        if airflow not in self.support:
            raise no_entry(self.wheel_dir, airflow)
        return self.support[airflow]

    def supported_lines(self, day: dt.date) -> list[str]:
        """Every declared line supported on `day`: what scheduled work covers."""
        return [airflow for airflow in self.lines if self.support_of(airflow).supported_on(day)]

    def changelog(self, version: ACVersion | ProductVersion) -> tuple[Entry, ...]:
        """The entries of the changelog the version belongs in."""
        return self.entries(version.changelog_name)

    def entries(self, name: str) -> tuple[Entry, ...]:
        """The entries of changelog/<name>.md, newest first."""
        if name not in self.changelogs:
            _parse_changelog(self.root, self.products, name)  # refuses as changelog.parse does: no such file
        return self.changelogs[name]

    def release_entry(self, version: ACVersion | ProductVersion) -> Entry:
        """changelog.release_entry: the entry of the build being released, present and dated."""
        return changelog.release_entry_in(self.changelog(version), version)

    def dev_build_entry(self, version: ACVersion) -> Entry | None:
        """changelog.dev_build_entry: the entry of a dev build's build number, when there is one."""
        return changelog.dev_build_entry_in(self.changelog(version), version)

    def builds(self, airflow: str) -> list[str]:
        """changelog.builds: every AC build of a line, newest first."""
        return changelog.builds_in(self.entries(airflow), airflow)

    def next_build(self, airflow: str) -> int:
        """changelog.next_build: the build number the line's current tree makes."""
        return changelog.next_build_in(self.entries(airflow), airflow)

    def flavours_of(self, airflow: str) -> tuple[Flavour, ...]:
        """flavours.flavours_of: a line's flavours, the first its default."""
        return line_flavours(self.flavours, airflow)

    def platforms_of(self, airflow: str) -> tuple[Platform, ...]:
        """The platforms of a line's images (images/matrix.toml `platforms`), the first preferred."""
        return line_platforms(self.flavours, airflow)

    def build_packages(self, distro: str) -> tuple[str, ...]:
        """flavours.build_packages: the compilers and -dev headers of a distro."""
        if distro not in self.distros:
            raise no_build_packages(distro)
        return self.distros[distro]

    def same_line_build(self, version: str) -> list[str]:
        """`version`, then every other version declared that installs the same Airflow line build: AC's builds in the
        line's changelog and each product's [versions] (`2.2.4-1` -> runtime-4.2.0, runtime-4.2.1)."""
        wanted = self.parse_version(version)
        line = wanted.airflow_version  # AC's changelog of the line: changelog/<airflow>.md
        present = (self.root / CHANGELOG_DIR / f"{line}.md").is_file()
        names = changelog.builds_in(self.entries(line), line) if present else []
        names += [f"{product.prefix}{number}" for product in self.products.values() for number in product.versions]
        others = {
            other
            for other in names
            if other != str(wanted) and self.parse_version(other).wheel_version == wanted.wheel_version
        }
        return [str(wanted), *sorted(others)]


@dataclass(frozen=True, eq=False)
class Catalog(Declared):
    """The settings, and what the tree under their root declares: one per command."""

    settings: Settings

    def release_platforms(self, airflow: str, target: str | None = None) -> tuple[Platform, ...]:
        """The platforms a release of the line builds for the target (its default when None): the line's, narrowed
        to the target's `platforms`, in the line's order. What this machine can build is clients/platforms.py's."""
        chosen = self.settings.target(target)
        return release_platforms(self.platforms_of(airflow), chosen.platforms, airflow, chosen.name)


def load_catalog(path: Path | None = None) -> Catalog:
    """release.toml (found as load_settings finds it), then what the tree under its root declares."""
    return catalog_of(load_settings(path))


def catalog_of(settings: Settings) -> Catalog:
    """The catalog of settings already read."""
    return Catalog(settings=settings, **_declared(settings.root))


def _declared(root: Path) -> dict:
    products = MappingProxyType(
        {path.stem: load_product(root, path.stem) for path in sorted((root / PRODUCTS_DIR).glob("*.toml"))}
    )
    wheel_dir, changelog_dir, images_dir = root / WHEEL_DIR, root / CHANGELOG_DIR, root / IMAGES_DIR
    matrix = _Once(lambda: read_matrix(images_dir))
    fields: dict = {"root": root, "products": products}
    fields["lines"] = _Lazy(
        lambda: [name for name in known_lines(wheel_dir) if (wheel_dir / name / LINE_FILE).is_file()],
        lambda airflow: read_line(wheel_dir, airflow),
    )
    flavours = _Once(lambda: lines_of(matrix(), images_dir / MATRIX_FILE))
    fields["flavours"] = _Lazy(lambda: flavours(), lambda airflow: tuple(flavours()[airflow]))
    fields["distros"] = _Lazy(lambda: _distro_names(matrix()), lambda distro: distro_build_packages(matrix(), distro))
    support = _Once(lambda: read_support(wheel_dir))
    fields["support"] = _Lazy(lambda: support(), lambda airflow: support()[airflow])
    fields["changelogs"] = _Lazy(
        lambda: sorted(path.stem for path in changelog_dir.glob("*.md")),
        lambda name: _parse_changelog(root, products, name),
    )
    return fields


def _distro_names(data: dict) -> list[str]:
    distros = data.get("distros")
    return list(distros) if isinstance(distros, dict) else []


def _parse_changelog(root: Path, products: Mapping[str, Product], name: str) -> tuple[Entry, ...]:
    """changelog/<name>.md as its product titles it (`# Astro Runtime 4.2` for `runtime-4.2`, else AC's
    `# Astronomer Certified 2.2.4`), its versions parsed among the products read."""
    product = next((p for p in products.values() if p.prefix and name.startswith(p.prefix)), None)
    product = product or products.get(DEFAULT_PRODUCT)
    series, title = name, "Astronomer Certified"  # changelog.parse's own default, when AC is no product file
    if product is not None:
        series, title = name.removeprefix(product.prefix), product.title
    path = root / CHANGELOG_DIR / f"{name}.md"
    return tuple(changelog.parse(path, series, title, lambda text: version_of(text, products.values())))
