"""The line's lock pins every dependency of the image with the hashes of its files, and every install of it (the image
build, the wheel check) requires them: a downloaded file with other bytes cannot be installed."""

from __future__ import annotations

import re

import pytest

from ac_release.building.dockerfiles import expected_files
from ac_release.building.lock import hashed_pins, without_hashes
from ac_release.model.flavours import load_matrix
from tests.helpers import REPO

LOCKS = sorted((REPO / "wheel").glob("*/constraints.txt")) + sorted((REPO / "wheel").glob("*/build-requirements.txt"))


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_pin_of_the_lock_carries_hashes(lock):
    text = lock.read_text()
    pins = hashed_pins(text)
    requirement_lines = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert len(pins) == len(requirement_lines) > 0
    assert [name for name, (_, hashes) in pins.items() if hashes == 0] == []


def test_the_image_pip_is_locked_at_the_matrix_version():
    """The image installs `pip==<matrix pip>` with --require-hashes: its hashes must be in the line's lock."""
    for airflow, flavours in load_matrix(REPO / "images").items():
        pins = hashed_pins((REPO / "wheel" / airflow / "constraints.txt").read_text())
        assert {flavour.pip for flavour in flavours} == {pins["pip"][0]}, f"pip of line {airflow}"


def test_every_generated_dockerfile_installs_by_hash():
    """The line's lock into the line's venv, then the product version's lock over it (AC's is the line's)."""
    checked, onbuild = [], []
    for path, text in expected_files(REPO / "images").items():
        installs = [part.split("\n    && ", 1)[0] for part in text.split("/opt/build-tools/bin/uv pip install")[1:]]
        if not installs:
            onbuild.append(str(path.relative_to(REPO)))
            continue  # onbuild: installs nothing of its own
        checked.append(str(path.relative_to(REPO)))
        assert all("--require-hashes" in install for install in installs), path
        line, product = installs
        assert "--constraint /build/line-constraints.txt --requirement /build/line-requirements.txt" in line, path
        assert "--constraint /build/constraints.txt --requirement /build/requirements.txt" in product, path
        assert "--exact" in product, path  # the product's venv is its lock: what the line has and it has not goes
        # the two built wheels are pinned by the sha256 the manifest gives as build arguments
        assert re.search(r"apache-airflow \S+ \"\$\{AIRFLOW_WHEEL_SHA256\}\"", text), path
        assert '"${META_WHEEL_SHA256}"' in text, path
    # every line of images/matrix.toml (one flavour each): its image checked, its onbuild image installing nothing
    assert sorted(checked) == ["images/2.2.4/bullseye/Dockerfile", "images/2.3.0/bullseye/Dockerfile"]
    assert sorted(onbuild) == ["images/2.2.4/bullseye/onbuild/Dockerfile", "images/2.3.0/bullseye/onbuild/Dockerfile"]


def test_the_wheel_check_installs_by_hash():
    script = (REPO / "ac_release" / "building" / "wheelcheck.sh").read_text()
    assert "--require-hashes --constraint /lock/constraints.txt" in script


def test_the_bench_baseline_gets_the_same_pins_without_hashes():
    text = (REPO / "wheel" / "2.2.4" / "constraints.txt").read_text()
    plain = without_hashes(text)
    assert "--hash" not in plain
    assert {name: version for name, (version, _) in hashed_pins(plain).items()} == {
        name: version for name, (version, _) in hashed_pins(text).items()
    }
    assert "six==1.16.0\n    # via" in plain
