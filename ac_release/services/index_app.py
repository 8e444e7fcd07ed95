"""The embedded index's WSGI app: pypiserver, handed only request bodies that arrived whole.

A client killed in the middle of an upload (a runner cancelled, a kill -9) closes its connection early. Neither
gunicorn nor pypiserver's bottle checks the body against Content-Length: bottle parses the bytes that came and
pypiserver stores the truncated file under the artifact's name, where "published files never change" then refuses
every later run. PyPI stores an upload whole or not at all; so does this index.
"""

from __future__ import annotations

import tempfile

_IN_MEMORY = 1 << 20  # bodies above 1 MiB are buffered on disk


def whole_bodies(app):
    """`app` behind a guard that reads the whole body first and answers 400, without calling `app`, when the
    connection ended before Content-Length bytes came."""

    def guarded(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length <= 0:
            return app(environ, start_response)
        body = tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY)
        received = 0
        while received < length:
            chunk = environ["wsgi.input"].read(min(length - received, 1 << 16))
            if not chunk:
                break
            body.write(chunk)
            received += len(chunk)
        if received < length:
            body.close()
            message = f"request body cut short: {received} of {length} bytes arrived, nothing stored\n".encode()
            start_response("400 Bad Request", [("Content-Type", "text/plain"), ("Content-Length", str(len(message)))])
            return [message]
        body.seek(0)
        environ["wsgi.input"] = body
        return app(environ, start_response)

    return guarded


def app(**pypiserver_options):
    """What gunicorn serves: `ac_release.services.index_app:app(roots=[...], ...)`."""
    import pypiserver

    return whole_bodies(pypiserver.app(**pypiserver_options))
