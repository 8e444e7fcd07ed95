"""kill -9 of the local Sigstore service in the middle of a Rekor append: it starts again with every complete entry,
and the sign stage signs against it as before."""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest

from ac_release.clients import faults
from ac_release.pipeline.run import run_stage
from ac_release.services import sigstore_local_rekor as rekor
from ac_release.supply_chain.signing import verify
from tests.helpers import hashedrekord_entry, wait_until_dead
from tests.integration.conftest import context_like

pytestmark = pytest.mark.integration


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _proposed_entry(text: str) -> bytes:
    return json.dumps(hashedrekord_entry(text)).encode()


def _stored(entry: dict) -> tuple:
    """What the log keeps of an entry (its proof's checkpoint is signed anew on every answer)."""
    (value,) = entry.values()
    return value["logIndex"], value["integratedTime"], value["body"], value["verification"]["signedEntryTimestamp"]


def test_kill_9_during_a_rekor_append_loses_no_entry_and_signing_goes_on(signed, services, tmp_path, monkeypatch):
    ctx, _ = signed
    sigstore = next(service for service in services.services() if service.name == "sigstore")
    url = sigstore.url(services.settings.host)
    size = _get(f"{url}/api/v1/log")["treeSize"]
    before = [_stored(_get(f"{url}/api/v1/log/entries?logIndex={index}")) for index in range(size)]
    entries_file = services.settings.sigstore_state / "log" / "entries.jsonl"

    services.supervisor.stop(sigstore, log=lambda _: None)
    monkeypatch.setenv(faults.ENV, rekor.APPEND_FAULT)  # only the service started now has it
    services.supervisor.start(sigstore, log=lambda _: None)
    monkeypatch.delenv(faults.ENV)
    pid = services.supervisor.pid(sigstore)
    assert pid is not None
    request = urllib.request.Request(f"{url}/api/v1/log/entries", data=_proposed_entry("torn"), method="POST")
    request.add_header("Content-Type", "application/json")
    with pytest.raises(OSError):  # the connection dies with the service
        urllib.request.urlopen(request, timeout=10)
    wait_until_dead(pid, "the Sigstore service")
    assert not entries_file.read_bytes().endswith(b"\n")  # half a line on disk

    services.up(log=lambda _: None)
    service_log = services.supervisor.log_file(sigstore).read_text()
    assert f"rekor log {entries_file}: cut off a torn last line" in service_log
    assert f"where entry {size} was being written" in service_log
    assert entries_file.read_bytes().endswith(b"\n")
    assert _get(f"{url}/api/v1/log")["treeSize"] == size
    assert [_stored(_get(f"{url}/api/v1/log/entries?logIndex={index}")) for index in range(size)] == before

    again = context_like(ctx, tmp_path)
    shutil.copytree(ctx.dist, again.dist)
    shutil.rmtree(again.bundles)
    result = run_stage(again, "sign")
    assert sorted(result.bundles) == sorted(signed[1].bundles)
    for name in result.bundles:
        verify(again, again.dist / name, again.bundles / f"{name}.sigstore.json")
    assert _get(f"{url}/api/v1/log")["treeSize"] > size
