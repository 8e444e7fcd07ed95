"""`invoke images.generate`: the Dockerfiles of images/matrix.toml, rendered."""

from __future__ import annotations

from ac_release.commands.cli import print_written
from ac_release.model.config import load_settings


def generate_dockerfiles() -> None:
    from ac_release.building.dockerfiles import generate  # jinja2: loaded by the one command that renders

    settings = load_settings()
    print_written(generate(settings.root / "images"), settings.root)
