"""The flavour matrix (`images/matrix.toml`) and the tags computed from it: never typed by hand."""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ac_release.errors import ReleaseError
from ac_release.version import ACVersion

MATRIX_FILE = "matrix.toml"
ONBUILD = "onbuild"


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

    def dockerfile(self, images_dir: Path, variant: str = "base") -> Path:
        directory = images_dir / self.airflow / self.name
        return (directory / ONBUILD if variant == ONBUILD else directory) / "Dockerfile"

    def tags(self, version: ACVersion, variant: str = "base") -> list[str]:
        """Immutable tags of one build: `2.2.4-1-bullseye` (and `2.2.4-1` for the default flavour); a nightly's
        `2.2.4-nightly-20261201-bullseye`."""
        return self._tags(version.image_tag, variant)

    def floating_tags(self, version: ACVersion, variant: str = "base") -> list[str]:
        """Tags that follow the highest release build of an Airflow version; dev builds have none."""
        return [] if version.dev else self._tags(version.airflow_version, variant)

    def _tags(self, prefix: str, variant: str) -> list[str]:
        suffix = f"-{ONBUILD}" if variant == ONBUILD else ""
        tags = [f"{prefix}-{self.name}{suffix}"]
        if self.default:
            tags.insert(0, f"{prefix}{suffix}")
        return tags


VARIANTS = ("base", ONBUILD)


def load_matrix(images_dir: Path) -> dict[str, list[Flavour]]:
    """{airflow line: [flavours]}, the first flavour of a line being its default."""
    path = images_dir / MATRIX_FILE
    try:
        data = tomllib.loads(path.read_text())
        distros = data["distros"]
        matrix = {}
        for airflow, line in data["lines"].items():
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
                    )
                )
            if duplicates := [n for n, count in Counter(f.name for f in flavours).items() if count > 1]:
                raise ReleaseError(
                    f"{path}: line {airflow} has several flavours named {duplicates[0]!r}: give all but one a "
                    f'`name` (e.g. name = "{duplicates[0]}-python3.12")'
                )
            matrix[airflow] = flavours
    except (KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseError(f"{path}: malformed image matrix ({exc!r})") from exc
    return matrix


def flavours_of(images_dir: Path, airflow: str) -> list[Flavour]:
    matrix = load_matrix(images_dir)
    if airflow not in matrix:
        raise ReleaseError(f'no image flavours for Airflow {airflow}: add [lines."{airflow}"] to images/{MATRIX_FILE}')
    return matrix[airflow]
