"""The flavour matrix (`images/matrix.toml`) and the tags computed from it: never typed by hand."""

from __future__ import annotations

import dataclasses
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ac_release.core.errors import ReleaseError
from ac_release.model.config_schema import kind
from ac_release.model.products import Tagging
from ac_release.model.version import ACVersion, ProductVersion

MATRIX_FILE = "matrix.toml"
ONBUILD = "onbuild"


@dataclass(frozen=True, order=True)
class Platform:
    """A platform an image is built for: `linux/amd64`, `linux/arm64`. Only those two are known (PLATFORMS)."""

    os: str
    architecture: str

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}"

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`linux/arm64` as one of PLATFORMS; anything else is refused in one line."""
        for platform in PLATFORMS:
            if str(platform) == text:
                return platform
        raise ReleaseError(f"unknown platform {text!r}: one of {KNOWN_PLATFORMS}")

    @property
    def machine(self) -> str:
        """The kernel's name of the architecture (`uname -m`): x86_64, aarch64."""
        return _MACHINES[self.architecture]

    @property
    def uv_platform(self) -> str:
        """uv's `--python-platform` of the images' glibc (Debian bullseye's 2.31): `aarch64-manylinux_2_31`."""
        return f"{self.machine}-manylinux_2_31"

    @property
    def debian_arch(self) -> str:
        """Debian's name of the architecture (debootstrap --arch, dpkg --print-architecture): amd64, arm64."""
        return self.architecture


_MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
PLATFORMS = (AMD64, ARM64)  # every platform known, in the order of preference
KNOWN_PLATFORMS = ", ".join(f'"{platform}"' for platform in PLATFORMS)


def platform_list(value: object) -> tuple[Platform, ...] | str:
    """A list of platforms as release.toml and images/matrix.toml write them (`["linux/amd64", "linux/arm64"]`), in
    its order; or, when it is not one, what is wrong with it (the caller puts the key in front)."""
    expected = f"expected a list of platforms from {KNOWN_PLATFORMS}"
    if not isinstance(value, list):
        return f"{expected}, got {kind(value)}"
    if not value:
        return f"{expected}, got an empty list: name at least one"
    platforms: list[Platform] = []
    for item in value:
        platform = next((p for p in PLATFORMS if str(p) == item), None)
        if platform is None:
            if not isinstance(item, str):
                return f"{expected}, got {kind(item)} in the list"
            return f"unknown platform {item!r}: {expected}"
        if platform in platforms:
            return f"{item!r} is listed twice: list each platform once"
        platforms.append(platform)
    return tuple(platforms)


def release_platforms(
    line: Sequence[Platform], target: Sequence[Platform] | None, airflow: str, target_name: str
) -> tuple[Platform, ...]:
    """The platforms a release of the line builds for the target: the line's (images/matrix.toml), narrowed to the
    target's `platforms` when it names some, in the line's order. Whether this machine can build them is another
    question (clients/platforms.py)."""
    chosen = tuple(p for p in line if target is None or p in target)
    if not chosen:
        raise ReleaseError(
            f"target {target_name} builds {', '.join(map(str, target or ()))} but Airflow {airflow}'s images are "
            f"{', '.join(map(str, line))} (images/{MATRIX_FILE}): add one of the line's to targets.{target_name}"
            f".platforms in release.toml"
        )
    return chosen


@dataclass(frozen=True)
class Flavour:
    airflow: str
    name: str  # the distro unless the matrix names it: part of its tags, so it never changes by itself
    distro: str
    python: str
    pip: str
    default: bool  # the line's first flavour also gets the tags without a distro
    runtime_packages: tuple[str, ...]
    build_packages: tuple[str, ...]
    sole: bool = True  # the line's only flavour
    platforms: tuple[Platform, ...] = (AMD64,)  # the line's, the first preferred
    tagging: Tagging = field(default_factory=Tagging)  # the product's (with_tagging); AC's by default

    def with_tagging(self, tagging: Tagging) -> Flavour:
        return dataclasses.replace(self, tagging=tagging)

    def dockerfile(self, images_dir: Path, variant: str = "base") -> Path:
        directory = images_dir / self.airflow / self.name
        return (directory / ONBUILD if variant == ONBUILD else directory) / "Dockerfile"

    def tags(self, version: ACVersion | ProductVersion, variant: str = "base") -> list[str]:
        """Immutable tags of one build, by the product's tagging: AC's `2.2.4-1-bullseye` (and `2.2.4-1` for the
        default flavour), a nightly's `2.2.4-nightly-20261201-bullseye`; Runtime's `4.2.0`, `4.2.0-base`. The last is
        the one that names this flavour alone."""
        return self._tags(version.image_tag, variant)

    def platform_tag(self, version: ACVersion | ProductVersion, variant: str, platform: Platform) -> str:
        """The immutable tag of one platform's image (`2.2.4-1-bullseye-arm64`): the tag naming this flavour alone
        and the architecture. The flavour's immutable tags are indexes of these (stage `index`)."""
        return f"{self.tags(version, variant)[-1]}-{platform.architecture}"

    def floating_tags(self, version: ACVersion | ProductVersion, variant: str = "base") -> list[str]:
        """Tags that follow the highest release of their group (AC: a line's builds, `2.2.4`; Runtime: a minor's
        patches, `4.2`); dev builds have none."""
        return [] if version.dev else self._tags(self.tagging.floating.format(**version.floating_fields), variant)

    def _tags(self, prefix: str, variant: str) -> list[str]:
        suffix = self.tagging.variants[variant]
        segment = self.tagging.flavour.format(name=self.name, distro=self.distro, python=self.python)
        tags = [f"{prefix}{suffix}"] if self.default else []
        if self.tagging.flavour_alone or not self.sole:
            tags.append(f"{prefix}{segment}{suffix}")
        return tags


