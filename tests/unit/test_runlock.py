"""One writing command per version: a second run refuses in one line naming the holder, tested with real processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ac_release.core.errors import ReleaseError
from ac_release.pipeline.runlock import held, line_held, line_lock_path, lock_path
from tests.helpers import REPO, write_config

INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]
HOLD = (
    "import sys, time; from pathlib import Path; from ac_release.pipeline.runlock import held\n"
    "with held(Path(sys.argv[1]), '2.2.4-1'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(120)\n"
)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of dist/2.2.4-1."""
    dist = tmp_path / "dist" / "2.2.4-1"
    dist.mkdir(parents=True)
    (dist / "release.json").write_text('{"schema": 1, "version": "2.2.4-1", "stages": {}}\n')
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(dist)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stdout.readline() == "held\n"
    yield process, dist
    if process.poll() is None:
        process.kill()
    process.wait()


@pytest.mark.parametrize("task", [["sign", "2.2.4-1"], ["images", "2.2.4-1"], ["release", "2.2.4-1"]])
def test_a_second_writing_command_is_refused_naming_the_holder(tmp_path, holder, task):
    process, dist = holder
    config = write_config(tmp_path, cache_dir=tmp_path / "cache")  # not made: the refused command makes nothing
    before = _tree(tmp_path)
    env = {**os.environ, "AC_RELEASE_CONFIG": str(config), "AC_RELEASE_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([*INVOKE, *task], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert re.fullmatch(
        rf"error: 2\.2\.4-1 is being released by pid {process.pid} \(started \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); "
        r"wait for it or stop it\n",
        result.stderr,
    ), result.stderr
    assert _tree(tmp_path) == before
    assert not (tmp_path / "services").exists() and not (tmp_path / "cache").exists()


def test_a_killed_holder_never_blocks_the_next_run(holder):
    process, dist = holder
    with pytest.raises(ReleaseError, match=rf"^2\.2\.4-1 is being released by pid {process.pid} "):
        with held(dist, "2.2.4-1"):
            pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert lock_path(dist).exists()  # a SIGKILL leaves the file, but the kernel dropped the lock
    with held(dist, "2.2.4-1"):
        assert lock_path(dist).read_text().split()[0] == str(os.getpid())
    assert not lock_path(dist).exists()


def test_a_finished_run_leaves_no_trace(tmp_path):
    dist = tmp_path / "dist" / "2.2.4-1"
    with held(dist, "2.2.4-1"):
        assert lock_path(dist).is_file()
    assert list(tmp_path.iterdir()) == []


def test_a_run_whose_dist_is_removed_by_another_versions_run_as_it_starts_still_locks(tmp_path, monkeypatch):
    """Two versions' first runs: one ends and removes the empty dist/ it made just as the other has made it too and
    opens its lock file there; the other makes dist/ again and takes its lock."""
    from ac_release.pipeline import runlock

    dist = tmp_path / "dist" / "2.2.4-2"
    opened = os.open
    removed = []

    def open_after_the_other_run_ended(path, *args, **kwargs):
        if not removed and str(path).endswith(".lock"):
            dist.parent.rmdir()  # the other version's run ends: its `held` removes the empty dist/
            removed.append(path)
        return opened(path, *args, **kwargs)

    monkeypatch.setattr(runlock.os, "open", open_after_the_other_run_ended)
    with held(dist, "2.2.4-2"):
        assert lock_path(dist).is_file()
    assert removed


def test_the_lock_file_is_the_same_only_on_the_same_device(tmp_path, monkeypatch):
    """A file with the lock file's inode number on another device is another file: lock the one that is there."""
    from ac_release.pipeline import runlock

    path = tmp_path / "2.2.4-1.lock"
    stat = os.stat
    asked = []

    def another_device_once(target, *args, **kwargs):
        status = stat(target, *args, **kwargs)
        if str(target) == str(path) and not asked:
            asked.append(target)
            fields = list(status)
            fields[2] = status.st_dev + 1  # st_dev
            return os.stat_result(fields)
        return status

    opened, opens = os.open, []

    def counted_open(target, *args, **kwargs):
        opens.append(target)
        return opened(target, *args, **kwargs)

    monkeypatch.setattr(runlock.os, "stat", another_device_once)
    monkeypatch.setattr(runlock.os, "open", counted_open)
    os.close(runlock._acquire(path, lambda *holder: f"held by {holder}"))
    assert len(opens) == 2  # the first file was taken for another, and the one there opened and locked


HOLD_RUN = (
    "import sys, time; from pathlib import Path; from ac_release.pipeline.runlock import held, line_held\n"
    "dist = Path(sys.argv[1])\n"
    "with held(dist, '2.2.4-1'), line_held(dist.parent, 'certified', '2.2.4', 'local', '2.2.4-1'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(120)\n"
)


@pytest.mark.parametrize("task", [["sign", "2.2.4-2"], ["release", "2.2.4-2", "--stages", "promote"]])
def test_another_build_of_the_line_is_refused_naming_the_build_running(tmp_path, task):
    """2.2.4-1 runs; 2.2.4-2 (the same line, the same target: the same floating tags and git remote) is refused."""
    from ac_release.model.config import load_settings
    from ac_release.services.manager import LocalServices

    config = write_config(tmp_path, cache_dir=tmp_path / "cache")
    dist = tmp_path / "dist" / "2.2.4-1"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_RUN, str(dist)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline() == "held\n"
        before = _tree(tmp_path)
        env = {**os.environ, "AC_RELEASE_CONFIG": str(config), "AC_RELEASE_CACHE": str(tmp_path / "cache")}
        result = subprocess.run([*INVOKE, *task], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert re.fullmatch(
            rf"error: certified line 2\.2\.4 on local is being released by 2\.2\.4-1 \(pid {holder.pid}, started "
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\), which shares 2\.2\.4-2's floating tags: wait for it or stop it\n",
            result.stderr,
        ), result.stderr[-2000:]
        assert result.returncode == 1
        assert _tree(tmp_path) == before
        assert not (tmp_path / "dist" / "2.2.4-2").exists() and not (tmp_path / "services").exists()
    finally:
        holder.kill()
        holder.wait()
        if (tmp_path / "services").exists():  # the unrefused run started them
            LocalServices(load_settings(config).services).down(log=lambda _: None)


def test_builds_of_one_line_on_other_targets_of_other_lines_or_products_run_at_once(tmp_path):
    """Runtime 4.2.0 on AC's 2.2.4 line build runs beside AC 2.2.4-2 (the end-to-end tier does): its floating tags are
    its own."""
    dist_dir = tmp_path / "dist"
    with line_held(dist_dir, "certified", "2.2.4", "local", "2.2.4-1"):
        with (
            line_held(dist_dir, "certified", "2.2.4", "staging", "2.2.4-2"),
            line_held(dist_dir, "certified", "2.3.0", "local", "2.3.0-1"),
            line_held(dist_dir, "runtime", "2.2.4", "local", "runtime-4.2.0"),
        ):
            held_by = line_lock_path(dist_dir, "certified", "2.2.4", "local").read_text().split()[::2]
            assert held_by == [str(os.getpid()), "2.2.4-1"]
        with pytest.raises(ReleaseError, match=r"^certified line 2\.2\.4 on local is being released by 2\.2\.4-1 "):
            with line_held(dist_dir, "certified", "2.2.4", "local", "2.2.4-1-dev2026120701"):
                pass
    assert list(dist_dir.iterdir()) == []
