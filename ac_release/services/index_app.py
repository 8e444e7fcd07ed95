"""The embedded index's WSGI app: pypiserver behind a guard, storing an upload whole or not at all, as PyPI does.

The guard, on an upload (a POST), before it reads one byte of the body: the login is checked against the htpasswd
(401), the body must declare its length (411: none, or chunked; 400: not a number of bytes) and stay within
MAX_UPLOAD_BYTES (413). It then reads the body, and one cut short (a client killed mid-upload closes its connection
early; neither gunicorn nor bottle checks the body against Content-Length) is refused with 400: pypiserver gets
only whole bodies. What a refused client still sends, gunicorn reads past and discards on its way to the next
request of the connection: nothing keeps it.

The store: pypiserver writes a package in place under its final name, where a kill, a full disk or gunicorn's worker
timeout left a truncated file that every later run refused as other bytes. Here a package is written to a temporary
dot file in the packages directory (pypiserver lists no dot file), fsynced, then linked under its name, which never
replaces a stored package; the temporary files a kill leaves are removed when the index starts.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from ac_release.clients import faults

# An upload's limit, 100 MiB: PyPI's default file limit; the largest file published, the Airflow wheel, is 5-10 MB.
MAX_UPLOAD_BYTES = 100 << 20
# A failpoint of the crash tests (AC_RELEASE_FAULT, clients/faults.py): the store writes half the package under its
# temporary name and kills the index's process group.
STORE_FAULT = "during:index-store"
TEMPORARY_PREFIX, TEMPORARY_SUFFIX = ".upload-", ".part"

_IN_MEMORY = 1 << 20  # request bodies above 1 MiB are buffered on disk
_CHUNK = 1 << 20


def app(**pypiserver_options):
    """What gunicorn serves: `ac_release.services.index_app:app(roots=[...], ...)` (pip_index.py's options).
    gunicorn loads it once in its one worker, after any earlier worker died: no store is running then."""
    import pypiserver
    from pypiserver.backend import BackendProxy

    index = pypiserver.app(**pypiserver_options)
    config = index._pypiserver_config
    config.backend = BackendProxy(_atomic_backend(config))
    for root in config.backend.backend.roots:
        remove_temporary_files(root)
    return guard(index, config.auther)


def pypiserver_app(guarded):
    """The pypiserver app behind a guard made by `guard`."""
    return guarded.pypiserver


# -- the guard ---------------------------------------------------------------------------------------------------


def guard(index, auther):
    """`index` behind the checks of an upload; `auther(username, password)` checks a login against the htpasswd."""

    def guarded(environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST":
            return index(environ, start_response)
        if not _authenticated(environ, auther):
            return _refuse(
                start_response,
                "401 Unauthorized",
                "the upload needs the index's credentials (HTTP Basic): check the username and password",
                ("WWW-Authenticate", 'Basic realm="pypi"'),
            )
        length, refusal = _declared_length(environ)
        if refusal:
            return _refuse(start_response, *refusal)
        body = _whole_body(environ["wsgi.input"], length)
        if isinstance(body, str):
            return _refuse(start_response, "400 Bad Request", body)
        environ["wsgi.input"] = body
        return index(environ, start_response)

    guarded.pypiserver = index
    return guarded


def _authenticated(environ, auther) -> bool:
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        username, colon, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return bool(colon) and auther(username, password)


def _declared_length(environ) -> tuple[int, tuple[str, str] | None]:
    """(Content-Length, None), or (0, (status, message)) when the body's length is unusable."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return 0, ("411 Length Required", "an upload needs a Content-Length: send it whole, not chunked")
    declared = environ.get("CONTENT_LENGTH", "").strip()
    if not declared:
        return 0, ("411 Length Required", "an upload needs a Content-Length")
    if not (declared.isascii() and declared.isdigit()):  # no sign, spaces, underscores or other scripts' digits
        return 0, ("400 Bad Request", f"invalid Content-Length {declared[:40]!r}: a number of bytes")
    if len(declared) > len(str(MAX_UPLOAD_BYTES)) or int(declared) > MAX_UPLOAD_BYTES:
        message = f"the upload's Content-Length {declared[:40]} exceeds the index's limit of {MAX_UPLOAD_BYTES} bytes"
        return 0, ("413 Content Too Large", message)
    return int(declared), None


def _whole_body(stream: BinaryIO, length: int):
    """The body, read whole into a temporary file (rewound), or the message refusing a body cut short."""
    body = tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY)
    received = 0
    while received < length:
        chunk = stream.read(min(length - received, 1 << 16))
        if not chunk:
            body.close()
            return f"request body cut short: {received} of {length} bytes arrived, nothing stored"
        body.write(chunk)
        received += len(chunk)
    body.seek(0)
    return body


def _refuse(start_response, status: str, message: str, *headers: tuple[str, str]) -> list[bytes]:
    data = (message + "\n").encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data))), *headers]
    )
    return [data]


# -- the store ---------------------------------------------------------------------------------------------------


def _atomic_backend(config):
    from pypiserver.backend import SimpleFileBackend
    from pypiserver.bottle_wrapper import HTTPError

    class AtomicFileBackend(SimpleFileBackend):
        """pypiserver's file backend, storing a package whole under its name or not at all."""

        def add_package(self, filename: str, stream: BinaryIO) -> None:
            try:
                store(stream, self.roots[0], filename)
            except FileExistsError:  # another upload of the same file won the race
                raise HTTPError(409, f"Package {filename!r} already exists!") from None

    return AtomicFileBackend(config)


def store(stream: BinaryIO, root: Path, filename: str) -> None:
    """Write `stream` to a temporary file in `root`, fsync it, then link it as `filename` (FileExistsError when a
    package holds that name already). A failure leaves nothing; a kill leaves only the temporary file."""
    fd, temporary = tempfile.mkstemp(dir=root, prefix=f"{TEMPORARY_PREFIX}{filename}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            if faults.armed(STORE_FAULT):
                _write_half_then_die(stream, handle)
            shutil.copyfileobj(stream, handle, _CHUNK)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.link(temporary, root / filename)  # unlike rename, never replaces an existing file
    finally:
        os.unlink(temporary)
    _fsync_directory(root)


def remove_temporary_files(root: Path) -> None:
    for path in Path(root).glob(f"{TEMPORARY_PREFIX}*{TEMPORARY_SUFFIX}"):
        path.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_half_then_die(stream: BinaryIO, handle: BinaryIO) -> None:
    start = stream.tell()
    size = stream.seek(0, os.SEEK_END) - start
    stream.seek(start)
    handle.write(stream.read(size // 2))
    handle.flush()
    os.fsync(handle.fileno())
    faults.reached(STORE_FAULT)
