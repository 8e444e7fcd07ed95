"""A machine-wide image missed by two processes at once is built once: the second waits for the first and uses it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from ac_release.building import build_once as module
from ac_release.building.build_once import build_once, lock_file


def test_two_callers_that_miss_the_same_tag_build_it_once_and_the_second_says_it_waits(tmp_path, monkeypatch):
    monkeypatch.setattr(module, "LOCKS", tmp_path)
    built: list[str] = []
    logs: dict[str, list[str]] = {"first": [], "second": []}
    building = threading.Event()

    def build(who: str):
        def run():
            building.set()
            time.sleep(0.5)  # the second caller arrives while this one builds
            built.append(who)

        return run

    results = {}

    def call(who: str):
        results[who] = build_once("ac-release/debian:x", lambda: bool(built), build(who), logs[who].append)

    first = threading.Thread(target=call, args=("first",))
    first.start()
    assert building.wait(5)
    call("second")
    first.join()
    assert built == ["first"]
    assert results == {"first": True, "second": False}
    assert logs == {"first": [], "second": ["waiting for another process of this machine to build ac-release/debian:x"]}


def test_a_present_tag_is_neither_built_nor_locked(tmp_path, monkeypatch):
    monkeypatch.setattr(module, "LOCKS", tmp_path)
    assert build_once("t", lambda: True, lambda: (_ for _ in ()).throw(AssertionError("built")), print) is False
    assert list(tmp_path.iterdir()) == []


def test_a_builder_killed_mid_build_releases_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(module, "LOCKS", tmp_path)
    path = lock_file("ac-release/buildenv:2.2.4")
    assert path.parent == tmp_path and path.name == "ac-release_buildenv_2.2.4.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import fcntl,os,time; fd=os.open({str(path)!r}, os.O_RDWR|os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout.readline() == b"held\n"
    holder.kill()
    holder.wait()
    built: list[str] = []
    assert build_once("ac-release/buildenv:2.2.4", lambda: bool(built), lambda: built.append("me"), print) is True
