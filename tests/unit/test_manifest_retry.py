import json
import urllib.error

import pytest

from ac_release.clients.retry import Transient, retry
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_bytes
from ac_release.model.manifest import Manifest
from ac_release.model.records import Artifact, PublishRecord, WheelRecord

WHEEL = WheelRecord("f" * 64, {"a.whl": Artifact("00", 3)}, {}, "buildenv", 1645660800)


def test_manifest_records_typed_stages_atomically(tmp_path):
    manifest = Manifest.load(tmp_path, "2.2.4-1")
    assert not manifest.path.exists()  # loading writes nothing
    manifest.put(WHEEL)
    manifest.put(PublishRecord("http://index/", {"a.whl": "00"}, ["a.whl"]), "local")
    data = json.loads((tmp_path / "release.json").read_text())
    assert data["schema"] == 2 and data["version"] == "2.2.4-1"
    assert data["wheel"]["artifacts"] == {"a.whl": {"sha256": "00", "size": 3}}
    assert data["targets"] == {
        "local": {"publish": {"index": "http://index/", "files": {"a.whl": "00"}, "uploaded": ["a.whl"]}}
    }
    again = Manifest.load(tmp_path, "2.2.4-1")
    assert again.get(WheelRecord) == WHEEL
    assert again.get(PublishRecord, "local").files == {"a.whl": "00"}
    assert again.get(PublishRecord, "staging") is None  # a record of one target is never read as another's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.json"]


def test_manifest_of_another_version_is_refused(tmp_path):
    Manifest.load(tmp_path, "2.2.4-1").put(WHEEL)
    with pytest.raises(ReleaseError, match=r"release.json belongs to '2.2.4-1' \(schema 2\), not 2.2.4-2$"):
        Manifest.load(tmp_path, "2.2.4-2")


def test_atomic_write_leaves_old_content_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "file.whl"
    target.write_bytes(b"old")

    def explode(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", explode)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.whl"]


def test_retry_recovers_from_transient_failures_with_backoff():
    delays, calls = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise urllib.error.URLError("connection refused")
        return "ok"

    assert retry(flaky, what="x", sleep=delays.append) == "ok"
    assert delays == [1.0, 2.0]


def test_retry_gives_up_with_one_clear_line():
    delays = []

    def down():
        raise Transient("503 Service Unavailable")

    with pytest.raises(ReleaseError) as error:
        retry(down, what="upload of a.whl", attempts=3, sleep=delays.append)
    assert str(error.value) == "upload of a.whl failed after 3 attempts: 503 Service Unavailable"
    assert delays == [1.0, 2.0]


def test_retry_does_not_retry_a_final_error():
    calls = []

    def refused():
        calls.append(1)
        raise ReleaseError("bad credentials")

    with pytest.raises(ReleaseError, match="bad credentials"):
        retry(refused, what="x", sleep=lambda _: None)
    assert calls == [1]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"[]", "a JSON list, not an object"),
        (b"{}", "no schema, version, wheel, targets"),
        (b'{"schema": 2, "version": "2.2.4-1", "wheel": null}', "no targets"),
        (
            b'{"schema": 2, "version": "2.2.4-1", "wheel": null, "targets": []}',
            "targets is not an object of per-target stage records",
        ),
        (
            b'{"schema": 2, "version": "2.2.4-1", "wheel": null, "targets": {"local": 3}}',
            "targets is not an object of per-target stage records",
        ),
        (
            b'{"schema": 2, "version": "2.2.4-1", "wheel": null, "targets": {"local": {"sign": 3}}}',
            "targets.local.sign is not an object",
        ),
        (
            b'{"schema": 2, "version": "2.2.4-1", "wheel": null, "targets": {"local": {"deploy": {}}}}',
            "unknown stage 'deploy' under targets.local",
        ),
        (
            b'{"schema": 2, "version": "2.2.4-1", "wheel": {"inputs": "x"}, "targets": {}}',
            "wheel is not a wheel record: WheelRecord.__init__() missing 4 required positional arguments: "
            "'artifacts', 'checks', 'buildenv', and 'source_date_epoch'",
        ),
        (
            b'{"schema": 2, "version": "2.2.4-1", "wheel": [], "targets": {}}',
            "wheel is not an object",
        ),
        (b'{"schema": 1, "version": "2.2.4-1", "stages": {}}', "no wheel, targets"),
        (
            b'{"schema": 1, "version": "2.2.4-1", "wheel": null, "targets": {}}',
            "schema 1, this pipeline reads schema 2",
        ),
        (b'{"schema": 2, "version": 7, "wheel": null, "targets": {}}', "version is not a string"),
        (b'"text"', "a JSON string, not an object"),
        (b"\xff\xfe{}", "not UTF-8: byte 0xff at offset 0"),
        (b"{", "not JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    ],
)
def test_corrupt_manifest_is_one_line_naming_the_file_and_what_to_do(tmp_path, content, problem):
    (tmp_path / "release.json").write_bytes(content)
    with pytest.raises(ReleaseError) as error:
        Manifest.load(tmp_path, "2.2.4-1")
    assert str(error.value) == (
        f"{tmp_path / 'release.json'} is not a valid release manifest ({problem}): restore it or remove "
        f"{tmp_path} to start over"
    )


def test_manifest_that_is_a_directory_is_one_line(tmp_path):
    (tmp_path / "release.json").mkdir()
    with pytest.raises(ReleaseError) as error:
        Manifest.load(tmp_path, "2.2.4-1")
    assert str(error.value) == (
        f"{tmp_path / 'release.json'} is not a valid release manifest (a directory): restore it or remove "
        f"{tmp_path} to start over"
    )


def test_a_test_that_skips_the_backoff_pauses_leaves_every_other_sleep_alone(monkeypatch):
    """The integration tests skip retry pauses by setting `retry.backoff_sleep`: they once set `time.sleep` itself,
    which retry never read (its default was bound at import) while the supervisor's 5 s wait for a stopped service's
    processes then ended at once, and the port it checked next was still held (test_index_crash, under load)."""
    import time

    from ac_release.clients import retry as module

    pauses: list[float] = []
    monkeypatch.setattr(module, "backoff_sleep", pauses.append)
    calls = iter([urllib.error.URLError("down"), urllib.error.URLError("down"), "ok"])

    def flaky():
        answer = next(calls)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retry(flaky, what="x") == "ok"
    assert pauses == [1.0, 2.0]
    assert time.sleep is not pauses.append and time.sleep.__module__ == "time"
