"""A local Sigstore instance (OIDC issuer, Fulcio with a CT log, Rekor v1) that the real `sigstore` CLI and cosign use.

It also serves GitHub Actions' ID token endpoint (`GET /actions/token?api-version=2.0&audience=A` with
`Authorization: bearer <request token>`): a job registered with `register_actions_job` gets fresh GitHub-shaped tokens,
and Fulcio certifies them as public Fulcio does (the workflow URI and GitHub's extensions), so that clients run with
GITHUB_ACTIONS, ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN take production's ambient path.

Point the client at it with `sigstore --trust-config FILE ...`, where FILE comes from `write_trust_config`.
All key material and the log live in `state_dir`, so a restart keeps the same trusted root and a
continuing log: bundles signed before a restart still verify. The OIDC issuer is a fixed string, not
the server's URL, so bundles keep verifying with the same `--cert-oidc-issuer` whatever the port.

    python -m ac_release.services.sigstore_local serve --state-dir D --trust-config OUT [--host H] [--port P]
        [--certfile CERT --keyfile KEY]   (https: every URL in the trust config is then https)
    python -m ac_release.services.sigstore_local token --state-dir D --identity X
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import logging
import re
import secrets
import signal
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_text
from ac_release.services import sigstore_local_fulcio as fulcio
from ac_release.services import sigstore_local_rekor as rekor
from ac_release.services.sigstore_local_oidc import InvalidToken, issue_token, sign_claims, verify_token
from ac_release.services.sigstore_local_state import (
    InstanceState,
    key_id,
    load_or_create_state,
    spki_der,
    write_file_if_absent,
)

DEFAULT_ISSUER = "https://oidc.ac-release.local"
OPERATOR = "ac-release.local"
# A DSSE entry carries the whole envelope: an image SPDX SBOM attested by cosign is several MiB.
MAX_REQUEST_BYTES = 64 * 1024 * 1024

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
CLIENT_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
PEM_CHAIN = "application/pem-certificate-chain"

ACTIONS_TOKEN_PATH = "/actions/token"
ACTIONS_TOKEN_LIFETIME_S = 300  # like GitHub's: a job fetches a token per use and never keeps it
ACTIONS_JOBS_DIR = "actions-jobs"  # in the state dir: one file per request token, named by its sha256
# The longest lives a caller may ask for. An identity token is used once, to get a signing certificate.
MAX_IDENTITY_TOKEN_LIFETIME_S = 600
IDENTITY_TOKEN_LIMIT = "10 min: GitHub's Actions tokens live minutes, a signature takes one"
MAX_ACTIONS_JOB_LIFETIME_S = 6 * 3600
ACTIONS_JOB_LIMIT = "6 h: GitHub ends a job after 6 hours"

_logger = logging.getLogger(__name__)


class LocalSigstore:
    """OIDC + Fulcio + CT log + Rekor v1 on one local HTTP port (https with `tls`), persisted in `state_dir`."""

    def __init__(
        self,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        issuer: str = DEFAULT_ISSUER,
        tls: ServerCertificate | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port
        self.issuer = issuer
        self.tls = tls
        self.url = ""
        self._state: InstanceState = load_or_create_state(self.state_dir)
        self._log: rekor.TransparencyLog | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._state_lock: IO[bytes] | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve in a background thread; calling it again while serving does nothing."""
        if self._server is not None:
            return
        self._state_lock = _lock_state_dir(self.state_dir)
        try:
            self._log = rekor.TransparencyLog(self.state_dir / "log", self._state.rekor_key, self._state.tree_id)
            self._server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
            if self.tls is not None:
                self._server.socket = self.tls.server_context().wrap_socket(
                    self._server.socket,
                    server_side=True,
                    do_handshake_on_connect=False,  # in the handler's thread: a slow client never holds accept()
                )
        except BaseException:
            if self._server is not None:
                self._server.server_close()
                self._server = None
            self._log = None
            self._release_state_dir()
            raise
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"{'https' if self.tls else 'http'}://{_url_host(str(host))}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="sigstore-local", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None
        self._log = None
        self._release_state_dir()

    def __enter__(self) -> LocalSigstore:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what clients are given ------------------------------------------------------------------

    def identity_token(self, identity: str, lifetime_s: int = MAX_IDENTITY_TOKEN_LIFETIME_S) -> str:
        """A token for `identity` that this instance's Fulcio accepts; needs no running server."""
        check_identity_token_lifetime(lifetime_s)
        return issue_token(self._state.oidc_key, self.issuer, identity, lifetime_s)

    def register_actions_job(self, claims: dict[str, str], lifetime_s: int = 7200) -> str:
        """Register a GitHub Actions job (its claims: actions_identity.job_claims) and return its request token, the
        ACTIONS_ID_TOKEN_REQUEST_TOKEN with which `GET /actions/token` mints the job's identity tokens for
        `lifetime_s`. Only the token's sha256 is stored; needs no running server."""
        check_actions_job_lifetime(lifetime_s)
        jobs = self.state_dir / ACTIONS_JOBS_DIR
        jobs.mkdir(mode=0o700, exist_ok=True)
        now = time.time()
        for path in jobs.glob("*.json"):  # forget the jobs whose request token has expired
            if _read_json(path).get("expires", 0) < now:
                path.unlink(missing_ok=True)
        request_token = secrets.token_urlsafe(32)
        record = {"claims": claims, "expires": int(now) + lifetime_s}
        write_file_if_absent(_job_file(jobs, request_token), json.dumps(record).encode(), mode=0o600)
        return request_token

    def write_trust_config(self, path: Path) -> Path:
        """Write the ClientTrustConfig for `sigstore --trust-config`; the server must be started."""
        if not self.url:
            raise RuntimeError("start() the instance before writing its trust config")
        path = Path(path)
        # Whole or not at all: a client may read it while a restarted service rewrites it.
        atomic_write_text(path, json.dumps(self.client_trust_config(), indent=2) + "\n")
        return path

    def client_trust_config(self) -> dict:
        return {
            "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
            "trustedRoot": self._trusted_root(),
            "signingConfig": self._signing_config(),
        }

    def _trusted_root(self) -> dict:
        valid_for = {"start": _rfc3339(self._state)}
        ca_der = self._state.ca_cert.public_bytes(serialization.Encoding.DER)
        return {
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": [_log_instance(self.url, self._state.rekor_key.public_key(), valid_for)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": OPERATOR, "commonName": "ac-release-local-sigstore"},
                    "uri": self.url,
                    "certChain": {"certificates": [{"rawBytes": base64.b64encode(ca_der).decode()}]},
                    "validFor": valid_for,
                }
            ],
            "ctlogs": [_log_instance(self.url, self._state.ctlog_key.public_key(), valid_for)],
            "timestampAuthorities": [],
        }

    def _signing_config(self) -> dict:
        def service(url: str) -> dict:
            return {
                "url": url,
                "majorApiVersion": 1,
                "validFor": {"start": _rfc3339(self._state)},
                "operator": OPERATOR,
            }

        return {
            "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
            "caUrls": [service(self.url)],
            # Only for interactive sign-in, which this instance does not offer: pass --identity-token.
            "oidcUrls": [service(f"{self.url}/oidc")],
            "rekorTlogUrls": [service(self.url)],
            "tsaUrls": [],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        }

    # --- request handling (called from the HTTP handler threads) --------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, object]:
        """Route one request; return (HTTP status, JSON-able body or Raw)."""
        url = urlsplit(target)
        path = url.path.rstrip("/")
        query = parse_qs(url.query)
        log = self._log
        if log is None:
            return _error(HTTPStatus.SERVICE_UNAVAILABLE, "instance is stopping")
        if method == "GET" and path == "":
            return HTTPStatus.OK, {"service": "ac-release local sigstore", "issuer": self.issuer}
        if method == "POST" and path == "/api/v2/signingCert":
            return self._signing_cert(headers, body)
        if method == "POST" and path == "/api/v1/signingCert":
            return self._legacy_signing_cert(headers, body)
        if method == "GET" and path == ACTIONS_TOKEN_PATH:
            return self._actions_token(headers, query)
        if method == "GET" and path == "/api/v2/trustBundle":
            return HTTPStatus.OK, fulcio.trust_bundle_response(self._state.ca_cert)
        if method == "POST" and path == "/api/v1/log/entries":
            return _create_entry(log, body)
        if method == "GET" and path == "/api/v1/log/entries" and "logIndex" in query:
            return _found_or_404(log.entry_by_index(_int_or_minus_one(query["logIndex"][0])))
        if method == "GET" and (match := re.fullmatch(r"/api/v1/log/entries/([0-9a-fA-F]{64,80})", path)):
            return _found_or_404(log.entry_by_uuid(match.group(1)))
        if method == "GET" and path == "/api/v1/log":
            return HTTPStatus.OK, log.log_info()
        if method == "GET" and path == "/api/v1/log/publicKey":
            return HTTPStatus.OK, Raw(log.public_key_pem(), "application/x-pem-file")
        return _error(HTTPStatus.NOT_FOUND, f"no route for {method} {path or '/'}")

    def _signing_cert(self, headers: dict[str, str], body: bytes) -> tuple[int, object]:
        bearer = headers.get("authorization", "")
        bearer_token = bearer[len("Bearer ") :].strip() if bearer.lower().startswith("bearer ") else None
        try:
            token, csr = fulcio.parse_signing_cert_request(body, bearer_token)
            claims = verify_token(self._state.oidc_key.public_key(), token, self.issuer)
            public_key = fulcio.check_proof_of_possession(csr)
            certificate = fulcio.issue_signing_certificate(self._state, public_key, claims, self.issuer)
        except InvalidToken as exc:
            return _error(HTTPStatus.UNAUTHORIZED, str(exc))
        except fulcio.CertificateRequestRejected as exc:
            return _error(HTTPStatus.BAD_REQUEST, str(exc))
        return HTTPStatus.CREATED, fulcio.signing_cert_response(certificate, self._state.ca_cert)

    def _legacy_signing_cert(self, headers: dict[str, str], body: bytes) -> tuple[int, object]:
        """Fulcio v1, as cosign 2.x calls it: the token only as a Bearer header, a PEM chain back."""
        bearer = headers.get("authorization", "")
        if not bearer.lower().startswith("bearer ") or not bearer[len("Bearer ") :].strip():
            return _error(HTTPStatus.UNAUTHORIZED, "no identity token: send it as a Bearer Authorization header")
        try:
            request = fulcio.parse_legacy_signing_cert_request(body)
            claims = verify_token(self._state.oidc_key.public_key(), bearer[len("Bearer ") :].strip(), self.issuer)
            # The challenge is the token's subject, also for a GitHub Actions token (certified as its workflow URI).
            public_key = fulcio.check_legacy_proof_of_possession(request, fulcio.identity_from_claims(claims))
            certificate = fulcio.issue_signing_certificate(self._state, public_key, claims, self.issuer)
        except InvalidToken as exc:
            return _error(HTTPStatus.UNAUTHORIZED, str(exc))
        except fulcio.CertificateRequestRejected as exc:
            return _error(HTTPStatus.BAD_REQUEST, str(exc))
        # The SCT is embedded in the certificate: no detached `SCT` header.
        return HTTPStatus.CREATED, Raw(fulcio.legacy_signing_cert_response(certificate, self._state.ca_cert), PEM_CHAIN)

    def _actions_token(self, headers: dict[str, str], query: dict[str, list[str]]) -> tuple[int, object]:
        """GitHub Actions' ID token endpoint: a fresh token of the job that holds the request token."""
        scheme, _, request_token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not request_token.strip():
            return _error(HTTPStatus.UNAUTHORIZED, "no request token: send it as an `Authorization: bearer` header")
        job = _read_json(_job_file(self.state_dir / ACTIONS_JOBS_DIR, request_token.strip()))
        if not job:
            return _error(HTTPStatus.UNAUTHORIZED, "unknown request token")
        now = int(time.time())
        if job["expires"] < now:
            return _error(HTTPStatus.UNAUTHORIZED, "the request token has expired")
        audience = query.get("audience", [""])[0]
        if not audience:
            return _error(HTTPStatus.BAD_REQUEST, "no audience: add `audience=...` to the query")
        claims = job["claims"] | {
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ACTIONS_TOKEN_LIFETIME_S,
            "jti": secrets.token_hex(16),
        }
        return HTTPStatus.OK, {"value": sign_claims(self._state.oidc_key, claims)}

    def _release_state_dir(self) -> None:
        if self._state_lock is not None:
            self._state_lock.close()
            self._state_lock = None


