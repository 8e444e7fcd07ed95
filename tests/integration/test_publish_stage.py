"""Stage `publish` against a real pypiserver: read first, skip identical, refuse different, clear errors."""

from __future__ import annotations

import shutil

import pytest

from ac_release.clients.upload import upload
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.config import load_settings
from ac_release.model.records import WheelRecord
from ac_release.pipeline.run import run_stage
from ac_release.services.manager import LocalServices
from ac_release.stages import preflight, publish
from ac_release.world.index_state import index_state
from tests.helpers import free_port, write_config
from tests.integration.conftest import make_context, own_bundle_mismatch

pytestmark = pytest.mark.integration

WHEEL = "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
META = "astronomer_certified-2.2.4.post1-py3-none-any.whl"


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr("ac_release.clients.retry.backoff_sleep", lambda seconds: None)


def _packages(services: LocalServices) -> dict[str, tuple[str, int]]:
    return {p.name: (sha256_file(p), p.stat().st_mtime_ns) for p in (services.pypi_dir / "packages").iterdir()}


def test_artifacts_are_on_the_index_with_their_hashes(published, services):
    ctx, result = published
    built = {name: artifact.sha256 for name, artifact in ctx.manifest.get(WheelRecord).artifacts.items()}
    assert result.index == ctx.target.index.url
    assert result.files == built
    assert sorted(result.uploaded) == sorted(built)
    assert {name: digest for name, (digest, _) in _packages(services).items()} == built
    assert {name: file.sha256 for name, file in index_state(ctx).items()} == built


def test_second_publish_uploads_nothing(published, services):
    ctx, _ = published
    before = _packages(services)
    again = run_stage(make_context(ctx.settings), "publish")
    assert again.uploaded == []
    assert _packages(services) == before


def test_other_bytes_under_our_name_on_the_index_are_refused(other_index):
    ctx, local = other_index
    (local.pypi_dir / "packages" / META).write_bytes(b"not the meta wheel")
    with pytest.raises(ReleaseError) as error:
        run_stage(ctx, "publish")
    assert str(error.value) == (
        f"refused: {ctx.target.index.url}{META}: the index serves sha256 "
        f"{sha256_file(local.pypi_dir / 'packages' / META)}, ours is {sha256_file(ctx.dist / META)}: "
        f"published files never change, release the next build number"
    )
    assert sorted(p.name for p in (local.pypi_dir / "packages").iterdir()) == [META]  # nothing uploaded


def test_swapped_bundle_is_refused_before_any_upload(other_index):
    ctx, local = other_index
    shutil.copy(ctx.bundles / f"{META}.sigstore.json", ctx.bundles / f"{WHEEL}.sigstore.json")
    with pytest.raises(
        ReleaseError,
        match=own_bundle_mismatch(),
    ):
        publish.act(ctx, publish.decide(ctx))  # the gate itself, past the sign stage's own refusal
    assert list((local.pypi_dir / "packages").iterdir()) == []


def test_swapped_artifact_is_refused_before_any_upload(other_index):
    """An artifact in dist/ that is not the wheel stage's never leaves, whatever its signature."""
    ctx, local = other_index
    (ctx.dist / META).write_bytes(b"a meta wheel from elsewhere")
    with pytest.raises(ReleaseError) as error:
        run_stage(ctx, "publish")
    assert str(error.value).startswith(
        f"refused: {ctx.target.index.url}{META}: dist/2.2.4-1/{META} has sha256 {sha256_file(ctx.dist / META)}, "
        f"the wheel stage built {ctx.manifest.get(WheelRecord).sha256(META)}"
    )
    assert list((local.pypi_dir / "packages").iterdir()) == []


def test_wrong_credentials_one_line_no_secret(other_index):
    ctx, local = other_index
    password_file = ctx.target.index.password.file  # derived from [services]: the index knows another password
    password_file.write_text("definitely-not-the-password\n")
    expected = f"index {ctx.target.index.url} refused the credentials of 'ac-release': check {password_file}"
    with pytest.raises(ReleaseError) as error:
        preflight.check_index_credentials(ctx)
    assert str(error.value) == expected
    with pytest.raises(ReleaseError) as error:
        upload(ctx.target.index, ctx.dist / META, "definitely-not-the-password")
    assert (
        str(error.value)
        == f"index {ctx.target.index.url} refused the upload credentials of 'ac-release': check {password_file}"
    )
    assert "definitely-not-the-password" not in str(error.value)
    assert list((local.pypi_dir / "packages").iterdir()) == []


def test_unreachable_index_retries_then_one_clear_line(signed, tmp_path, no_backoff):
    ctx, _ = signed
    port = free_port()  # nothing listens there
    services = ctx.settings.services
    config = write_config(tmp_path, pypi_port=port, sigstore_port=services.sigstore_port, services_dir=services.dir)
    down = make_context(load_settings(config))  # the index address is derived from its port
    with pytest.raises(ReleaseError) as error:
        preflight.check_index_credentials(down)
    assert str(error.value) == (
        f"reaching the index http://127.0.0.1:{port}/ failed after 4 attempts: "
        f"index http://127.0.0.1:{port}/ unreachable ([Errno 111] Connection refused)"
    )
    with pytest.raises(ReleaseError, match=rf"^upload of {META} to http://127.0.0.1:{port}/ failed after 4 attempts: "):
        upload(down.target.index, ctx.dist / META, ctx.target.index.password.read())
