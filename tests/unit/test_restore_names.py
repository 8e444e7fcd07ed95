"""Release files are read back (pipeline/restore_dist.py) only under the names the release's own record accounts for:
the wheel record, and each artifact's bundle and attestations. A name from the registry's annotations that is not
a plain file name, or that the record does not account for, is refused in one line before anything is written."""

from __future__ import annotations

import hashlib

import pytest
from rich.console import Console

from ac_release.clients import oci_release_files as release_files
from ac_release.clients.index import IndexFile
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_bytes
from ac_release.model.config import load_settings
from ac_release.model.names import WHEEL_RECORD, line_build_names, signed_names
from ac_release.model.records import Artifact, WheelRecord
from ac_release.pipeline import restore_dist as restore
from ac_release.world.context import ReleaseContext
from ac_release.world.line_builds import LineBuild
from tests.helpers import write_config

VERSION = "2.2.4-1"


class Registry:
    """The release-files artifact of one tag, as listing and fetch_files read it; every fetch is counted."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.fetched: list[str] = []

    def listing(self, repository: str, tag: str) -> dict[str, str]:
        return {name: hashlib.sha256(data).hexdigest() for name, data in self.files.items()}

    def fetch_files(self, repository: str, tag: str, names: list[str]) -> dict[str, bytes]:
        self.fetched += names
        return {name: self.files[name] for name in names}


def _record(artifacts: list[str]) -> WheelRecord:
    return WheelRecord(
        "inputs", {name: Artifact(hashlib.sha256(name.encode()).hexdigest(), 1) for name in artifacts}, {}, "env", 0
    )


def _published(record: WheelRecord) -> dict[str, bytes]:
    """What publish pushes for this record: the record, each artifact's bundle and attestations."""
    files = {WHEEL_RECORD: release_files.wheel_record_bytes(record)}
    return files | {name: b"{}" for name in signed_names(sorted(record.artifacts))}


@pytest.fixture(autouse=True)
def confined(tmp_path, monkeypatch):
    """A restore that writes outside the test's directory (`/abs/path`) fails the test instead of writing there."""

    def write(path, data, mode=0o644):
        if not path.resolve().is_relative_to(tmp_path):
            raise AssertionError(f"restore wrote outside the test's directory: {path}")
        atomic_write_bytes(path, data, mode)

    monkeypatch.setattr(restore, "atomic_write_bytes", write)


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    context = ReleaseContext.create(VERSION, load_settings(write_config(tmp_path)), console=Console(quiet=True))
    record = _record(context.artifact_names)
    index = {name: IndexFile(artifact.sha256, f"http://index/{name}") for name, artifact in record.artifacts.items()}
    monkeypatch.setattr(restore, "services_running", lambda ctx: True)
    monkeypatch.setattr(restore, "index_state", lambda ctx: dict(index))
    context.__dict__["test_record"] = record
    return context


def _registry(monkeypatch, files: dict[str, bytes]) -> Registry:
    fake = Registry(files)
    monkeypatch.setattr(release_files, "listing", fake.listing)
    monkeypatch.setattr(release_files, "fetch_files", fake.fetch_files)
    return fake


def _where(ctx: ReleaseContext) -> str:
    return f"{release_files.location(ctx.target.registries[0])}:{VERSION}"


def _written(tmp_path) -> list[str]:
    """Every file outside the test's configuration: what a restore wrote, wherever it wrote it."""
    return sorted(
        str(path.relative_to(tmp_path))
        for path in tmp_path.rglob("*")
        if path.is_file() and path.name != "release.toml" and "cache" not in path.relative_to(tmp_path).parts
    )


def test_the_release_files_its_record_accounts_for_are_restored(ctx, tmp_path, monkeypatch):
    record = ctx.__dict__["test_record"]
    files = _published(record)
    _registry(monkeypatch, files)
    assert restore.restore_release_files(ctx) == sorted(files)
    assert {path.name: path.read_bytes() for path in ctx.bundles.iterdir()} == files
    assert ctx.manifest.get(WheelRecord).to_json() == record.to_json()
    assert restore.restore_release_files(ctx) == []  # nothing missing any more


@pytest.mark.parametrize(
    "name",
    ["../../x", "../../../../escaped", "/abs/path", "{tmp}/outside/abs", "sub/dir", "a\\b", "..", ".", "a\0b", ""],
)
def test_a_name_that_is_not_a_plain_file_name_is_refused_and_nothing_is_written(ctx, tmp_path, monkeypatch, name):
    name = name.format(tmp=tmp_path)  # an absolute path the unguarded code could write without being root
    fake = _registry(monkeypatch, _published(ctx.__dict__["test_record"]) | {name: b"owned"})
    where = _where(ctx)
    with pytest.raises(ReleaseError) as refused:
        restore.restore_release_files(ctx)
    assert str(refused.value) == (
        f"refusing the release file {name!r} of {where}: not a plain file name; remove it from {where} or republish"
    )
    assert "\n" not in str(refused.value)
    assert fake.fetched == []  # refused from the listing: nothing fetched
    assert not ctx.settings.dist_dir.exists()
    assert _written(tmp_path) == []


