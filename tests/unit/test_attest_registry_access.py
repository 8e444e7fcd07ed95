"""How cosign, syft and the release-files client reach a registry of the staging kind (TLS with the target's own CA,
htpasswd credentials from the environment), and a plain-HTTP loopback registry without credentials (the local
target): the CA bundle and a private login in the environment, never an insecure flag or a secret on a command line.
The release-files client is checked against real HTTPS and HTTP servers on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import ssl
import stat
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from ac_release.clients import oci_release_files as release_files
from ac_release.core.errors import ReleaseError
from ac_release.model.config import Registry, RegistryAccess, Secret, Signer
from ac_release.services.tls import ensure_server_certificate
from ac_release.supply_chain import cosign, sbom
from ac_release.supply_chain.cosign import ImageReference, Trust
from tests.local_http import LocalHTTPServer

DIGEST = "sha256:" + "ab" * 32
USER = "ac-release+staging"
PASSWORD_ENV = "AC_TEST_REGISTRY_PASSWORD"
PASSWORD = "planted-registry-password-9f3c"
TOKEN = "planted.identity.token"
INSECURE = ("--allow-http-registry", "--allow-insecure-registry", "--registry-password", "--registry-token")


@pytest.fixture
def tls_dir(tmp_path) -> Path:
    """The layout services.up writes: tls/ca/ca.crt, and the server's certificate and key beside it."""
    tls = tmp_path / "tls"
    ensure_server_certificate(tls / "ca" / "ca.crt", tls / "server.crt", tls / "server.key", "127.0.0.1")
    return tls


def staging_registry(tls: Path, host: str = "127.0.0.1:5443", path: str = "astronomer/ap-airflow") -> Registry:
    access = RegistryAccess(tls_verify=True, ca_dir=tls / "ca", username=USER, password=Secret(env=PASSWORD_ENV))
    return Registry(f"{host}/{path}", access)


@pytest.fixture
def password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    return PASSWORD


def assert_ca_bundle(env: dict[str, str], tls: Path) -> None:
    bundle = Path(env["SSL_CERT_FILE"]).read_bytes()
    assert bundle.endswith((tls / "ca" / "ca.crt").read_bytes())
    machine = ssl.get_default_verify_paths().cafile
    if machine and Path(machine).is_file() and not os.environ.get("SSL_CERT_FILE"):
        assert bundle.startswith(Path(machine).read_bytes().rstrip(b"\n"))  # the machine's CAs are kept


def assert_private_login(env: dict[str, str], host: str) -> None:
    directory = Path(env["DOCKER_CONFIG"])
    config = directory / "config.json"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700 and stat.S_IMODE(config.stat().st_mode) == 0o600
    auths = json.loads(config.read_text())["auths"]
    assert list(auths) == [host]
    assert base64.b64decode(auths[host]["auth"]).decode() == f"{USER}:{PASSWORD}"


def test_a_reference_of_a_target_registry_carries_its_access(tls_dir):
    registry = staging_registry(tls_dir)
    image = ImageReference.of(registry, DIGEST)
    assert str(image) == f"{registry}@{DIGEST}" and image.access == registry.access
    assert image.registry == registry and image.registry.access == registry.access
    # a bare string on loopback keeps the local target's default: plain HTTP, no login of its own
    bare = ImageReference.parse(f"127.0.0.1:5443/astronomer/ap-airflow@{DIGEST}")
    assert bare == image and not bare.access.tls_verify and bare.access.username is None


def test_cosign_gets_the_ca_bundle_and_a_private_login_in_its_environment_only(tls_dir, password, tmp_path):
    """The staging registry is on loopback, yet TLS: no plain-HTTP flag, and the secrets only in the environment."""
    image = ImageReference.of(staging_registry(tls_dir), DIGEST)
    args = [
        *cosign._signing_args(Trust.public(), image),
        *cosign.certificate_args(Signer("release@x", "https://i")),
        *cosign._registry_args(image),
    ]
    assert not [arg for arg in args if arg.startswith(INSECURE)]
    with cosign.environment(Trust.public(), image, token=TOKEN) as env:
        assert_ca_bundle(env, tls_dir)
        assert_private_login(env, image.host)
        assert env[cosign.COSIGN_TOKEN_ENV] == TOKEN
        login = Path(env["DOCKER_CONFIG"])
    assert not login.exists()  # the login lives for the one call
    assert not any(PASSWORD in arg or TOKEN in arg for arg in args)


