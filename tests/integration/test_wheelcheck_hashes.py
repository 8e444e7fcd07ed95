"""The wheel stage's install check (ac_release/building/wheelcheck.sh) installs every file by hash, in the real build
environment with the real uv: here with two small wheels standing in for the built ones (an `apache-airflow` that
needs `six`, and its meta wheel), so that a check takes seconds instead of a wheel build."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile
from pathlib import Path

import pytest

from ac_release.building.buildenv import ensure_buildenv
from ac_release.building.lock import hashed_pins
from tests.helpers import REPO
from tests.integration.conftest import make_context

pytestmark = pytest.mark.integration

WHEELCHECK = REPO / "ac_release" / "building" / "wheelcheck.sh"
AIRFLOW_WHEEL = "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
META_WHEEL = "astronomer_certified-2.2.4.post1-py3-none-any.whl"


def _wheel(path: Path, name: str, version: str, files: dict[str, str], requires: list[str], scripts: str = ""):
    dist_info = f"{name.replace('-', '_')}-{version}.dist-info"
    files = {
        **files,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if scripts:
        files[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{scripts}\n"
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(text.encode())}")
        record.append(f"{dist_info}/RECORD,,")
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")


def _six_block() -> str:
    """The lock's own entry for six (hashes of PyPI's files), as `invoke lock` wrote it."""
    text = (REPO / "wheel" / "2.2.4" / "constraints.txt").read_text()
    assert hashed_pins(text)["six"][1] > 0
    return re.search(r"(?m)^six==.*?(?=^\S)", text, re.DOTALL)[0]


@pytest.fixture(scope="module")
def buildenv(docker_ready, settings):
    ctx = make_context(settings)
    env = ensure_buildenv(
        ctx.docker, ctx.line, ctx.target.base_images, ctx.settings.extra_ca_bundle, ctx.cache, log=lambda _: None
    )
    return ctx, env


def _check(buildenv, tmp_path: Path, constraints: str):
    ctx, env = buildenv
    line = tmp_path / "line"
    (line / "patches").mkdir(parents=True)
    (line / "constraints.txt").write_text(constraints)
    dist = tmp_path / "work" / "run" / "dist"
    dist.mkdir(parents=True)
    _wheel(
        dist / AIRFLOW_WHEEL,
        "apache-airflow",
        "2.2.4+astro.1",
        {"airflow/__init__.py": "", "airflow/cli.py": "import six\n\ndef main():\n    print('2.2.4+astro.1')\n"},
        ["six"],
        scripts="airflow = airflow.cli:main",
    )
    _wheel(dist / META_WHEEL, "astronomer-certified", "2.2.4.post1", {}, ["apache-airflow==2.2.4+astro.1"])
    return ctx.docker(
        "run",
        "--rm",
        f"--user={os.getuid()}:{os.getgid()}",
        "--env=HOME=/tmp",
        "--network=bridge",
        *env.tls_env(),
        f"--volume={line}:/line:ro",
        f"--volume={line / 'constraints.txt'}:/lock/constraints.txt:ro",
        f"--volume={tmp_path / 'work'}:/cache",
        f"--volume={WHEELCHECK}:/wheelcheck.sh:ro",
        env.image,
        "sh",
        "-c",
        'UV_CACHE_DIR=/cache/uv UV_PYTHON_DOWNLOADS=never exec sh /wheelcheck.sh "$@"',
        "check",
        env.python,
        "/cache/run/dist",
        AIRFLOW_WHEEL,
        "astronomer-certified==2.2.4.post1",
        META_WHEEL,
        capture=True,
        check=False,
    )


def test_dependencies_with_the_locked_hashes_install(buildenv, tmp_path):
    result = _check(buildenv, tmp_path, _six_block())
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == [
        "airflow-version wheel 2.2.4+astro.1",
        "airflow-version meta 2.2.4+astro.1",
    ]


def test_a_downloaded_file_with_other_bytes_than_the_lock_fails_the_check(buildenv, tmp_path):
    tampered = re.sub(r"sha256:[0-9a-f]", "sha256:f", _six_block())
    tampered = re.sub(
        r"sha256:f([0-9a-f]{63})", lambda m: "sha256:" + ("e" if m[1][0] == "f" else "f") + m[1], tampered
    )
    assert tampered != _six_block()
    result = _check(buildenv, tmp_path, tampered)
    assert result.returncode != 0
    assert "Hash mismatch for `six==1.16.0`" in result.stderr.decode()


def test_a_dependency_the_lock_does_not_hold_fails_the_check(buildenv, tmp_path):
    result = _check(buildenv, tmp_path, "# six is not locked\n")
    assert result.returncode != 0
    assert "no trusted hash was provided for: `six`" in result.stderr.decode()
