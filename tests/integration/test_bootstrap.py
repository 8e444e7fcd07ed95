""".ci/bootstrap refuses a lock whose hashes do not match the files, whether pip (installing uv from its own line of
the lock) or uv (installing the rest) meets the file, and whether the file is downloaded or already in a warm cache
(on a machine that ran .ci/bootstrap, every locked file is in uv's cache): nothing is installed, no stamp written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ac_release.building.lock import TOOLS_LOCK, hashed_pins
from tests.helpers import REPO

pytestmark = pytest.mark.integration

WRONG = "sha256:" + "0" * 64
FAILED = (
    "bootstrap: installing requirements/pipeline.txt failed ({tool}'s reason above; a hash mismatch means a downloaded"
    " file is not the locked one)"
)


def _with_wrong_hashes(lock: str, name: str) -> str:
    """The lock with every hash of `name`'s pin replaced by one that no file has."""
    block = re.search(rf"(?m)^{re.escape(name)}==\S+ \\\n(?:\s+--hash=sha256:[0-9a-f]{{64}}(?: \\)?\n)+", lock)
    assert block, f"{name} is not a hashed pin of the lock"
    return lock.replace(block.group(0), re.sub(r"sha256:[0-9a-f]{64}", WRONG, block.group(0)))


def _bootstrap_with_lock(root: Path, lock: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real .ci/bootstrap in a copy of this tree's bootstrap inputs, with `lock` as requirements/pipeline.txt."""
    shutil.copytree(REPO / ".ci", root / ".ci")
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / TOOLS_LOCK).parent.mkdir(parents=True)
    (root / TOOLS_LOCK).write_text(lock)
    return subprocess.run([str(root / ".ci" / "bootstrap")], capture_output=True, text=True, timeout=600, env=env)


def _installed(root: Path) -> set[str]:
    site = next((root / ".venv" / "lib").glob("python3*/site-packages"))
    return {re.sub(r"-[^-]+\.dist-info$", "", p.name).lower().replace("_", "-") for p in site.glob("*.dist-info")}


@pytest.fixture(scope="module")
def lock() -> str:
    return (REPO / TOOLS_LOCK).read_text()


def test_a_wrong_hash_in_the_lock_is_refused_by_uv_and_nothing_is_installed(tmp_path, lock):
    assert "idna" in hashed_pins(lock)
    result = _bootstrap_with_lock(tmp_path, _with_wrong_hashes(lock, "idna"))

    assert result.returncode == 1, result.stderr
    assert "Hash mismatch for `idna==" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == FAILED.format(tool="uv")
    assert not (tmp_path / ".venv" / ".ac-release-installed").exists()
    installed = _installed(tmp_path)
    assert "uv" in installed  # installed by pip from its own, correct line
    assert not installed & {"idna", "sigstore", "ac-release"}, installed


def test_a_wrong_hash_of_uv_itself_is_refused_by_pip_before_uv_runs(tmp_path, lock):
    result = _bootstrap_with_lock(tmp_path, _with_wrong_hashes(lock, "uv"))

    assert result.returncode == 1, result.stderr
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == FAILED.format(tool="pip")
    assert not (tmp_path / ".venv" / "bin" / "uv").exists()
    assert "uv" not in _installed(tmp_path)
    assert not (tmp_path / ".venv" / ".ac-release-installed").exists()


def test_a_lock_without_uv_is_refused_in_one_line(tmp_path, lock):
    without_uv = re.sub(r"(?m)^uv==\S+ \\\n(?:\s+--hash=\S+(?: \\)?\n)+(?:\s+#.*\n)*", "", lock)
    assert "uv==" not in without_uv
    result = _bootstrap_with_lock(tmp_path, without_uv)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "bootstrap: requirements/pipeline.txt has no uv pin: run .venv/bin/invoke lock-tools and commit the lock"
    ]
    assert not (tmp_path / ".venv" / ".ac-release-installed").exists()


def test_the_environment_is_compiled_once_where_python_never_writes_bytecode(tmp_path, lock):
    """With PYTHONDONTWRITEBYTECODE=1 (set on this machine, and by many CI images) Python never writes a .pyc: an
    environment installed without compiled files made every command compile its imports again, half a second of
    each `python -m invoke` (1.1 s against 0.55 s). The bootstrap compiles them once, at install."""
    shutil.copytree(REPO / "ac_release", tmp_path / "ac_release")
    result = _bootstrap_with_lock(tmp_path, lock, env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr
    site = next((tmp_path / ".venv" / "lib").glob("python3*/site-packages"))
    for package in ("rich", "invoke", "sigstore", "pydantic"):
        assert list((site / package / "__pycache__").glob("__init__.cpython-*.pyc")), package
