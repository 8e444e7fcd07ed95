"""`invoke lock <line>` and `invoke lock-tools`: the locks, regenerated with uv."""

from __future__ import annotations

from ac_release.building.lock import regenerate, regenerate_tools
from ac_release.commands.cli import print_written
from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.model.line import load_line
from ac_release.model.products import load_product, parse_version
from ac_release.model.version import ACVersion


def lock(line: str) -> None:
    """A release line's constraints and build toolchain when `line` is one (2.2.4), else the constraints of a product
    version with pins of its own (runtime-4.2.0)."""
    settings = load_settings()
    if (settings.wheel_dir / line / "line.toml").is_file():
        written = regenerate(load_line(settings.wheel_dir, ACVersion.parse(f"{line}-1")))
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
        written = regenerate(product.line_of(load_line(settings.wheel_dir, version), version), toolchain=False)
    print_written(written, settings.root)


def lock_tools(upgrade: bool) -> None:
    """requirements/pipeline.txt: the pipeline's own dependencies, locked with hashes."""
    settings = load_settings()
    print_written([regenerate_tools(settings.root, upgrade=upgrade)], settings.root)
