"""The twine upload against real local HTTP servers: a hung upload is bounded and the index re-read before a retry,
and the `during:upload-N` failpoint fires only once the file's bytes are reaching the index."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from ac_release.clients import proc
from ac_release.clients.upload import upload
from ac_release.core.errors import ReleaseError
from ac_release.model.config import IndexSettings, Secret
from tests.helpers import REPO
from tests.local_http import LocalHTTPServer

pytestmark = pytest.mark.integration

PASSWORD = "planted-upload-password"
JSON = "application/vnd.pypi.simple.v1+json"


def _sdist(directory: Path, payload: int) -> Path:
    """A valid sdist (twine reads its PKG-INFO) carrying `payload` incompressible bytes."""
    path = directory / "ac_release_upload_probe-1.0.tar.gz"
    pkg_info = b"Metadata-Version: 2.1\nName: ac-release-upload-probe\nVersion: 1.0\n"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in (("PKG-INFO", pkg_info), ("payload.bin", os.urandom(payload))):
            member = tarfile.TarInfo(f"ac_release_upload_probe-1.0/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def _index(url: str) -> IndexSettings:
    return IndexSettings(url=url + "/", username="ac-release", password=Secret(env="UNUSED"))


def _read_body(handler) -> int:
    length, read = int(handler.headers["Content-Length"]), 0
    while read < length:
        chunk = handler.rfile.read(min(65536, length - read))
        if not chunk:
            break
        read += len(chunk)
    return read


def _simple(handler, files: dict[str, str]) -> None:
    body = json.dumps(
        {
            "meta": {"api-version": "1.0"},
            "files": [{"filename": n, "url": n, "hashes": {"sha256": d}} for n, d in files.items()],
        }
    ).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", JSON)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class HangingIndex:
    """Takes the upload's bytes and never answers the first POST; serves `landed` on the simple page afterwards."""

    def __init__(self, artifact: Path, landed: str | None):
        self.artifact, self.landed, self.posts = artifact, landed, 0
        self.release = threading.Event()

    def __call__(self, handler) -> None:
        if handler.command == "POST":
            self.posts += 1
            _read_body(handler)
            if self.posts == 1:
                self.release.wait(60)  # the answer is lost
                return
            handler.send_response(200)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        _simple(handler, {self.artifact.name: self.landed} if self.landed else {})


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setitem(proc.TIMEOUTS, "twine upload", 8)
    monkeypatch.setattr(proc, "_STOP_GRACE", 1)
    monkeypatch.setattr("ac_release.clients.retry.backoff_sleep", lambda seconds: None)


@pytest.mark.parametrize("landed", ["ours", "absent", "other"])
def test_a_timed_out_upload_rereads_the_index_before_it_retries(tmp_path, fast, landed):
    artifact = _sdist(tmp_path, 1000)
    ours = hashlib.sha256(artifact.read_bytes()).hexdigest()
    index = HangingIndex(artifact, {"ours": ours, "absent": None, "other": "ab" * 32}[landed])
    with LocalHTTPServer(index) as server:
        try:
            if landed == "other":
                with pytest.raises(ReleaseError) as error:
                    upload(_index(server.url), artifact, PASSWORD)
                assert str(error.value) == (
                    f"the upload of {artifact.name} timed out, and {server.url}/ now serves it with sha256 "
                    f"{'ab' * 32}, ours is {ours}: published files are immutable, check the index"
                )
            else:
                outcome = upload(_index(server.url), artifact, PASSWORD)
                assert outcome == {"ours": "landed", "absent": "uploaded"}[landed]
        finally:
            index.release.set()
    methods = [path.split("/")[1] for path, _ in server.requests]
    # one hung POST, the index read, then (only when absent) the retried POST
    assert methods == {"ours": ["", "simple"], "absent": ["", "simple", ""], "other": ["", "simple"]}[landed]


