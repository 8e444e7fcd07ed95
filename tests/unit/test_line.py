"""The 2.2.4 line's data, and that the lock agrees with it (the data lives in one place)."""

import re
import shutil

import pytest

from ac_release.core.errors import ReleaseError
from ac_release.model.line import load_line
from ac_release.model.version import ACVersion
from tests.helpers import REPO

LINE = load_line(REPO / "wheel", ACVersion.parse("2.2.4-1"))

# Seed 000, row 2.2.4, without the `1!` epoch; cncf.kubernetes 3.0.2 and 3.0.1 were yanked upstream, 3.0.0 replaces it.
SEED_ROW = {
    "amazon": "3.0.0",
    "microsoft.azure": "3.6.0",
    "celery": "2.1.0",
    "cncf.kubernetes": "3.0.0",
    "elasticsearch": "2.2.0",
    "ftp": "2.0.1",
    "google": "6.4.0",
    "http": "2.0.3",
    "imap": "2.2.0",
    "mysql": "2.2.0",
    "postgres": "3.0.0",
    "redis": "2.0.1",
    "slack": "4.2.0",
    "sqlite": "2.1.0",
    "ssh": "2.4.0",
}


def _pins(path):
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", path.read_text(), re.MULTILINE))


def test_line_declares_the_seed_row():
    assert LINE.providers == SEED_ROW
    assert LINE.extras == ("async", "password", "statsd", "virtualenv")
    assert LINE.build_python == "3.9" and LINE.build_distro == "bullseye"
    assert LINE.sdist.sha256 == "0ee96a60fb6909a6327d461e296e25c357d8199d25de365799b64c8bc0c9c597"


def test_source_date_epoch_is_the_upstream_release_day():
    assert LINE.source_date_epoch == 1645488000  # 2022-02-22T00:00:00Z


# That the lock pins these providers, and names `invoke lock 2.2.4`, is held for every line in test_fleet_lines.py.


def test_build_toolchain_is_pinned_by_hash():
    text = LINE.build_requirements_file.read_text()
    pins = _pins(LINE.build_requirements_file)
    assert {"setuptools": "60.9.3", "wheel": "0.37.1", "build": "0.7.0", "uv": "0.13.8"}.items() <= pins.items()
    assert all("--hash=sha256:" in block for block in re.split(r"\n(?=\S)", text) if "==" in block)


def test_every_patch_has_a_check():
    assert LINE.patches, "the line ships at least one backport"
    for patch in LINE.patches:
        assert patch.with_name(patch.name.replace(".patch", ".check.py")).is_file()


# -- the patch series is checked when the line loads (issue 10): one line per problem, naming the file ----------

PATCH = "wheel/2.2.4/patches/0001-localfs-secrets-multiple-equals"


def _line_copy(tmp_path):
    shutil.copytree(REPO / "wheel" / "2.2.4", tmp_path / "wheel" / "2.2.4")
    return tmp_path / "wheel" / "2.2.4" / "patches"


def _series_refusal(tmp_path) -> str:
    with pytest.raises(ReleaseError) as error:
        load_line(tmp_path / "wheel", ACVersion.parse("2.2.4-1"))
    return str(error.value)


def test_a_patch_without_its_check_is_refused(tmp_path):
    (_line_copy(tmp_path) / "0001-localfs-secrets-multiple-equals.check.py").unlink()
    assert _series_refusal(tmp_path) == (
        f"{PATCH}.patch has no check: add {PATCH}.check.py, which passes only when the fix is in the built Airflow"
    )


def test_a_check_without_its_patch_is_refused(tmp_path):
    patches = _line_copy(tmp_path)
    (patches / "0002-other.check.py").write_text("print('ok: other')\n")
    assert _series_refusal(tmp_path) == (
        "wheel/2.2.4/patches/0002-other.check.py has no patch: add wheel/2.2.4/patches/0002-other.patch or remove it"
    )


def test_a_file_named_like_a_patch_without_a_diff_is_refused(tmp_path):
    patches = _line_copy(tmp_path)
    (patches / "0002-notes.patch").write_text("just some notes\n")
    (patches / "0002-notes.check.py").write_text("print('ok: notes')\n")
    assert _series_refusal(tmp_path) == (
        "wheel/2.2.4/patches/0002-notes.patch holds no diff (no ---/+++ file header with an @@ hunk): "
        "make it with git format-patch"
    )


def test_a_gap_in_the_numbers_is_refused(tmp_path):
    patches = _line_copy(tmp_path)
    source = patches / "0001-localfs-secrets-multiple-equals"
    for suffix in (".patch", ".check.py"):
        (patches / f"0003-again{suffix}").write_bytes(source.with_name(source.name + suffix).read_bytes())
    assert _series_refusal(tmp_path) == (
        "wheel/2.2.4/patches/0003-again.patch: the series has no 0002: number the patches 0001, 0002, ... without gaps"
    )


def test_a_duplicate_number_is_refused(tmp_path):
    patches = _line_copy(tmp_path)
    source = patches / "0001-localfs-secrets-multiple-equals"
    for suffix in (".patch", ".check.py"):
        (patches / f"0001-again{suffix}").write_bytes(source.with_name(source.name + suffix).read_bytes())
    assert _series_refusal(tmp_path) == (
        f"{PATCH}.patch: number 0001 is also 0001-again.patch: give each patch its own number"
    )


def test_a_non_utf8_patch_is_refused(tmp_path):
    patches = _line_copy(tmp_path)
    patch = patches / "0001-localfs-secrets-multiple-equals.patch"
    patch.write_bytes(patch.read_bytes().replace(b"Original author", b"Original \xe9author"))
    assert _series_refusal(tmp_path) == f"{PATCH}.patch:23: not UTF-8 (byte 0xe9): save it as UTF-8"


def test_a_patch_reaching_outside_the_tree_is_refused(tmp_path):
    patches = _line_copy(tmp_path)
    patch = patches / "0001-localfs-secrets-multiple-equals.patch"
    patch.write_text(patch.read_text().replace("+++ b/airflow/secrets", "+++ b/../../etc/secrets"))
    assert _series_refusal(tmp_path) == (
        f"{PATCH}.patch:31: patches ../../etc/secrets/local_filesystem.py, outside the source tree: "
        f"paths are relative to the sdist root"
    )


def test_a_misnamed_series_file_is_refused(tmp_path):
    patches = _line_copy(tmp_path)
    (patches / "2-fix.patch").write_text("x")
    assert _series_refusal(tmp_path) == (
        "wheel/2.2.4/patches/2-fix.patch: a series file is named NNNN-<slug>.patch or NNNN-<slug>.check.py "
        "(4 digits, lowercase slug)"
    )


def test_a_non_utf8_line_file_is_one_line(tmp_path):
    line_file = _line_copy(tmp_path).parent / "line.toml"
    line_file.write_bytes(line_file.read_bytes() + b"# \xff\n")
    lines = line_file.read_bytes().count(b"\n")
    assert _series_refusal(tmp_path) == f"{line_file}:{lines}: not UTF-8 (byte 0xff): save it as UTF-8"
