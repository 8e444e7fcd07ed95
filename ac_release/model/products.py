"""Products (products/<name>.toml): what a product version names, how its images are tagged, what its meta wheel
is. Read from data only: the stages ask the version and the product, never which product it is.

`parse_version` is the one front door from a command-line argument to a version: a product with a `prefix`
(`runtime-4.2.0`) is chosen by it and looks the version up in its table; the rest is AC's own grammar (`2.2.4-1`).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from packaging.version import Version

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import read_utf8
from ac_release.model.line import ReleaseLine
from ac_release.model.version import ACVersion, ProductVersion

PRODUCTS_DIR = "products"
DEFAULT_PRODUCT = "certified"  # the product whose versions have no prefix: AC's `X.Y.Z-N`


@dataclass(frozen=True)
class Tagging:
    """How a product tags a flavour's images (products/<name>.toml [tags])."""

    flavour: str = "-{name}"
    flavour_alone: bool = True  # the flavour segment also when the line has a single flavour
    floating: str = "{airflow}"
    variants: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({"base": "", "onbuild": "-onbuild"}))


@dataclass(frozen=True)
class Pins:
    """What a product version installs beside the line's Airflow build, and the lock of it all."""

    providers: dict[str, str]
    packages: tuple[str, ...]
    lock_dir: Path
    lock_cutoff: dt.date


@dataclass(frozen=True)
class ProductRelease:
    """One row of a product's version table."""

    line: str
    build: int
    release_date: dt.date
    packages: tuple[str, ...]


@dataclass(frozen=True)
class Product:
    name: str
    title: str
    prefix: str
    meta_project: str
    repository: str
    tagging: Tagging
    minors: Mapping[str, Mapping[str, str]]  # minor -> providers
    versions: Mapping[str, ProductRelease]
    directory: Path  # products/<name>/: the locks of its versions
    upgrade_from: str = ""  # the product its first release is upgrade-tested from (its users came from it)
    ui_footer: str = ""  # what the Airflow UI shows in the footer of every page (`{version}`: the image's version)

    def footer(self, version: ACVersion | ProductVersion) -> str:
        return self.ui_footer.format(version=version.image_tag)

    @property
    def meta_distribution(self) -> str:
        """The meta wheel's file-name prefix (`astro_runtime`)."""
        return self.meta_project.replace("-", "_")

    def version(self, text: str) -> ProductVersion:
        number = ProductVersion.number_of(text, self.prefix)
        release = self.versions.get(str(number)) if number else None
        if release is None:
            known = ", ".join(f"{self.prefix}{v}" for v in sorted(self.versions, key=Version)) or "none"
            raise ReleaseError(
                f"no {self.title} version {_shown(text)}: declared ones are {known}; declare a new one under "
                f"[versions] in {PRODUCTS_DIR}/{self.name}.toml"
            )
        return ProductVersion(number, self.prefix, self.name, Version(release.line), release.build)

    def pins(self, version: ACVersion | ProductVersion) -> Pins | None:
        """The version's own providers, packages and lock; None where the product's pins are its line's (AC)."""
        release = self.versions.get(version.meta_version) if self.versions else None
        if release is None:
            return None
        if version.minor not in self.minors:
            raise ReleaseError(f'{PRODUCTS_DIR}/{self.name}.toml has no [minors."{version.minor}"] providers')
        return Pins(
            providers=dict(self.minors[version.minor]),
            packages=release.packages,
            lock_dir=self.directory / str(version.number),
            lock_cutoff=release.release_date,
        )

    def line_of(self, line: ReleaseLine, version: ACVersion | ProductVersion) -> ReleaseLine:
        """The line as this product version installs it (its own pins, where it has them)."""
        pins = self.pins(version)
        if pins is None:
            return line
        return line.with_pins(pins.providers, pins.packages, pins.lock_dir, pins.lock_cutoff, str(version))


def _shown(text: str) -> str:
    return repr(text) if len(text or "") <= 40 else f"{text[:32]!r}… ({len(text)} characters)"


def load_product(root: Path, name: str) -> Product:
    path = root / PRODUCTS_DIR / f"{name}.toml"
    try:
        data = tomllib.loads(read_utf8(path))
        tags = data["tags"]
        return Product(
            name=name,
            title=data["title"],
            prefix=data.get("prefix", ""),
            meta_project=data["meta_project"],
            repository=data["repository"],
            tagging=Tagging(
                tags["flavour"], tags["flavour_alone"], tags["floating"], MappingProxyType(dict(tags["variants"]))
            ),
            minors=MappingProxyType(
                {minor: MappingProxyType(dict(entry["providers"])) for minor, entry in data.get("minors", {}).items()}
            ),
            versions=MappingProxyType(
                {
                    number: ProductRelease(
                        entry["line"], int(entry["build"]), entry["release_date"], tuple(entry.get("packages", ()))
                    )
                    for number, entry in data.get("versions", {}).items()
                }
            ),
            directory=root / PRODUCTS_DIR / name,
            upgrade_from=data.get("upgrade_from", ""),
            ui_footer=data.get("ui_footer", ""),
        )
    except FileNotFoundError:
        raise no_product(name) from None
    except (KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseError(
            f"{path}: malformed product data ({exc!r}); compare with {PRODUCTS_DIR}/runtime.toml"
        ) from exc


def no_product(name: str) -> ReleaseError:
    return ReleaseError(f"no product {name!r}: add {PRODUCTS_DIR}/{name}.toml")


def products(root: Path) -> list[Product]:
    return [load_product(root, p.stem) for p in sorted((root / PRODUCTS_DIR).glob("*.toml"))]


def parse_version(text: str, root: Path) -> ACVersion | ProductVersion:
    """`2.2.4-1` (AC), or `<prefix><X.Y.Z>` of a product declaring a prefix (`runtime-4.2.0`): never guessed from
    the shape of a number."""
    return version_of(text, products(root))


def version_of(text: str, declared: Iterable[Product]) -> ACVersion | ProductVersion:
    """parse_version among products already read (the catalog's)."""
    declared = list(declared)
    for product in declared:
        if product.prefix and (text or "").startswith(product.prefix):
            return product.version(text)
    try:
        return ACVersion.parse(text)
    except ReleaseError as exc:
        others = [f"{p.prefix}X.Y.Z for {p.title}" for p in declared if p.prefix]
        if ACVersion.grammar_matches(text) or not others:
            raise
        raise ReleaseError(f"{exc}; or {', '.join(others)}") from None
