"""Stage `wheel` for real: the upstream sdist, the patch series, the build environment in Docker."""

from __future__ import annotations

import shutil
import zipfile
from email.parser import Parser

import pytest

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.config import load_settings
from ac_release.model.records import WheelRecord
from ac_release.pipeline.run import run_stage
from tests.helpers import write_config
from tests.integration.conftest import make_context

pytestmark = pytest.mark.integration

AIRFLOW_WHEEL = "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
AIRFLOW_SDIST = "apache-airflow-2.2.4+astro.1.tar.gz"
META_WHEEL = "astronomer_certified-2.2.4.post1-py3-none-any.whl"


def _metadata(path):
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(name).decode())


def test_outputs_are_the_three_artifacts_recorded_in_the_manifest(built):
    ctx, result = built
    assert sorted(result.artifacts) == sorted([AIRFLOW_WHEEL, AIRFLOW_SDIST, META_WHEEL])
    for name, meta in result.artifacts.items():
        assert sha256_file(ctx.dist / name) == meta.sha256
    assert ctx.manifest.get(WheelRecord) == result
    assert not list(ctx.dist.glob(".*"))  # no temporary or half-written file left behind


def test_fresh_venvs_print_the_ac_version_and_the_patch_is_in(built):
    _, result = built
    assert result.checks["airflow_version"] == {"wheel": "2.2.4+astro.1", "meta": "2.2.4+astro.1"}
    patches = result.checks["patches"]
    assert list(patches) == ["0001-localfs-secrets-multiple-equals.check.py"]
    assert all(message.startswith("ok: ") for message in patches.values())


def test_airflow_wheel_metadata(built):
    ctx, _ = built
    metadata = _metadata(ctx.dist / AIRFLOW_WHEEL)
    assert metadata["Name"] == "apache-airflow"
    assert metadata["Version"] == "2.2.4+astro.1"
    with zipfile.ZipFile(ctx.dist / AIRFLOW_WHEEL) as archive:
        assert archive.read("airflow/git_version").decode() == ".release:2.2.4+ee9049c0566b2539a247687de05f9cffa008f871"
        assert {info.date_time for info in archive.infolist()} == {(2022, 2, 22, 0, 0, 0)}


def test_meta_wheel_pins_the_patched_airflow_and_reexposes_every_extra(built):
    ctx, _ = built
    airflow_extras = _metadata(ctx.dist / AIRFLOW_WHEEL).get_all("Provides-Extra")
    meta = _metadata(ctx.dist / META_WHEEL)
    assert meta["Name"] == "astronomer-certified"
    assert meta["Version"] == "2.2.4.post1"
    assert sorted(meta.get_all("Provides-Extra")) == sorted(airflow_extras)
    assert len(airflow_extras) > 100
    requires = meta.get_all("Requires-Dist")
    assert "apache-airflow (==2.2.4+astro.1)" in requires
    assert "apache-airflow[cncf.kubernetes] (==2.2.4+astro.1) ; extra == 'cncf.kubernetes'" in requires
    assert len(requires) == 1 + len(airflow_extras)


def test_second_run_with_outputs_present_skips(built):
    ctx, result = built
    before = {p.name: p.stat().st_mtime_ns for p in ctx.dist.iterdir()}
    assert run_stage(make_context(ctx.settings), "wheel") == result
    assert {p.name: p.stat().st_mtime_ns for p in ctx.dist.iterdir()} == before


def test_rebuild_from_clean_dist_is_byte_identical(built, tmp_path):
    ctx, result = built
    settings = load_settings(write_config(tmp_path))
    again = run_stage(make_context(settings), "wheel")
    assert again.artifacts == result.artifacts


def test_changed_artifact_in_dist_is_refused(built, tmp_path):
    ctx, _ = built
    settings = load_settings(write_config(tmp_path))
    shutil.copytree(ctx.dist, settings.dist_dir / "2.2.4-1")
    tampered = settings.dist_dir / "2.2.4-1" / META_WHEEL
    tampered.write_bytes(tampered.read_bytes() + b"trailing bytes")
    with pytest.raises(ReleaseError) as error:
        run_stage(make_context(settings), "wheel")
    assert str(error.value) == (
        f"refused: dist/2.2.4-1/{META_WHEEL}: sha256 {sha256_file(tampered)} differs from the recorded "
        f"{ctx.manifest.get(WheelRecord).sha256(META_WHEEL)}: restore it, or delete dist/2.2.4-1 and rebuild if it "
        f"was never published"
    )


def _with_other_inputs(ctx, settings, meta_bytes: bytes | None = None):
    """A copy of the release's dist/ whose manifest says it was built from other inputs (and, given `meta_bytes`,
    that the meta wheel of that earlier build had those bytes)."""
    dist = settings.dist_dir / "2.2.4-1"
    shutil.copytree(ctx.dist, dist)
    manifest = dist / "release.json"
    text = manifest.read_text().replace(ctx.manifest.get(WheelRecord).inputs, "0" * 64)
    if meta_bytes is not None:
        (dist / META_WHEEL).write_bytes(meta_bytes)
        text = text.replace(ctx.manifest.get(WheelRecord).sha256(META_WHEEL), sha256_file(dist / META_WHEEL))
    manifest.write_text(text)
    return dist


def test_changed_inputs_that_give_the_same_bytes_are_accepted(built, tmp_path):
    ctx, result = built
    settings = load_settings(write_config(tmp_path))
    dist = _with_other_inputs(ctx, settings)
    again = run_stage(make_context(settings), "wheel")
    assert again.inputs == result.inputs
    assert again.artifacts == result.artifacts
    assert {p.name: sha256_file(p) for p in dist.glob("*.*") if p.name != "release.json"} == {
        name: meta.sha256 for name, meta in result.artifacts.items()
    }


def test_changed_inputs_that_give_other_bytes_are_refused_and_nothing_changes(built, tmp_path):
    ctx, _ = built
    settings = load_settings(write_config(tmp_path))
    dist = _with_other_inputs(ctx, settings, meta_bytes=b"an earlier build from other inputs")
    (dist / AIRFLOW_WHEEL).unlink()  # missing: would be written, but the set is refused as a whole
    manifest_before = (dist / "release.json").read_bytes()
    with pytest.raises(ReleaseError) as error:
        run_stage(make_context(settings), "wheel")
    assert str(error.value).startswith(
        f"dist/2.2.4-1/{META_WHEEL} exists with other bytes than this build ({sha256_file(dist / META_WHEEL)}, "
        f"rebuilt {ctx.manifest.get(WheelRecord).sha256(META_WHEEL)}): the inputs changed since "
        f"2.2.4-1 was built"
    )
    assert not (dist / AIRFLOW_WHEEL).exists()
    assert (dist / "release.json").read_bytes() == manifest_before