def check_identity_token_lifetime(lifetime_s: int, name: str = "lifetime") -> None:
    _check_lifetime(lifetime_s, MAX_IDENTITY_TOKEN_LIFETIME_S, IDENTITY_TOKEN_LIMIT, name)


def check_actions_job_lifetime(lifetime_s: int, name: str = "lifetime") -> None:
    _check_lifetime(lifetime_s, MAX_ACTIONS_JOB_LIFETIME_S, ACTIONS_JOB_LIMIT, name)


def _check_lifetime(lifetime_s: int, maximum_s: int, why: str, name: str) -> None:
    if not 0 < lifetime_s <= maximum_s:
        raise ReleaseError(f"{name} {lifetime_s}: give a positive number of seconds, at most {maximum_s} ({why})")


@dataclass(frozen=True)
class ServerCertificate:
    """The certificate (and key) the service serves https with: the target's services' own (services/tls.py)."""

    certificate: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certificate, self.key)
        return context


@dataclass(frozen=True)
class Raw:
    """A non-JSON response body."""

    data: bytes
    content_type: str


def _create_entry(log: rekor.TransparencyLog, body: bytes) -> tuple[int, object]:
    try:
        canonical_body = rekor.canonicalize_proposed_entry(json.loads(body))
        return HTTPStatus.CREATED, log.append(canonical_body)
    except json.JSONDecodeError:
        return _error(HTTPStatus.BAD_REQUEST, "expected a JSON entry")
    except rekor.EntryRejected as exc:
        return _error(HTTPStatus.BAD_REQUEST, str(exc))
    except rekor.DuplicateEntry as exc:
        return _error(HTTPStatus.CONFLICT, str(exc))


