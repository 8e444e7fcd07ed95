"""kill -9 of the embedded index in the middle of storing an upload: it starts again serving no partial file, and the
upload, or the publish stage, then stores every artifact whole."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from ac_release.clients import faults
from ac_release.clients.index import project_files
from ac_release.clients.upload import upload
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.config import load_settings
from ac_release.model.records import WheelRecord
from ac_release.pipeline.run import run_stage
from ac_release.services import index_app
from ac_release.services.manager import LocalServices
from ac_release.world.index_state import index_state
from tests.helpers import wait_until_dead, write_config
from tests.integration.conftest import make_context

pytestmark = pytest.mark.integration


def _sdist(directory: Path) -> Path:
    """A valid sdist (twine reads its PKG-INFO) of 4 MB: the store writes it in several chunks."""
    path = directory / "ac_release_crash_probe-1.0.tar.gz"
    pkg_info = b"Metadata-Version: 2.1\nName: ac-release-crash-probe\nVersion: 1.0\n"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in (("PKG-INFO", pkg_info), ("payload.bin", os.urandom(4 << 20))):
            member = tarfile.TarInfo(f"ac_release_crash_probe-1.0/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def _restart_with_the_store_failpoint(local: LocalServices, monkeypatch) -> int:
    """The index, started again with the failpoint armed (only that process has it); its pid."""
    pypi = next(service for service in local.services() if service.name == "pypi")
    local.supervisor.stop(pypi, log=lambda _: None)
    monkeypatch.setenv(faults.ENV, index_app.STORE_FAULT)
    local.supervisor.start(pypi, log=lambda _: None)
    monkeypatch.delenv(faults.ENV)
    pid = local.supervisor.pid(pypi)
    assert pid is not None
    return pid


def _only_a_temporary_file(packages: Path, dist: Path) -> None:
    """What the kill left: part of one package under its temporary name, nothing under a package's name."""
    (left,) = packages.iterdir()
    assert left.name.startswith(index_app.TEMPORARY_PREFIX) and left.name.endswith(index_app.TEMPORARY_SUFFIX)
    stored = left.name.removeprefix(index_app.TEMPORARY_PREFIX).rsplit(".", 2)[0]
    assert 0 < left.stat().st_size < (dist / stored).stat().st_size


def test_kill_9_while_the_index_stores_an_upload_leaves_no_partial_file_and_the_upload_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr("ac_release.clients.retry.backoff_sleep", lambda seconds: None)
    settings = load_settings(write_config(tmp_path))
    local = LocalServices(settings.services)
    index = settings.target("local").index
    artifact = _sdist(tmp_path)
    packages = local.pypi_dir / "packages"
    try:
        local.up(log=lambda _: None)
        password = index.password.read()
        pid = _restart_with_the_store_failpoint(local, monkeypatch)

        with pytest.raises(ReleaseError, match=r"^upload of \S+ to \S+ failed after 4 attempts: "):
            upload(index, artifact, password)
        wait_until_dead(pid, "the index")
        _only_a_temporary_file(packages, tmp_path)

        local.up(log=lambda _: None)
        assert list(packages.iterdir()) == []  # removed when the index started
        assert project_files(index, password, "ac-release-crash-probe") == {}  # it serves, and lists nothing
        assert upload(index, artifact, password) == "uploaded"
        (served,) = project_files(index, password, "ac-release-crash-probe").values()
        assert served.sha256 == sha256_file(artifact) == sha256_file(packages / artifact.name)
    finally:
        local.down(log=lambda _: None)


def test_kill_9_while_the_index_stores_an_upload_leaves_no_partial_file_and_publish_goes_on(other_index, monkeypatch):
    ctx, local = other_index
    monkeypatch.setattr("ac_release.clients.retry.backoff_sleep", lambda seconds: None)
    packages = local.pypi_dir / "packages"
    pid = _restart_with_the_store_failpoint(local, monkeypatch)

    with pytest.raises(ReleaseError, match=r"^upload of \S+ to \S+ failed after 4 attempts: "):
        run_stage(ctx, "publish")
    wait_until_dead(pid, "the index")
    _only_a_temporary_file(packages, ctx.dist)

    local.up(log=lambda _: None)
    assert list(packages.iterdir()) == []  # removed when the index started
    again = make_context(ctx.settings)
    assert index_state(again) == {}  # it serves, and lists nothing

    result = run_stage(again, "publish")
    built = {name: artifact.sha256 for name, artifact in ctx.manifest.get(WheelRecord).artifacts.items()}
    assert sorted(result.uploaded) == sorted(built)
    assert {name: file.sha256 for name, file in index_state(make_context(ctx.settings)).items()} == built
    assert {path.name: sha256_file(path) for path in packages.iterdir()} == built
