"""`invoke lock 2.2.4` regenerates the committed lock and build toolchain byte for byte (uv against PyPI, as of the
line's cut-off dates): a lock that drifts from its inputs, or a resolution that is not deterministic, fails here."""

from __future__ import annotations

import shutil

import pytest

from ac_release.line import load_line
from ac_release.lock import regenerate
from ac_release.version import ACVersion
from tests.helpers import REPO

pytestmark = pytest.mark.integration


def test_lock_regenerates_the_committed_files_byte_for_byte(tmp_path):
    shutil.copytree(REPO / "wheel" / "2.2.4", tmp_path / "2.2.4")
    (tmp_path / "2.2.4" / "constraints.txt").unlink()  # regenerated from nothing: no pin is reused
    (tmp_path / "2.2.4" / "build-requirements.txt").unlink()
    line = load_line(tmp_path, ACVersion.parse("2.2.4-1"))
    written = regenerate(line)
    assert [path.name for path in written] == ["constraints.txt", "build-requirements.txt"]
    for path in written:
        assert path.read_text() == (REPO / "wheel" / "2.2.4" / path.name).read_text(), path.name