@pytest.mark.parametrize(
    "name",
    [
        "notes.txt",
        "release.json",  # the manifest's own name: a plain name, but not a release file
        "apache_airflow-2.2.4+astro.1-py3-none-any.whl",  # an artifact itself: the index serves it, not the registry
        "other-1.0-py3-none-any.whl.sigstore.json",  # a bundle of an artifact the record does not name
        "build-inputs.json",  # a dev build's, not a release's
    ],
)
def test_a_plain_name_the_record_does_not_account_for_is_refused_and_nothing_is_written(
    ctx, tmp_path, monkeypatch, name
):
    _registry(monkeypatch, _published(ctx.__dict__["test_record"]) | {name: b"owned"})
    where = _where(ctx)
    with pytest.raises(ReleaseError) as refused:
        restore.restore_release_files(ctx)
    assert str(refused.value) == (
        f"refusing the release file {name!r} of {where}: not the wheel record, nor a bundle or attestation of an "
        f"artifact it names; remove it from {where} or republish"
    )
    assert not ctx.settings.dist_dir.exists()
    assert _written(tmp_path) == []


def test_the_names_a_record_here_accounts_for_are_its_artifacts(ctx, tmp_path, monkeypatch):
    """Built here: the manifest's record decides, not the one published (a bundle of another artifact is refused)."""
    record = ctx.__dict__["test_record"]
    ctx.manifest.put(record)
    published = _record([*record.artifacts, "other-1.0-py3-none-any.whl"])
    fake = _registry(monkeypatch, _published(published))
    where = _where(ctx)
    with pytest.raises(ReleaseError) as refused:
        restore.restore_release_files(ctx)
    assert str(refused.value) == (
        f"refusing the release file 'other-1.0-py3-none-any.whl.publish.attestation' of {where}: not the wheel "
        f"record, nor a bundle or attestation of an artifact it names; remove it from {where} or republish"
    )
    assert fake.fetched == []
    assert not ctx.bundles.exists()


def test_the_line_build_is_read_back_only_under_names_its_record_accounts_for(tmp_path, monkeypatch):
    """restore_line_build: Runtime 4.2.0 reads AC 2.2.4-1's line build back; a signed name that is not plain, or that
    the fetched record does not account for, is refused before anything is written."""
    settings = load_settings(write_config(tmp_path))
    ctx = ReleaseContext.create("runtime-4.2.0", settings, console=Console(quiet=True))
    names = line_build_names(ctx.version)
    record = _record(ReleaseContext.create(VERSION, settings).artifact_names)  # AC 2.2.4-1's, published
    index = {name: IndexFile(artifact.sha256, f"http://index/{name}") for name, artifact in record.artifacts.items()}
    monkeypatch.setattr(restore, "index_state", lambda ctx: dict(index))
    verified = []
    monkeypatch.setattr(restore, "fetch_verified", lambda other, names, *args: verified.extend(names))
    ac = ReleaseContext.create(VERSION, settings)
    where = f"{release_files.location(ac.target.registries[0])}:{VERSION}"
    files = _published(record)

    def source(signed):
        return LineBuild(
            VERSION,
            settings.dist_dir / VERSION,
            {name: record.sha256(name) for name in names},
            published=where,
            signed=frozenset(signed),
        )

    for name, reason in [
        ("../../x", "not a plain file name"),
        ("/abs/path", "not a plain file name"),
        ("sub/dir", "not a plain file name"),
        ("notes.txt", "not the wheel record, nor a bundle or attestation of an artifact it names"),
    ]:
        fake = _registry(monkeypatch, files | {name: b"owned"})
        monkeypatch.setattr(restore, "line_build_source", lambda ctx, name=name: source([*signed_names(names), name]))
        with pytest.raises(ReleaseError) as refused:
            restore.restore_line_build(ctx)
        assert str(refused.value) == (
            f"refusing the release file {name!r} of {where}: {reason}; remove it from {where} or republish"
        )
        assert name not in fake.fetched
        assert not settings.dist_dir.exists()
        assert _written(tmp_path) == []

    _registry(monkeypatch, files)
    monkeypatch.setattr(restore, "line_build_source", lambda ctx: source(signed_names(names)))
    assert restore.restore_line_build(ctx) == VERSION
    other = settings.dist_dir / VERSION
    assert sorted(path.name for path in (other / "sigstore" / "local").iterdir()) == sorted(signed_names(names))
    assert verified == list(names)
