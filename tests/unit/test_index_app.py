"""The embedded index's guard and store (services/index_app.py), driving the WSGI app gunicorn serves (pypiserver
behind the guard, with pip_index.py's options) with real requests: an upload is authenticated, its length checked
and capped before one byte of its body is read, and a package is stored whole under its name or not at all."""

from __future__ import annotations

import base64
import errno
import io
import wsgiref.util

import pytest

from ac_release.services import index_app
from ac_release.services.htpasswd import write_htpasswd
from ac_release.services.pip_index import index_app_options

USER, PASSWORD = "ac-release", "the-upload-password"
NAME = "probe-1.0-py3-none-any.whl"


class Body(io.BytesIO):
    """A request body that counts what the app read of it."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self.bytes_read += len(line)
        return line


def multipart(content: bytes, filename: str = NAME) -> tuple[str, bytes]:
    """(content type, body) of the request `twine upload` sends for `content`."""
    boundary = "ac-release-test-boundary"
    fields = {":action": "file_upload", "name": "probe", "version": "1.0", "protocol_version": "1"}
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body += content + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call(app, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[str, bytes, Body]:
    """(status line, response body, the request body) of one request; `headers` are CGI names (CONTENT_LENGTH=...)."""
    request_body = Body(body)
    environ: dict = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": request_body}
    wsgiref.util.setup_testing_defaults(environ)
    environ.update(headers)
    answer: list[str] = []
    chunks = app(environ, lambda status, _headers, exc_info=None: answer.append(status))
    data = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return answer[0], data, request_body


def upload(app, content: bytes, **headers: str) -> tuple[str, bytes, Body]:
    content_type, body = multipart(content)
    headers = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)), **headers}
    headers.setdefault("HTTP_AUTHORIZATION", basic(USER, PASSWORD))
    return call(app, "POST", "/", body, **{k: v for k, v in headers.items() if v is not None})


@pytest.fixture
def packages(tmp_path):
    directory = tmp_path / "packages"
    directory.mkdir()
    return directory


@pytest.fixture
def app(tmp_path, packages):
    htpasswd = tmp_path / "htpasswd"
    write_htpasswd(htpasswd, USER, PASSWORD)
    return index_app.app(**index_app_options(packages, htpasswd))


def test_a_whole_upload_is_stored_under_its_name_and_nothing_else(app, packages):
    content = b"wheel bytes " * 100_000
    status, _, body = upload(app, content)
    assert status.startswith("200"), status
    assert body.bytes_read == len(multipart(content)[1])
    assert [p.name for p in packages.iterdir()] == [NAME]
    assert (packages / NAME).read_bytes() == content


@pytest.mark.parametrize(
    "authorization",
    [None, basic(USER, "not-the-password"), basic("someone-else", PASSWORD), "Basic !!not-base64", "Bearer x"],
    ids=["none", "wrong-password", "wrong-user", "garbled", "not-basic"],
)
def test_an_upload_without_valid_credentials_gets_401_before_its_body_is_read(app, packages, authorization):
    status, answer, body = upload(app, b"x" * 300_000, HTTP_AUTHORIZATION=authorization)
    assert body.bytes_read == 0
    assert status == "401 Unauthorized"
    assert answer == b"the upload needs the index's credentials (HTTP Basic): check the username and password\n"
    assert list(packages.iterdir()) == []


@pytest.mark.parametrize(
    "headers, status, message",
    [
        ({"CONTENT_LENGTH": None}, "411 Length Required", "an upload needs a Content-Length"),
        (
            {"CONTENT_LENGTH": None, "HTTP_TRANSFER_ENCODING": "chunked"},
            "411 Length Required",
            "an upload needs a Content-Length: send it whole, not chunked",
        ),
        ({"CONTENT_LENGTH": "-5"}, "400 Bad Request", "invalid Content-Length '-5': a number of bytes"),
        ({"CONTENT_LENGTH": "12abc"}, "400 Bad Request", "invalid Content-Length '12abc': a number of bytes"),
        ({"CONTENT_LENGTH": "１２"}, "400 Bad Request", "invalid Content-Length '１２': a number of bytes"),
        (
            {"CONTENT_LENGTH": "9" * 5000},
            "413 Content Too Large",
            f"the upload's Content-Length {'9' * 40} exceeds the index's limit of {100 << 20} bytes",
        ),
    ],
    ids=["no-length", "chunked", "negative", "not-a-number", "other-digits", "thousands-of-digits"],
)
def test_an_upload_without_a_usable_length_is_refused_unread(app, packages, headers, status, message):
    got, answer, body = upload(app, b"x" * 1000, **headers)
    assert body.bytes_read == 0
    assert (got, answer.decode()) == (status, message + "\n")
    assert list(packages.iterdir()) == []


def test_an_upload_above_the_cap_gets_413_unread(app, packages):
    cap = index_app.MAX_UPLOAD_BYTES
    assert cap == 100 << 20  # PyPI's default file limit; the Airflow wheel is about 10 MB
    status, answer, body = upload(app, b"x" * 1000, CONTENT_LENGTH=str(cap + 1))
    assert status == "413 Content Too Large"
    assert answer == f"the upload's Content-Length {cap + 1} exceeds the index's limit of {cap} bytes\n".encode()
    assert body.bytes_read == 0
    assert list(packages.iterdir()) == []


def test_an_upload_cut_short_stores_nothing(app, packages):
    content_type, whole = multipart(b"x" * 300_000)
    status, answer, _ = call(
        app,
        "POST",
        "/",
        whole[: len(whole) // 2],
        CONTENT_TYPE=content_type,
        CONTENT_LENGTH=str(len(whole)),
        HTTP_AUTHORIZATION=basic(USER, PASSWORD),
    )
    assert status == "400 Bad Request"
    assert answer.startswith(b"request body cut short: ")
    assert list(packages.iterdir()) == []


class FullDisk(io.BytesIO):
    """A package stream whose store fails after its first MiB, as a full disk or a cut worker does."""

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= 1 << 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().read(min(size if size is not None and size >= 0 else 1 << 20, 1 << 20))


def test_a_store_that_fails_midway_leaves_no_file_under_the_package_name(app, packages):
    backend = app_config(app).backend
    with pytest.raises(OSError):
        backend.add_package(NAME, FullDisk(b"x" * (3 << 20)))
    assert list(packages.iterdir()) == []


def test_a_store_never_replaces_a_stored_package(app, packages):
    assert upload(app, b"first bytes")[0].startswith("200")
    with pytest.raises(Exception):  # noqa: B017 - pypiserver's HTTPError (409) or FileExistsError
        app_config(app).backend.add_package(NAME, io.BytesIO(b"other bytes"))
    assert (packages / NAME).read_bytes() == b"first bytes"
    assert [p.name for p in packages.iterdir()] == [NAME]


def test_a_temporary_file_a_kill_left_is_not_listed_and_is_removed_at_the_next_start(tmp_path, packages, app):
    left = packages / f"{index_app.TEMPORARY_PREFIX}{NAME}.k1ll3d{index_app.TEMPORARY_SUFFIX}"
    left.write_bytes(b"half a wheel")
    for path in ("/simple/", "/simple/probe/", "/packages/"):
        status, page, _ = call(app, "GET", path)
        assert status.startswith(("200", "404")) and b"k1ll3d" not in page, (path, status, page)
    index_app.app(**index_app_options(packages, tmp_path / "htpasswd"))  # the index starts again
    assert list(packages.iterdir()) == []


def app_config(app):
    """pypiserver's config of the app behind the guard."""
    return index_app.pypiserver_app(app)._pypiserver_config
