"""`invoke audit`: which releases it reads (the newest of each supported line and product on the registry), the
yanked pins of their locks, and what it prints, writes and exits with. The Debian side is tests/unit/
test_debian_archive.py's; the whole path against a real release is tests/integration/test_release.py's."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from invoke import Exit

from ac_release.clients import registry
from ac_release.clients.debian_archive import BinaryPackage
from ac_release.commands import audit
from ac_release.model.debian import suites
from ac_release.model.support import Support
from ac_release.supply_chain.debian_updates import Installed, Pending
from tests.unit.test_decisions import World

TODAY = dt.date(2026, 12, 8)


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Only 2.2.4 supported on TODAY: every other line ended before."""
    world = World(tmp_path, monkeypatch)
    wheel = world.settings.root / "wheel"
    ended = [line.parent.name for line in sorted(wheel.glob("*/line.toml")) if line.parent.name != "2.2.4"]
    (wheel / "support.toml").write_text(
        '[lines."2.2.4"]\nuntil = 2027-11-30\nlts = true\n'
        + "".join(f'\n[lines."{line}"]\nuntil = 2026-06-30\n' for line in ended)
    )
    return world


def _release(world: World, tag: str, repository: str | None = None) -> None:
    repository = repository or world.ctx.release_target.registries[0]
    world.indexes[(repository, tag)] = registry.RemotePlatforms("sha256:" + "1" * 64, {"linux/amd64": "sha256:2"})


def test_the_newest_release_of_each_supported_line_and_product_is_audited(world):
    for tag in ("2.2.4-1", "2.2.4-2", "2.2.4-2-bullseye", "2.2.4", "2.3.0-1", "2.2.3-1"):  # only 2.2.4 supported
        _release(world, tag)
    found = audit.newest_releases(world.ctx.catalog, None, TODAY)
    contexts = [str(item.version) for item in found if not isinstance(item, audit.ReleaseAudit)]
    notes = [(item.product.name, item.line, item.note) for item in found if isinstance(item, audit.ReleaseAudit)]
    assert contexts == ["2.2.4-2"]
    runtime = world.ctx.release_target_of(world.ctx.catalog.product("runtime")).registries[0]
    assert notes == [("runtime", "2.2.4", f"nothing released on {runtime}")]


def test_a_product_release_is_found_in_its_own_repository(world):
    _release(world, "2.2.4-1")
    runtime = world.ctx.release_target_of(world.ctx.catalog.product("runtime")).registries[0]
    for tag in ("4.2.0", "4.2.1", "4.2"):
        _release(world, tag, runtime)
    found = audit.newest_releases(world.ctx.catalog, None, TODAY)
    assert [str(item.version) for item in found] == ["2.2.4-1", "runtime-4.2.1"]


def test_the_pins_whose_file_the_index_yanked_are_named_per_platform(world):
    files = (world.settings.root / "wheel" / "2.2.4" / "constraints.files.txt").read_text().splitlines()
    alembic = {line.split()[0]: line.split()[2] for line in files if line.split()[1:2] == ["alembic==1.7.6"]}
    assert sorted(alembic) == ["linux/amd64", "linux/arm64"]
    asked = []

    def yanked_of(project):
        asked.append(project)
        return {alembic["linux/amd64"]: "broken migration"} if project == "alembic" else {"other.whl": ""}

    pins = audit.yanked_pins(world.ctx, audit.Sources(archive=None, yanked_of=yanked_of))
    assert [(pin.name, pin.version, pin.platform, pin.reason) for pin in pins] == [
        ("alembic", "1.7.6", platform, "broken migration")
        for platform in sorted(alembic)
        if alembic[platform] == alembic["linux/amd64"]
    ]
    assert len(asked) == len(set(asked))  # one request a project


def _pending(name: str, suite: int, cves) -> Pending:
    installed = Installed(name, "1.0-1", "amd64", name, "1.0-1")
    available = BinaryPackage(name, "1.0-1+deb11u1", name, "1.0-1+deb11u1", "pool/x.deb", 1, "0" * 64,
                              suites("bullseye")[suite], "amd64")  # fmt: skip
    return Pending(installed, available, cves)


def test_pending_security_updates_exit_3_after_the_table_and_the_json(world, tmp_path, monkeypatch, capsys):
    support = Support("2.2.4", dt.date(2027, 11, 30), lts=True)
    ac = world.ctx.catalog.product("certified")
    image = audit.ImageAudit(
        "bullseye",
        "linux/arm64",
        "127.0.0.1:5000/astronomer/ap-airflow@sha256:" + "3" * 64,
        (_pending("libssl1.1", 2, ("CVE-2024-0727", "CVE-2023-5678")), _pending("tzdata", 1, ())),
    )
    behind = audit.ReleaseAudit(ac, "2.2.4", support, world.ctx.version, (image,))
    nothing = audit.ReleaseAudit(world.ctx.catalog.product("runtime"), "2.2.4", support, None, note="nothing here")
    monkeypatch.setattr(audit, "load_catalog", lambda: world.ctx.catalog)
    monkeypatch.setattr(audit, "newest_releases", lambda catalog, target, today: [world.ctx, nothing])
    monkeypatch.setattr(audit, "audit_release", lambda ctx, sources: behind)
    with pytest.raises(Exit) as exited:
        audit.audit(None, str(tmp_path / "audit.json"), TODAY)
    assert exited.value.code == audit.PENDING_EXIT
    assert exited.value.message == "pending security updates: Astronomer Certified 2.2.4-1"
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "Astronomer Certified 2.2.4-1 (line 2.2.4, LTS, supported until 2027-11-30): 1 pending security updates, 2 CVEs"
    )
    assert out[2] == "    libssl1.1 1.0-1 -> 1.0-1+deb11u1 (bullseye-security): CVE-2024-0727 CVE-2023-5678"
    assert out[-1] == "Astro Runtime 2.2.4 (LTS, supported until 2027-11-30): nothing here"
    document = json.loads((tmp_path / "audit.json").read_text())
    assert document["date"] == "2026-12-08"
    first = document["releases"][0]
    assert (first["version"], first["pending_security_updates"], first["cves"]) == (
        "2.2.4-1",
        True,
        ["CVE-2023-5678", "CVE-2024-0727"],
    )
    assert [u["package"] for u in first["images"][0]["updates"]] == ["libssl1.1", "tzdata"]
    assert first["images"][0]["security_updates"] == 1


def test_a_fleet_without_pending_security_updates_exits_0(world, monkeypatch, capsys):
    support = Support("2.2.4", dt.date(2027, 11, 30))
    image = audit.ImageAudit("bullseye", "linux/amd64", "r@sha256:" + "4" * 64, (_pending("tzdata", 1, ()),))
    current = audit.ReleaseAudit(world.ctx.catalog.product("certified"), "2.2.4", support, world.ctx.version, (image,))
    monkeypatch.setattr(audit, "load_catalog", lambda: world.ctx.catalog)
    monkeypatch.setattr(audit, "newest_releases", lambda catalog, target, today: [world.ctx])
    monkeypatch.setattr(audit, "audit_release", lambda ctx, sources: current)
    audit.audit(None, None, TODAY)
    assert capsys.readouterr().out.splitlines()[0] == (
        "Astronomer Certified 2.2.4-1 (line 2.2.4, supported until 2027-11-30): current"
    )
