"""The index password goes only to the index's own origin (scheme, host, port): real servers on two ports."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

from ac_release.clients import index
from ac_release.model.config import IndexSettings, Secret
from tests.local_http import LocalHTTPServer

PASSWORD = "planted-index-password"
JSON = "application/vnd.pypi.simple.v1+json"
WHEEL = "apache_airflow-2.2.4+astro.1-py3-none-any.whl"


def _settings(url: str) -> IndexSettings:
    return IndexSettings(url=url + "/", username="ac-release", password=Secret(env="UNUSED"))


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for key, value in {"Content-Length": str(len(body)), **headers}.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def _simple(file_url: str) -> bytes:
    return json.dumps(
        {
            "meta": {"api-version": "1.0"},
            "name": "apache-airflow",
            "files": [{"filename": WHEEL, "url": file_url, "hashes": {"sha256": "ab" * 32}}],
        }
    ).encode()


def _authorized(server: LocalHTTPServer) -> list[str]:
    return [path for path, headers in server.requests if "Authorization" in headers]


def test_files_on_another_origin_get_no_credentials():
    with LocalHTTPServer(lambda h: _send(h, 200, b"wheel bytes")) as files:

        def serve_index(handler):
            _send(handler, 200, _simple(f"{files.url}/files/{WHEEL}"), **{"Content-Type": JSON})

        with LocalHTTPServer(serve_index) as pypi:
            found = index.project_files(_settings(pypi.url), PASSWORD, "apache-airflow")
            assert index.download(_settings(pypi.url), PASSWORD, found[WHEEL]) == b"wheel bytes"
    assert _authorized(pypi) == ["/simple/apache-airflow/"]
    assert [path for path, _ in files.requests] == [f"/files/{WHEEL}"]
    assert _authorized(files) == []


def test_a_redirect_off_the_index_origin_drops_the_credentials():
    with LocalHTTPServer(lambda h: _send(h, 200, _simple(f"/files/{WHEEL}"), **{"Content-Type": JSON})) as other:

        def redirect(handler):
            if handler.path.startswith("/simple/apache-airflow/"):
                _send(handler, 302, Location=f"{other.url}{handler.path}")
            else:  # a redirect within the index's origin keeps them
                _send(handler, 301, Location="/simple/apache-airflow/")

        with LocalHTTPServer(redirect) as pypi:
            index.project_files(_settings(pypi.url), PASSWORD, "apache-airflow")
            index.download(_settings(pypi.url), PASSWORD, index.IndexFile("", f"{pypi.url}/files/{WHEEL}"))
    assert _authorized(pypi) == ["/simple/apache-airflow/", f"/files/{WHEEL}", "/simple/apache-airflow/"]
    assert [path for path, _ in other.requests] == ["/simple/apache-airflow/", "/simple/apache-airflow/"]
    assert _authorized(other) == []


def test_same_origin_compares_scheme_host_and_port():
    same = index.same_origin
    assert same("https://pypi.example/simple/", "https://PYPI.example:443/files/a.whl")
    assert same("http://127.0.0.1:8080/", "http://127.0.0.1:8080/simple/x/")
    assert not same("https://pypi.example/", "http://pypi.example/simple/")  # a downgrade
    assert not same("https://pypi.example/", "https://pypi.example:8443/")
    assert not same("https://pypi.example/", "https://pypi.example.evil/")
    assert not same("https://pypi.example/", "https://files.pypi.example/")