VARIANTS = ("base", ONBUILD)


def read_matrix(images_dir: Path) -> dict:
    """images/matrix.toml as data: read once, then given to lines_of and distro_build_packages."""
    path = images_dir / MATRIX_FILE
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ReleaseError(f"{path}: malformed image matrix ({exc!r})") from exc


def load_matrix(images_dir: Path) -> dict[str, list[Flavour]]:
    """{airflow line: [flavours]}, the first flavour of a line being its default."""
    return lines_of(read_matrix(images_dir), images_dir / MATRIX_FILE)


def lines_of(data: dict, path: Path) -> dict[str, list[Flavour]]:
    """The flavours of every line of the matrix `data` (read from `path`)."""
    try:
        distros = data["distros"]
        matrix = {}
        for airflow, line in data["lines"].items():
            platforms = _line_platforms(line, airflow, path)
            flavours = []
            for index, entry in enumerate(line["flavours"]):
                distro, python = entry["distro"], entry["python"]
                name = entry.get("name", distro)
                flavours.append(
                    Flavour(
                        airflow=airflow,
                        name=name,
                        distro=distro,
                        python=python,
                        pip=line["pip"],
                        default=index == 0,
                        runtime_packages=tuple(distros[distro]["runtime"]),
                        build_packages=tuple(distros[distro]["build"]),
                        sole=len(line["flavours"]) == 1,
                        platforms=platforms,
                    )
                )
            if duplicates := [n for n, count in Counter(f.name for f in flavours).items() if count > 1]:
                raise ReleaseError(
                    f"{path}: line {airflow} has several flavours named {duplicates[0]!r}: give all but one a "
                    f'`name` (e.g. name = "{duplicates[0]}-python3.12")'
                )
            matrix[airflow] = flavours
    except (KeyError, TypeError) as exc:
        raise ReleaseError(f"{path}: malformed image matrix ({exc!r})") from exc
    return matrix


def _line_platforms(line: dict, airflow: str, path: Path) -> tuple[Platform, ...]:
    """`platforms = ["linux/amd64", "linux/arm64"]` of a line; linux/amd64 alone when absent."""
    if "platforms" not in line:
        return (AMD64,)
    platforms = platform_list(line["platforms"])
    if isinstance(platforms, str):
        raise ReleaseError(f'{path}: lines."{airflow}".platforms: {platforms}')
    return platforms


def line_platforms(matrix: Mapping[str, Sequence[Flavour]], airflow: str) -> tuple[Platform, ...]:
    """The platforms of one line of the matrix (every flavour of a line has the line's), the first preferred."""
    flavours = line_flavours(matrix, airflow)
    return flavours[0].platforms if flavours else (AMD64,)


def distro_build_packages(data: dict, distro: str) -> tuple[str, ...]:
    try:
        return tuple(data["distros"][distro]["build"])
    except KeyError:
        raise no_build_packages(distro) from None


def no_build_packages(distro: str) -> ReleaseError:
    return ReleaseError(f"images/{MATRIX_FILE} has no [distros.{distro}] build packages")


def flavours_of(images_dir: Path, airflow: str) -> list[Flavour]:
    return list(line_flavours(load_matrix(images_dir), airflow))


def line_flavours(matrix: Mapping[str, Sequence[Flavour]], airflow: str) -> Sequence[Flavour]:
    """The flavours of one line of the matrix; a line the matrix does not name is refused."""
    if airflow not in matrix:
        raise ReleaseError(f'no image flavours for Airflow {airflow}: add [lines."{airflow}"] to images/{MATRIX_FILE}')
    return matrix[airflow]
