"""Network faults against real local HTTP servers: retries of a cut body, credentials kept to the index's origin."""

from __future__ import annotations

import socket
import urllib.request
from http.server import BaseHTTPRequestHandler

import pytest

from ac_release.clients.retry import RetriesSpent, retry
from ac_release.core.errors import ReleaseError
from tests.local_http import LocalHTTPServer


def _cut_body(handler: BaseHTTPRequestHandler) -> None:
    """Promise 1000 bytes, send 10, hang up."""
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b"0123456789")
    handler.wfile.flush()
    handler.connection.shutdown(socket.SHUT_RDWR)


def test_a_body_cut_mid_transfer_is_retried_then_reported_in_one_line():
    delays: list[float] = []
    with LocalHTTPServer(_cut_body) as server:

        def fetch() -> bytes:
            with urllib.request.urlopen(server.url + "/file", timeout=10) as response:
                return response.read()

        with pytest.raises(ReleaseError) as error:
            retry(fetch, what="download of file", attempts=3, sleep=delays.append)
    assert len(server.requests) == 3
    assert delays == [1.0, 2.0]
    assert isinstance(error.value, RetriesSpent)  # what a caller that may go on without an answer catches
    assert str(error.value) == (
        "download of file failed after 3 attempts: IncompleteRead(10 bytes read, 990 more expected)"
    )


def test_a_body_cut_once_then_served_whole_succeeds():
    calls = []

    def flaky(handler):
        calls.append(1)
        if len(calls) == 1:
            _cut_body(handler)
            return
        handler.send_response(200)
        handler.send_header("Content-Length", "4")
        handler.end_headers()
        handler.wfile.write(b"done")

    with LocalHTTPServer(flaky) as server:

        def fetch() -> bytes:
            with urllib.request.urlopen(server.url + "/file", timeout=10) as response:
                return response.read()

        assert retry(fetch, what="download", sleep=lambda _: None) == b"done"
