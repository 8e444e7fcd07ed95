"""What a killed run leaves is cleaned up by the next: a registry login (its auth file) of a SIGKILLed process, and
the temporary files of interrupted atomic writes in dist/<version>/, when the next command takes the run lock."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ac_release.clients.tlsclients import auth_dir
from ac_release.core.errors import ReleaseError
from ac_release.model.config_access import Registry, RegistryAccess, Secret
from ac_release.pipeline.runlock import held
from tests.helpers import REPO

LOGIN_THEN_WAIT = (
    "import time; from ac_release.clients.tlsclients import auth_dir\n"
    "from ac_release.model.config_access import Registry, RegistryAccess, Secret\n"
    "registry = Registry('registry.example:5000/ac', RegistryAccess(username='u', password=Secret(env='PASSWORD')))\n"
    "with auth_dir(registry) as directory:\n"
    "    print(directory, flush=True)\n"
    "    time.sleep(120)\n"
)


@pytest.fixture
def own_tmp(tmp_path, monkeypatch) -> Path:
    """The temporary directory of this test's processes, away from the machine's /tmp."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def _killed_login(tmp_path: Path) -> Path:
    """The login directory a process made before it was SIGKILLed."""
    process = subprocess.Popen(
        [sys.executable, "-c", LOGIN_THEN_WAIT],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PASSWORD": "s3cret"},
    )
    directory = Path(process.stdout.readline().strip())
    process.kill()
    process.wait()
    assert (directory / "config.json").is_file()  # SIGKILL: nothing removed it
    assert directory.is_relative_to(tmp_path)
    return directory


def test_the_registry_login_of_a_killed_process_is_removed_by_the_next_command(own_tmp, tmp_path):
    login = _killed_login(own_tmp)
    with held(tmp_path / "dist" / "2.2.4-1", "2.2.4-1"):  # the next writing command takes the run lock
        assert not login.exists()


def test_the_registry_login_of_a_killed_process_is_removed_by_the_next_login_a_live_ones_kept(own_tmp, monkeypatch):
    killed = _killed_login(own_tmp)
    monkeypatch.setenv("PASSWORD", "s3cret")
    registry = Registry("registry.example:5000/ac", RegistryAccess(username="u", password=Secret(env="PASSWORD")))
    with auth_dir(registry) as mine, auth_dir(registry) as also_mine:
        assert not killed.exists()
        assert (mine / "config.json").is_file() and (also_mine / "config.json").is_file()  # this process lives
        assert stat.S_IMODE(mine.parent.stat().st_mode) == 0o700
    assert list(mine.parent.iterdir()) == []


def test_a_logins_parent_another_user_may_enter_is_refused(own_tmp):
    parent = own_tmp / f"ac-registry-auth-{os.geteuid()}"
    parent.mkdir(mode=0o777)
    parent.chmod(0o777)
    registry = Registry("registry.example:5000/ac", RegistryAccess(username="u", password=Secret(env="PASSWORD")))
    with pytest.raises(ReleaseError) as refused:
        with auth_dir(registry):
            pass
    assert str(refused.value) == (
        f"{parent} is not a private directory of uid {os.geteuid()} (mode 0700): registry logins are kept there; "
        "remove it"
    )


def test_interrupted_writes_in_dist_are_removed_when_the_next_run_takes_the_lock(tmp_path):
    """Any stage's run (`--stages sign`, ...), not the wheel stage alone: they are removed at the run lock."""
    dist = tmp_path / "dist" / "2.2.4-1"
    bundles = dist / "sigstore" / "local"
    bundles.mkdir(parents=True)
    (dist / "release.json").write_text("{}\n")
    leftovers = [dist / ".release.json.xyz.tmp", bundles / ".apache_airflow.whl.sigstore.json.abc.tmp"]
    for leftover in leftovers:
        leftover.write_text('{"half": ')
    with held(dist, "2.2.4-1"):
        assert not any(leftover.exists() for leftover in leftovers)
    assert (dist / "release.json").read_text() == "{}\n"
