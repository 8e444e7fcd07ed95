"""A Bearer challenge's realm gets the registry's credentials only on the registry's host or a host the target names
(`auth_hosts`), over https (plain http only on loopback for a loopback registry) (issue 29, item 10). Real HTTP
servers on 127.0.0.1: a registry answering 401 with a hostile realm, and a token service that must hear nothing."""

from __future__ import annotations

import json

import pytest

from ac_release.clients import oci_release_files as release_files
from ac_release.clients.registry import check_bearer_realm
from ac_release.core.errors import ReleaseError
from ac_release.model.config import Registry, RegistryAccess, Secret
from tests.local_http import LocalHTTPServer

PASSWORD_ENV = "AC_TEST_REALM_PASSWORD"
PASSWORD = "planted-realm-password-51c2"
MANIFEST = {
    "artifactType": release_files.ARTIFACT_TYPE,
    "layers": [{"digest": "sha256:" + "cd" * 32, "annotations": {release_files.TITLE: "a.sigstore.json"}}],
}


def _send(handler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for key, value in {"Content-Length": str(len(body)), **headers}.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def _token_service(handler) -> None:
    _send(handler, 200, b'{"token": "registry-token"}')


def _registry(realm: str):
    def answer(handler) -> None:
        if handler.headers.get("Authorization") == "Bearer registry-token":
            _send(handler, 200, json.dumps(MANIFEST).encode(), **{"Content-Type": release_files.MANIFEST_TYPE})
        else:
            challenge = f'Bearer realm="{realm}",service="registry",scope="repository:x:pull"'
            _send(handler, 401, b"{}", **{"WWW-Authenticate": challenge})

    return answer


def _listing(port: int, auth_hosts: tuple[str, ...] = ()):
    access = RegistryAccess(False, None, "ac-release", Secret(env=PASSWORD_ENV), auth_hosts)
    return release_files.listing(release_files.location(Registry(f"127.0.0.1:{port}/astronomer/x", access)), "1")


@pytest.fixture(autouse=True)
def password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.mark.parametrize(
    ("realm", "shown"),
    [
        ("http://localhost:{auth}/token", "http://localhost"),  # another host, plain http
        ("file:///etc/passwd", "file: URL"),
        ("https://evil.example/token", "https://evil.example"),
        ("https://localhost:{auth}/token", "https://localhost"),
    ],
)
def test_a_hostile_realm_is_refused_before_any_credential_leaves(realm, shown):
    with LocalHTTPServer(_token_service) as auth:
        realm = realm.replace("{auth}", str(auth.port))
        with LocalHTTPServer(_registry(realm)) as registry:
            with pytest.raises(ReleaseError) as error:
                _listing(registry.port)
    assert str(error.value) == (
        f"registry 127.0.0.1:{registry.port} asks for a token from {shown}: refused, no credentials sent (a realm "
        "must be https on 127.0.0.1 or on a host its auth_hosts in release.toml name)"
    )
    assert auth.requests == []
    assert all("Authorization" not in headers for _, headers in registry.requests)


def test_a_realm_on_the_registrys_host_or_a_named_one_gets_the_token():
    with LocalHTTPServer(_token_service) as auth:
        for realm, auth_hosts in ((f"{auth.url}/token", ()), (f"http://localhost:{auth.port}/token", ("localhost",))):
            with LocalHTTPServer(_registry(realm)) as registry:
                assert _listing(registry.port, auth_hosts) == {"a.sigstore.json": "cd" * 32}
    assert len(auth.requests) == 2 and all(h.get("Authorization", "").startswith("Basic ") for _, h in auth.requests)


@pytest.mark.parametrize(
    ("realm", "allowed"),
    [
        ("https://quay.io/v2/auth", True),
        ("https://QUAY.io/v2/auth", True),
        ("https://auth.docker.io/token", False),  # not named by quay.io's entry
        ("http://quay.io/v2/auth", False),  # plain http off loopback
        ("http://127.0.0.1:5000/token", False),  # plain http to loopback, for a registry that is not
        ("https://quay.io.evil.example/v2/auth", False),
        ("ftp://quay.io/auth", False),
        ("/v2/auth", False),
    ],
)
def test_realm_rules_for_a_remote_registry(realm, allowed):
    registry = Registry("quay.io/astronomer/ap-airflow")
    if allowed:
        check_bearer_realm(realm, registry)
    else:
        with pytest.raises(ReleaseError, match="refused, no credentials sent"):
            check_bearer_realm(realm, registry)


def test_auth_hosts_name_docker_hubs_token_service():
    hub = Registry("docker.io/astronomerinc/ap-airflow", RegistryAccess(auth_hosts=("auth.docker.io",)))
    check_bearer_realm("https://auth.docker.io/token", hub)
    with pytest.raises(ReleaseError, match="refused"):
        check_bearer_realm("http://auth.docker.io/token", hub)
