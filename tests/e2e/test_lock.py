"""`invoke lock 2.2.4` regenerates the committed lock and build toolchain byte for byte, each with its companion (the
file each pin installs on each platform of the line's images), resolved by uv against PyPI for every platform as of the
line's cut-off dates: a lock that drifts from its inputs, or a resolution that is not deterministic, fails here."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from ac_release.building.lock import files_path, hashed_pins, regenerate
from ac_release.model.flavours import line_platforms, load_matrix
from ac_release.model.line import load_line
from ac_release.model.products import load_product, parse_version
from ac_release.model.version import ACVersion
from tests.helpers import REPO

pytestmark = pytest.mark.e2e


def _committed(path: Path) -> bytes:
    """The bytes of a file of the repository as committed (HEAD), whatever regenerating may write afterwards."""
    name = path.relative_to(REPO).as_posix()
    return subprocess.run(["git", "-C", str(REPO), "show", f"HEAD:{name}"], capture_output=True, check=True).stdout


def _platforms(airflow: str):
    """The line's platforms, as `invoke lock` resolves them (images/matrix.toml)."""
    return line_platforms(load_matrix(REPO / "images"), airflow)


def test_lock_regenerates_the_committed_files_byte_for_byte(tmp_path):
    # each lock, then its companion (regenerate's order)
    names = ["constraints.txt", "constraints.files.txt", "build-requirements.txt", "build-requirements.files.txt"]
    committed = {name: _committed(REPO / "wheel" / "2.2.4" / name) for name in names}
    shutil.copytree(REPO / "wheel" / "2.2.4", tmp_path / "2.2.4")
    for name in names:
        (tmp_path / "2.2.4" / name).unlink()  # regenerated from nothing: no pin is reused
    line = load_line(tmp_path, ACVersion.parse("2.2.4-1"))
    written = regenerate(line, _platforms("2.2.4"))
    assert written == [tmp_path / "2.2.4" / name for name in names]
    for path in written:
        assert path.read_bytes() == committed[path.name], path.name


def test_a_product_version_lock_regenerates_byte_for_byte_keeping_the_lines_pins(tmp_path):
    """`invoke lock runtime-4.2.1`: resolved as of its own release date, with the line's lock as uv's preferences, so
    that its image adds to the line's layers only what the version must pin otherwise."""
    version = parse_version("runtime-4.2.1", REPO)
    product = load_product(REPO, version.product)
    line = product.line_of(load_line(REPO / "wheel", version), version)
    committed = _committed(line.lock_file), _committed(files_path(line.lock_file))
    platforms = _platforms(version.airflow_version)
    written, files = regenerate(dataclasses.replace(line, lock_dir=tmp_path), platforms, toolchain=False)
    assert (written, files) == (tmp_path / "constraints.txt", tmp_path / "constraints.files.txt")
    assert (written.read_bytes(), files.read_bytes()) == committed
    pins, line_pins = hashed_pins(written.read_text()), hashed_pins(line.line_lock_file.read_text())
    kept = [name for name in pins if name in line_pins and pins[name][0] == line_pins[name][0]]
    assert len(kept) > 0.9 * len(set(pins) & set(line_pins)), sorted(set(pins) & set(line_pins) - set(kept))