def _found_or_404(entry: dict | None) -> tuple[int, object]:
    if entry is None:
        return _error(HTTPStatus.NOT_FOUND, "no such entry")
    return HTTPStatus.OK, entry


def _error(status: HTTPStatus, message: str) -> tuple[int, object]:
    # Both clients read `message`; Rekor's error model also wants `code`.
    return status, {"code": int(status), "message": message}


def _job_file(jobs: Path, request_token: str) -> Path:
    return jobs / f"{hashlib.sha256(request_token.encode()).hexdigest()}.json"


def _read_json(path: Path) -> dict:
    """The JSON object in `path`, or {} if there is none (a job file removed meanwhile)."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}


def _int_or_minus_one(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1


def _log_instance(url: str, public_key: ec.EllipticCurvePublicKey, valid_for: dict) -> dict:
    return {
        "baseUrl": url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": base64.b64encode(spki_der(public_key)).decode(),
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            "validFor": valid_for,
        },
        "logId": {"keyId": base64.b64encode(key_id(public_key)).decode()},
    }


def _rfc3339(state: InstanceState) -> str:
    return state.valid_from.strftime("%Y-%m-%dT%H:%M:%SZ")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _lock_state_dir(state_dir: Path) -> IO[bytes]:
    """Hold an exclusive lock so that two servers never append to the same log."""
    lock_file = (state_dir / "server.lock").open("wb")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        raise RuntimeError(f"{state_dir} is already served by another local Sigstore instance") from None
    return lock_file


def _body_length(method: str, header: str | None) -> tuple[int, tuple[int, object] | None]:
    """The request body's length from its Content-Length, or the refusal of a request whose body must not be read:
    none on a POST (411), not a number of bytes (400), over MAX_REQUEST_BYTES (413)."""
    if header is None:
        if method == "POST":  # chunked bodies too: no client of this service sends one
            return 0, _error(HTTPStatus.LENGTH_REQUIRED, "a request body needs a Content-Length header")
        return 0, None
    if not header.strip().isdigit() or not header.strip().isascii():
        return 0, _error(HTTPStatus.BAD_REQUEST, f"Content-Length {header[:20]}: expected a number of bytes")
    length = int(header)
    if length > MAX_REQUEST_BYTES:
        return 0, _error(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"request body of {length} bytes: at most {MAX_REQUEST_BYTES} are accepted",
        )
    return length, None


def _handler_for(instance: LocalSigstore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ac-release-sigstore-local"
        timeout = 60  # seconds a client may stall within a request (its TLS handshake, headers or body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            length, refusal = _body_length(method, self.headers.get("Content-Length"))
            if refusal is not None:  # the body is never read: answer, then close the connection
                self.close_connection = True
                self._reply(*refusal)
                return
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                status, payload = instance.handle(method, self.path, headers, body)
            except Exception:
                _logger.exception("local sigstore failed on %s %s", method, self.path)
                status, payload = _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
            self._reply(status, payload)

        def _reply(self, status: int, payload: object) -> None:
            if isinstance(payload, Raw):
                data, content_type = payload.data, payload.content_type
            else:
                data, content_type = json.dumps(payload).encode(), "application/json"
            self.send_response(status)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (signature of the base)
            _logger.debug("%s %s", self.address_string(), format % args)

    return Handler


# --- command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.command == "serve" and (args.certfile is None) != (args.keyfile is None):
        print("error: give both --certfile and --keyfile, or neither", file=sys.stderr)
        return 2
    if args.command == "token":
        try:
            check_identity_token_lifetime(args.lifetime, "--lifetime")
        except ReleaseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        instance = LocalSigstore(args.state_dir, issuer=args.issuer)
        print(instance.identity_token(args.identity, lifetime_s=args.lifetime))
        return 0
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    # Its log is the service's log file (the supervisor points stdout and stderr there).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sigstore: %(message)s", stream=sys.stderr)
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    tls = ServerCertificate(args.certfile, args.keyfile) if args.certfile else None
    instance = LocalSigstore(args.state_dir, host=args.host, port=args.port, issuer=args.issuer, tls=tls)
    try:
        instance.start()
    except ReleaseError as exc:  # e.g. a corrupted log: one line, the last of the log, which `services.up` shows
        print(f"sigstore: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        instance.write_trust_config(args.trust_config)
        print(f"ready {instance.url}", flush=True)
        while not stop_requested.wait(timeout=1):
            pass
    finally:
        instance.stop()
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ac_release.services.sigstore_local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the instance until SIGTERM/SIGINT")
    serve.add_argument("--state-dir", type=Path, required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--trust-config", type=Path, required=True, help="where to write the ClientTrustConfig")
    serve.add_argument("--issuer", default=DEFAULT_ISSUER)
    serve.add_argument("--certfile", type=Path, help="serve https with this PEM certificate (and --keyfile)")
    serve.add_argument("--keyfile", type=Path, help="the certificate's PEM private key")

    token = commands.add_parser("token", help="print a fresh identity token (no server needed)")
    token.add_argument("--state-dir", type=Path, required=True)
    token.add_argument("--identity", required=True, help="an email address or a URI")
    token.add_argument(
        "--lifetime",
        type=int,
        default=MAX_IDENTITY_TOKEN_LIFETIME_S,
        help=f"seconds, at most {MAX_IDENTITY_TOKEN_LIFETIME_S}",
    )
    token.add_argument("--issuer", default=DEFAULT_ISSUER)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