def test_cosign_sign_and_attest_put_no_secret_on_the_command_line(tls_dir, password, tmp_path, monkeypatch):
    """What cosign is started with, as sign_image and attest_image start it (the login file is read at that time)."""
    calls = []

    def record(argv, env, **kwargs):
        login = json.loads((Path(env["DOCKER_CONFIG"]) / "config.json").read_text())
        calls.append((argv, env["SSL_CERT_FILE"], login))
        return cosign.subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(cosign.subprocess, "run", record)
    monkeypatch.setattr(cosign, "cosign_binary", lambda: "cosign")
    image = ImageReference.of(staging_registry(tls_dir), DIGEST)
    predicate = tmp_path / "sbom.cdx.json"
    predicate.write_text("{}")
    cosign.sign_image(Trust.public(), image, TOKEN)
    cosign.attest_image(Trust.public(), image, predicate, "cyclonedx", TOKEN)
    assert [argv[1] for argv, _, _ in calls] == ["sign", "attest"]
    for argv, bundle, login in calls:
        assert argv[-1] == str(image)
        assert not any(PASSWORD in arg or TOKEN in arg or arg.startswith(INSECURE) for arg in argv)
        assert Path(bundle).read_bytes().endswith((tls_dir / "ca" / "ca.crt").read_bytes())
        assert image.host in login["auths"]


def test_cosign_reaches_a_plain_http_loopback_registry_as_before(monkeypatch):
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    image = ImageReference.of("127.0.0.1:5000/astronomer/ap-airflow", DIGEST)
    assert cosign._registry_args(image) == ["--allow-http-registry"]
    with cosign.environment(Trust.public(), image) as env:
        assert "DOCKER_CONFIG" not in env and "SSL_CERT_FILE" not in env and cosign.COSIGN_TOKEN_ENV not in env


