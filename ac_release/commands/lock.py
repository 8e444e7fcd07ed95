"""`invoke lock <line>` and `invoke lock-tools`: the locks, regenerated with uv."""

from __future__ import annotations

from pathlib import Path

from ac_release.building.lock import regenerate, regenerate_tools
from ac_release.commands.cli import print_written
from ac_release.core.errors import ReleaseError
from ac_release.model.catalog import IMAGES_DIR
from ac_release.model.config import load_settings
from ac_release.model.flavours import AMD64, Platform, line_platforms, load_matrix
from ac_release.model.line import load_line
from ac_release.model.products import load_product, parse_version
from ac_release.model.version import ACVersion


def lock(line: str) -> None:
    """A release line's constraints and build toolchain when `line` is one (2.2.4), else the constraints of a product
    version with pins of its own (runtime-4.2.0): one lock for every platform of the line's images (resolved for
    each), and beside each lock the file each pin installs on each platform."""
    settings = load_settings()
    if (settings.wheel_dir / line / "line.toml").is_file():
        platforms = _platforms(settings.root, line)
        written = regenerate(load_line(settings.wheel_dir, ACVersion.parse(f"{line}-1")), platforms)
    else:
        try:
            version = parse_version(line, settings.root)
        except ReleaseError:
            version = None
        product = version and load_product(settings.root, version.product)
        if version is None or product.pins(version) is None:
            raise ReleaseError(
                f"no release line {line!r}: expected {settings.wheel_dir / line / 'line.toml'}, or a product version "
                f"with pins of its own (e.g. runtime-4.2.0)"
            )
        platforms = _platforms(settings.root, version.airflow_version)
        on_line = product.line_of(load_line(settings.wheel_dir, version), version)
        written = regenerate(on_line, platforms, toolchain=False)
    print_written(written, settings.root)


def _platforms(root: Path, airflow: str) -> tuple[Platform, ...]:
    """The line's platforms (images/matrix.toml); linux/amd64 alone while the matrix has no entry for the line yet
    (a new line is locked before its flavours are declared)."""
    matrix = load_matrix(root / IMAGES_DIR)
    return line_platforms(matrix, airflow) if airflow in matrix else (AMD64,)


def lock_tools(upgrade: bool) -> None:
    """requirements/pipeline.txt: the pipeline's own dependencies, locked with hashes."""
    settings = load_settings()
    print_written([regenerate_tools(settings.root, upgrade=upgrade)], settings.root)
