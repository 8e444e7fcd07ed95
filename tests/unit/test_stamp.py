"""Stamping writes only regular files of the source tree: never through a symlink a patch or the sdist made
(issue 29, item 6)."""

import pytest

from ac_release.building.stamp import _replace_once, stamp_version
from ac_release.core.errors import ReleaseError

SETUP = "version = '2.2.4'\n\ndef write_version():\n    text = f\"{git_version(version)}\"\n"


def test_stamp_refuses_a_setup_py_that_is_a_symlink(tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text(SETUP)
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "setup.py").symlink_to("../outside.py")
    with pytest.raises(ReleaseError) as error:
        stamp_version(tree, "2.2.4", "2.2.4+astro.1")
    assert str(error.value) == (
        "setup.py in the source tree is a symlink: refusing to write through it; the sdist or a patch made it one, "
        "drop that change"
    )
    assert outside.read_text() == SETUP


def test_stamp_refuses_a_file_below_a_symlinked_directory(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "setup.py").write_text(SETUP)
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "pkg").symlink_to("../outside")
    with pytest.raises(ReleaseError) as error:
        _replace_once(tree, "pkg/setup.py", "version = '2.2.4'", "version = '2.2.4+astro.1'")
    assert str(error.value) == (
        "pkg in the source tree is a symlink: refusing to write through it; the sdist or a patch made it one, "
        "drop that change"
    )
    assert (outside / "setup.py").read_text() == SETUP


def test_stamp_writes_a_regular_file_in_place(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "setup.py").write_text(SETUP)
    (tmp_path / "pkg" / "setup.py").chmod(0o640)
    _replace_once(tmp_path, "pkg/setup.py", "version = '2.2.4'", "version = '2.2.4+astro.1'")
    assert (tmp_path / "pkg" / "setup.py").read_text() == SETUP.replace("'2.2.4'", "'2.2.4+astro.1'")
    assert (tmp_path / "pkg" / "setup.py").stat().st_mode & 0o777 == 0o640
