"""The embedded index stores an upload whole or not at all, like PyPI: a client killed mid-upload leaves nothing.

Found by CI: the kill-and-resume test's `during:upload-2` left a truncated apache-airflow wheel on the index, and
every later run refused "the index serves other bytes"."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import urllib.parse

import pytest

from ac_release.model.config import load_settings
from ac_release.services.manager import LocalServices
from tests.helpers import write_config

pytestmark = pytest.mark.integration

NAME = "truncated-1.0-py3-none-any.whl"


def _upload_request(url: str, username: str, password: str, content: bytes) -> tuple[tuple[str, int], bytes, bytes]:
    """(address, head, body) of the multipart request `twine upload` sends for `content`."""
    boundary = "ac-release-test-boundary"
    fields = {":action": "file_upload", "name": "truncated", "version": "1.0", "protocol_version": "1"}
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{NAME}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body += content + f"\r\n--{boundary}--\r\n".encode()
    parsed = urllib.parse.urlsplit(url)
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    head = (
        f"POST {parsed.path or '/'} HTTP/1.1\r\nHost: {parsed.netloc}\r\nAuthorization: Basic {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n"
    ).encode()
    return (parsed.hostname, parsed.port), head, body


def _send(address: tuple[str, int], data: bytes) -> bytes:
    with socket.create_connection(address, timeout=30) as connection:
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)  # what the kernel does for a client killed mid-body
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_an_upload_cut_short_stores_nothing_and_a_whole_one_is_stored(tmp_path):
    settings = load_settings(write_config(tmp_path))
    services = LocalServices(settings.services)
    index = settings.target("local").index
    try:
        services.up(log=lambda _: None)
        content = os.urandom(300_000)
        address, head, body = _upload_request(index.upload_url, index.username, index.password.read(), content)
        packages = services.pypi_dir / "packages"

        cut = _send(address, head + body[: len(body) // 2])
        assert not (packages / NAME).exists(), "the index stored half an upload"
        assert cut.split(b"\r\n", 1)[0] == b"HTTP/1.1 400 Bad Request", cut[:200]

        whole = _send(address, head + body)
        assert whole.split(b" ", 2)[1] in (b"200", b"201"), whole[:300]
        assert hashlib.sha256((packages / NAME).read_bytes()).digest() == hashlib.sha256(content).digest()
    finally:
        services.down(log=lambda _: None)


def _status_before_the_body(address: tuple[str, int], head: bytes) -> bytes:
    """The status line the index answers to an upload's head alone: it must answer without waiting for the body."""
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(head)
        answer = b""
        while b"\r\n" not in answer and (chunk := connection.recv(65536)):
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def test_an_upload_is_refused_before_its_body_when_unauthenticated_unbounded_or_too_large(tmp_path):
    from ac_release.services.index_app import MAX_UPLOAD_BYTES

    settings = load_settings(write_config(tmp_path))
    services = LocalServices(settings.services)
    index = settings.target("local").index
    try:
        services.up(log=lambda _: None)
        address, head, _ = _upload_request(index.upload_url, index.username, index.password.read(), b"x" * 1000)
        unauthenticated = re.sub(rb"Authorization: [^\r]*\r\n", b"", head)
        chunked = head.replace(b"Content-Length: ", b"Transfer-Encoding: chunked\r\nX-Was-Length: ")
        too_large = re.sub(rb"Content-Length: \d+", f"Content-Length: {MAX_UPLOAD_BYTES + 1}".encode(), head)

        assert _status_before_the_body(address, unauthenticated) == b"HTTP/1.1 401 Unauthorized"
        assert _status_before_the_body(address, chunked) == b"HTTP/1.1 411 Length Required"
        assert _status_before_the_body(address, too_large) == b"HTTP/1.1 413 Content Too Large"
        assert list((services.pypi_dir / "packages").iterdir()) == []
    finally:
        services.down(log=lambda _: None)