class SlowIndex:
    """Reads the upload body slowly and records how much arrived; answers nothing (the client dies first)."""

    def __init__(self):
        self.received = 0
        self.length = None
        self.done = threading.Event()

    def __call__(self, handler) -> None:
        self.length = int(handler.headers["Content-Length"])
        while self.received < self.length:
            chunk = handler.rfile.read(min(65536, self.length - self.received))
            if not chunk:
                break
            self.received += len(chunk)
            time.sleep(0.01)
        self.done.set()


def test_the_upload_failpoint_fires_while_the_file_is_reaching_the_index(tmp_path):
    artifact = _sdist(tmp_path, 16 << 20)
    index = SlowIndex()
    script = (
        "import sys; from pathlib import Path; from ac_release.model.config import IndexSettings, Secret; "
        "from ac_release.clients.upload import upload; "
        "upload(IndexSettings(sys.argv[1], 'ac-release', Secret(env='UNUSED')), Path(sys.argv[2]), 'pw')"
    )
    with LocalHTTPServer(index) as server:
        killed = subprocess.run(
            [sys.executable, "-c", script, server.url + "/", str(artifact)],
            env={**os.environ, "AC_RELEASE_FAULT": "during:upload-1"},
            cwd=REPO,
            capture_output=True,
            start_new_session=True,  # the failpoint kills its whole process group
            timeout=120,
        )
        assert index.done.wait(30)
    assert killed.returncode == -9, killed.stderr.decode()
    assert index.length is not None and index.length > artifact.stat().st_size  # the upload request started ...
    assert 0 < index.received < index.length  # ... its bytes were flowing, and it was cut before the end


class BadGatewayIndex:
    """A proxy answers 502 to the first `bad_gateways` POSTs while the index behind it stores the file the first time:
    `stored` is what the index holds then ("ours", "other" bytes, or None). A POST of a stored file is refused as
    pypiserver does it for twine: 400. (twine itself sends an upload answered 5xx again, up to 5 times.)"""

    def __init__(self, artifact: Path, stored: str | None, bad_gateways: int):
        self.artifact, self.stored, self.bad_gateways, self.posts = artifact, stored, bad_gateways, 0
        self.digest = "ab" * 32 if stored == "other" else hashlib.sha256(artifact.read_bytes()).hexdigest()

    def __call__(self, handler) -> None:
        if handler.command == "GET":
            _simple(handler, {self.artifact.name: self.digest} if self.posts and self.stored else {})
            return
        _read_body(handler)
        self.posts += 1
        code = 502 if self.posts <= self.bad_gateways else 400 if self.stored else 200
        handler.send_response(code)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


@pytest.mark.parametrize(
    "stored, bad_gateways, outcome, requests",
    [
        ("ours", 1, "landed", ["", "", "simple"]),  # twine's own resend is refused: the index is asked
        (None, 1, "uploaded", ["", ""]),
        ("other", 1, "was refused (HTTPError: 400 Bad Request from {url}/)", ["", "", "simple"]),
        ("ours", 99, "landed", ["", "", "", "", "", "simple"]),  # twine gives up on 502: asked before a retry
        ("other", 99, "failed (HTTPError: 502 Bad Gateway from {url}/)", ["", "", "", "", "", "simple"]),
    ],
    ids=["ours-after-one-502", "absent", "other-after-one-502", "ours-after-502s", "other-after-502s"],
)
def test_an_upload_answered_502_asks_the_index_before_it_fails_or_retries(
    tmp_path, fast, stored, bad_gateways, outcome, requests
):
    artifact = _sdist(tmp_path, 1000)
    ours = hashlib.sha256(artifact.read_bytes()).hexdigest()
    index = BadGatewayIndex(artifact, stored, bad_gateways)
    with LocalHTTPServer(index) as server:
        if stored == "other":
            with pytest.raises(ReleaseError) as error:
                upload(_index(server.url), artifact, PASSWORD)
            assert str(error.value) == (
                f"the upload of {artifact.name} {outcome.format(url=server.url)}, and {server.url}/ now serves it "
                f"with sha256 {'ab' * 32}, ours is {ours}: published files are immutable, check the index"
            )
        else:
            assert upload(_index(server.url), artifact, PASSWORD) == outcome
    assert [path.split("/")[1] for path, _ in server.requests] == requests