def test_a_tls_registry_without_a_login_of_its_own_keeps_the_users_docker_login(tls_dir, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", "/home/user/.docker")
    access = RegistryAccess(tls_verify=True, ca_dir=tls_dir / "ca")
    image = ImageReference.of(Registry("127.0.0.1:5443/astronomer/ap-airflow", access), DIGEST)
    assert cosign._registry_args(image) == []
    with cosign.environment(Trust.public(), image) as env:
        assert env["DOCKER_CONFIG"] == "/home/user/.docker"
        assert_ca_bundle(env, tls_dir)


def test_syft_gets_the_ca_bundle_and_a_private_login_and_no_plain_http(tls_dir, password, tmp_path, monkeypatch):
    monkeypatch.setenv("SYFT_REGISTRY_INSECURE_USE_HTTP", "true")  # the machine's own syft settings are dropped
    image = ImageReference.of(staging_registry(tls_dir), DIGEST)
    with sbom.scan_command(image, tmp_path / "a.cdx.json", tmp_path / "a.spdx.json") as (args, env):
        assert args[:3] == ["scan", f"registry:{image}", "--quiet"]
        assert not any(PASSWORD in arg for arg in args)
        assert not [name for name in env if name.startswith("SYFT_REGISTRY_")]
        assert_ca_bundle(env, tls_dir)
        assert_private_login(env, image.host)
        login = Path(env["DOCKER_CONFIG"])
    assert not login.exists()


def test_syft_uses_plain_http_for_the_local_registry_only(tmp_path):
    image = ImageReference.of("127.0.0.1:5000/astronomer/ap-airflow", DIGEST)
    with sbom.scan_command(image, tmp_path / "a.cdx.json", tmp_path / "a.spdx.json") as (_, env):
        assert env["SYFT_REGISTRY_INSECURE_USE_HTTP"] == "true"


# --- the release-files client against real servers --------------------------------------------------------------

MANIFEST = {
    "schemaVersion": 2,
    "mediaType": release_files.MANIFEST_TYPE,
    "artifactType": release_files.ARTIFACT_TYPE,
    "layers": [{"digest": "sha256:" + "cd" * 32, "annotations": {release_files.TITLE: "a.sigstore.json"}}],
}
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for key, value in {"Content-Length": str(len(body)), **headers}.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def _registry_api(handler: BaseHTTPRequestHandler, authorization: str, challenge: str) -> None:
    if handler.headers.get("Authorization") != authorization:
        _send(handler, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', **{"WWW-Authenticate": challenge})
    else:
        _send(handler, 200, json.dumps(MANIFEST).encode(), **{"Content-Type": release_files.MANIFEST_TYPE})


def _https(server: LocalHTTPServer, tls: Path) -> LocalHTTPServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls / "server.crt", tls / "server.key")
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    return server


def test_release_files_speak_https_with_the_targets_ca_and_answer_a_basic_challenge(tls_dir, password):
    """docker-registry with htpasswd answers 401 with a Basic challenge; the client logs in and reads over TLS."""
    server = LocalHTTPServer(lambda h: _registry_api(h, BASIC, 'Basic realm="ac-release"'))
    with _https(server, tls_dir):
        repository = release_files.location(staging_registry(tls_dir, f"127.0.0.1:{server.port}"))
        assert repository.access.ca_dir == tls_dir / "ca"
        assert release_files.listing(repository, "2.2.4-1") == {"a.sigstore.json": "cd" * 32}
    path = "/v2/astronomer/ap-airflow/release-files/manifests/2.2.4-1"
    assert [(p, h.get("Authorization")) for p, h in server.requests] == [(path, None), (path, BASIC)]


def test_release_files_answer_a_bearer_challenge_with_a_token_from_its_realm(tls_dir, password):
    def token_service(handler):
        if handler.headers.get("Authorization") == BASIC and "scope=repository" in handler.path:
            _send(handler, 200, b'{"token": "registry-token"}')
        else:
            _send(handler, 401)

    with LocalHTTPServer(token_service) as auth:
        challenge = f'Bearer realm="{auth.url}/token",service="registry",scope="repository:x/release-files:pull"'
        server = LocalHTTPServer(lambda h: _registry_api(h, "Bearer registry-token", challenge))
        with _https(server, tls_dir):
            repository = release_files.location(staging_registry(tls_dir, f"127.0.0.1:{server.port}"))
            assert release_files.listing(repository, "2.2.4-1") == {"a.sigstore.json": "cd" * 32}
    assert [p.split("?")[0] for p, _ in auth.requests] == ["/token"]


def test_a_registry_without_a_login_in_the_target_uses_the_one_docker_login_stored(tls_dir, tmp_path, monkeypatch):
    """Production's registries carry no credentials in release.toml: the workflow's `docker login` stored them."""
    server = LocalHTTPServer(lambda h: _registry_api(h, BASIC, 'Basic realm="ac-release"'))
    with _https(server, tls_dir):
        host = f"127.0.0.1:{server.port}"
        repository = release_files.location(
            Registry(f"{host}/astronomer/ap-airflow", RegistryAccess(ca_dir=tls_dir / "ca"))
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
        with pytest.raises(ReleaseError, match=r"refused access \(401 unauthorized\): it has no credentials here"):
            release_files.listing(repository, "2.2.4-1")  # no docker login either
        (tmp_path / "docker").mkdir()
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
        assert release_files.listing(repository, "2.2.4-1") == {"a.sigstore.json": "cd" * 32}


def test_a_wrong_password_is_one_line_naming_where_it_comes_from_never_the_password(tls_dir, password):
    server = LocalHTTPServer(lambda h: _registry_api(h, "Basic other", 'Basic realm="ac-release"'))
    with _https(server, tls_dir), pytest.raises(ReleaseError) as refused:
        release_files.listing(release_files.location(staging_registry(tls_dir, f"127.0.0.1:{server.port}")), "1")
    message = str(refused.value)
    assert message.endswith(f"refused access (401 unauthorized): check ${PASSWORD_ENV} (the password of {USER!r})")
    assert PASSWORD not in message and "\n" not in message
    assert len(server.requests) == 2  # answered once, not retried forever


def test_a_tls_registry_is_not_read_without_the_targets_ca(tls_dir, password):
    server = LocalHTTPServer(lambda h: _registry_api(h, BASIC, 'Basic realm="ac-release"'))
    without_ca = Registry(
        f"127.0.0.1:{server.port}/astronomer/ap-airflow",
        RegistryAccess(tls_verify=True, username=USER, password=Secret(env=PASSWORD_ENV)),
    )
    with _https(server, tls_dir), pytest.raises(ReleaseError, match="CERTIFICATE_VERIFY_FAILED"):
        release_files.listing(release_files.location(without_ca), "2.2.4-1")


def test_the_login_is_not_sent_on_through_a_redirect_to_another_origin(tls_dir, password):
    with LocalHTTPServer(lambda h: _send(h, 200, b"bundle bytes")) as storage:

        def registry_api(handler):
            if "/blobs/" in handler.path:
                if handler.headers.get("Authorization") != BASIC:
                    _send(handler, 401, **{"WWW-Authenticate": 'Basic realm="ac-release"'})
                else:
                    _send(handler, 307, Location=f"{storage.url}/blob")
            else:
                _registry_api(handler, BASIC, 'Basic realm="ac-release"')

        server = LocalHTTPServer(registry_api)
        with _https(server, tls_dir), pytest.raises(ReleaseError, match="does not have the digest its manifest"):
            release_files.fetch(release_files.location(staging_registry(tls_dir, f"127.0.0.1:{server.port}")), "1",
                                "a.sigstore.json")  # fmt: skip
    assert [(p, h.get("Authorization")) for p, h in storage.requests] == [("/blob", None)]


# --- the upgrade session's starting image -------------------------------------------------------------------------

RECORD_DOCKER = """
import json, os, sys
login = os.path.join(os.environ.get("DOCKER_CONFIG", "/nonexistent"), "config.json")
call = {"argv": sys.argv[1:], "login": json.load(open(login)) if os.path.exists(login) else None}
open(os.environ["DOCKER_AC_TEST_CALLS"], "a").write(json.dumps(call) + "\\n")
"""


def test_the_test_stage_pulls_the_earlier_release_with_the_registrys_login_and_names_it_to_the_session(
    tmp_path, monkeypatch
):
    """The sessions get no secret, so a registry requiring credentials is read and pulled from by the stage."""
    from rich.console import Console

    from ac_release.clients.docker import Docker
    from ac_release.model.config import load_settings
    from ac_release.model.flavours import ARM64
    from ac_release.model.version import ACVersion
    from ac_release.stages import test as test_stage
    from ac_release.world.context import ReleaseContext
    from ac_release.world.released_images import PreviousRelease
    from tests.helpers import STAGING_ENV, write_config

    for name in STAGING_ENV.values():
        monkeypatch.setenv(name, f"planted-{name}")
    settings = load_settings(write_config(tmp_path, staging=True))
    ctx = ReleaseContext.create("2.2.4-2", settings, "staging", console=Console(quiet=True))
    calls = tmp_path / "docker-calls.jsonl"
    monkeypatch.setenv("DOCKER_AC_TEST_CALLS", str(calls))
    # a docker CLI that records its calls (the docker CLI gets DOCKER_* of the environment)
    ctx.__dict__["docker"] = Docker([sys.executable, "-c", RECORD_DOCKER])
    first = ctx.target.registries[0]
    previous = PreviousRelease(ACVersion.parse("2.2.4-1"), str(first), DIGEST)  # as read back from a record

    test_stage.pull_previous(ctx, previous)
    (call,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert call["argv"] == ["pull", "--quiet", "--platform", "linux/amd64", f"{first}@{DIGEST}"]
    (auth,) = call["login"]["auths"].values()
    assert base64.b64decode(auth["auth"]).decode() == f"{first.access.username}:planted-{STAGING_ENV['quay']}"

    env = test_stage.session_env(ctx, "bullseye", ARM64, previous)
    assert env[test_stage.UPGRADE_FROM_ENV] == f"2.2.4-1 {first}@{DIGEST}"
    assert env["AC_SMOKE_PLATFORM"] == "linux/arm64"  # the platform's image the session tests
    assert not [value for value in env.values() if "planted-" in value]
    monkeypatch.setenv(test_stage.UPGRADE_FROM_ENV, "2.2.3-1 elsewhere@sha256:00")  # never passed on from outside
    assert test_stage.UPGRADE_FROM_ENV not in test_stage.session_env(ctx, "bullseye")
