"""The tests' own helpers (tests/helpers.py): a test config shares no cache with another one (two releases running at
once would write the same logs, build contexts and Sigstore client caches), yet reuses the machine's downloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from ac_release.model.config import load_settings
from tests import helpers
from tests.helpers import write_config


@pytest.fixture
def shared(tmp_path, monkeypatch):
    """The machine's cache as the helpers find it: an sdist, uv's cache, and logs of another run."""
    shared = tmp_path / "machine-cache"
    (shared / "sdists").mkdir(parents=True)
    (shared / "sdists" / "apache-airflow-2.2.4.tar.gz").write_bytes(b"sdist")
    (shared / "uv" / "archive-v0" / "x").mkdir(parents=True)
    (shared / "uv" / "archive-v0" / "x" / "METADATA").write_text("Name: x\n")
    (shared / "logs").mkdir()
    (shared / "logs" / "2.2.4-1-wheel.log").write_text("another run's log\n")
    monkeypatch.setattr(helpers, "SHARED_CACHE", shared)
    monkeypatch.delenv("AC_RELEASE_CACHE", raising=False)
    return shared


def test_two_test_configs_get_caches_of_their_own_holding_the_shared_downloads_as_hard_links(tmp_path, shared):
    """Was: every test config's cache_dir was ~/.cache/ac-release."""
    caches = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        caches.append(load_settings(write_config(tmp_path / name)).cache_dir)
    assert caches[0] != caches[1]
    sdist = shared / "sdists" / "apache-airflow-2.2.4.tar.gz"
    metadata = shared / "uv" / "archive-v0" / "x" / "METADATA"
    for cache in caches:
        assert cache.is_relative_to(tmp_path) and not cache.is_relative_to(shared)
        for original in (sdist, metadata):
            linked = cache / original.relative_to(shared)
            assert not linked.is_symlink() and linked.stat().st_ino == original.stat().st_ino  # a hard link
        assert not (cache / "logs").exists()  # the run's own: nothing of another run's


def test_a_config_written_again_in_its_directory_keeps_its_cache(tmp_path, shared):
    first = load_settings(write_config(tmp_path)).cache_dir
    (first / "logs").mkdir()
    (first / "logs" / "mine.log").write_text("kept\n")
    again = load_settings(write_config(tmp_path)).cache_dir
    assert again == first and (again / "logs" / "mine.log").read_text() == "kept\n"
    assert sorted(p.name for p in (again / "sdists").iterdir()) == ["apache-airflow-2.2.4.tar.gz"]  # not linked twice


def test_an_explicit_cache_dir_is_taken_as_it_is(tmp_path, shared):
    settings = load_settings(write_config(tmp_path, cache_dir=str(tmp_path / "explicit")))
    assert settings.cache_dir == tmp_path / "explicit" and not (tmp_path / "explicit").exists()
    machine = load_settings(write_config(tmp_path, cache_dir="~/.cache/ac-release")).cache_dir
    assert machine == Path("~/.cache/ac-release").expanduser()
