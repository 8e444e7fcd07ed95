"""The staging target's settings (issue 11): services per target with addresses derived from them, TLS and
credentials as settings of a registry, the CA and the credentials handed to each client, and the one-line refusals
of the new keys. No Docker, no network."""

from __future__ import annotations

import json
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from ac_release.clients.registry import _tls, registry_of
from ac_release.clients.tlsclients import auth_dir, ca_env
from ac_release.core.errors import ReleaseError
from ac_release.model.config import Registry, RegistryAccess, Secret, load_settings
from ac_release.services.manager import LocalServices
from ac_release.services.tls import ensure_server_certificate
from tests.helpers import REPO, STAGING_ENV, write_config


def test_repository_staging_target_derives_its_addresses_from_its_services():
    settings = load_settings(REPO / "release.toml")
    staging, local = settings.target("staging"), settings.target("local")
    services = staging.services
    assert services.dir == Path("~/.local/state/ac-release/staging").expanduser() and services.tls
    assert staging.index.url == f"https://127.0.0.1:{services.pypi_port}/"
    assert staging.index.username == "__token__" and staging.index.password == Secret(env="AC_INDEX_PASSWORD")
    assert staging.index.ca_file == services.dir / "tls" / "ca" / "ca.crt"
    assert staging.registries == ("127.0.0.1:5010/astronomer/ap-airflow", "127.0.0.1:5011/astronomerinc/ap-airflow")
    assert [r.access.password.env for r in staging.registries] == [
        "AC_QUAY_PASSWORD",
        "AC_HUB_PASSWORD",
    ]
    assert staging.git_remote == str(services.dir / "git" / "ac-release.git")
    assert staging.signing.instance == "custom"
    assert staging.signing.trust_config == services.dir / "sigstore" / "trust_config.json"
    assert services.issuer == staging.signing.issuer != local.signing.issuer
    # local's addresses come from [services] too
    assert local.index.url == "http://127.0.0.1:8765/" and local.registries == ("127.0.0.1:5000/astronomer/ap-airflow",)
    assert local.index.password.file == REPO / ".services" / "pypi" / "password"
    assert local.git_remote == str(REPO / ".services" / "git" / "ac-release.git")
    assert not local.registries[0].access.tls_verify and local.index.ca_file is None


def test_each_service_set_starts_its_sigstore_with_its_targets_issuer(tmp_path):
    """Was: the Sigstore service started with a default issuer whatever the target said."""
    settings = load_settings(write_config(tmp_path, issuer="https://issuer.example.com"))
    (sigstore,) = [s for s in LocalServices(settings.target("local").services).services() if s.name == "sigstore"]
    assert sigstore.argv[sigstore.argv.index("--issuer") + 1] == "https://issuer.example.com"


def test_staging_services_are_https_and_two_tls_registries(tmp_path):
    settings = load_settings(write_config(tmp_path, staging=True))
    services = LocalServices(settings.target("staging").services, docker_certs=tmp_path / "certs.d")
    by_name = {s.name: s for s in services.services()}
    assert sorted(by_name) == ["pypi", "registry", "registry-2", "sigstore"]
    assert by_name["pypi"].argv[1:3] == ["-m", "gunicorn"] and "--certfile" in by_name["pypi"].argv
    assert by_name["registry"].url("127.0.0.1").startswith("https://")


def test_a_loopback_registry_is_tls_when_its_target_says_so():
    """Was: registry.py chose plain HTTP for any loopback host; now TLS is the registry's setting."""
    ca_dir = Path("/tmp/ca")
    tls = Registry("127.0.0.1:5010/a", RegistryAccess(tls_verify=True, ca_dir=ca_dir))
    assert _tls(tls) == ["--cert-dir", str(ca_dir)]
    assert _tls(Registry("127.0.0.1:5000/a", RegistryAccess(tls_verify=False))) == ["--tls-verify=false"]
    assert _tls(Registry("quay.io/a")) == []
    assert registry_of("127.0.0.1:5000/a").access.tls_verify is False  # a bare string: the old loopback default


def test_registry_credentials_reach_clients_in_a_private_auth_file_only(monkeypatch):
    monkeypatch.setenv("AC_TEST_REGISTRY_PW", "s3cret-registry")
    registry = Registry("127.0.0.1:5010/a", RegistryAccess(username="bot", password=Secret(env="AC_TEST_REGISTRY_PW")))
    with auth_dir(registry) as directory:
        config = directory / "config.json"
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700 and stat.S_IMODE(config.stat().st_mode) == 0o600
        auth = json.loads(config.read_text())["auths"]["127.0.0.1:5010"]["auth"]
        assert auth == "Ym90OnMzY3JldC1yZWdpc3RyeQ=="  # bot:s3cret-registry
    assert not directory.exists()
    with auth_dir(Registry("quay.io/a")) as none:  # no credentials of its own: docker login's
        assert none is None


def test_server_certificate_verifies_against_the_ca_and_a_bundle_keeps_the_machines_cas(tmp_path, monkeypatch):
    ca, cert, key = tmp_path / "tls" / "ca" / "ca.crt", tmp_path / "tls" / "server.crt", tmp_path / "tls" / "server.key"
    assert ensure_server_certificate(ca, cert, key, "127.0.0.1")
    assert not ensure_server_certificate(ca, cert, key, "127.0.0.1")  # kept while valid
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    authority = x509.load_pem_x509_certificate(ca.read_bytes())
    assert authority.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(cert)], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    machine = tmp_path / "machine.pem"
    machine.write_text("# the machine's CAs\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(machine))
    env = ca_env(ca)
    assert set(env) == {"REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "PIP_CERT"}
    bundle = Path(env["SSL_CERT_FILE"]).read_text()
    assert bundle.startswith("# the machine's CAs\n") and bundle.endswith(ca.read_text())
    assert ca_env(None) == {}
    ssl.create_default_context(cafile=env["SSL_CERT_FILE"])  # loads


STAGING_BAD = [
    (
        ("tls = true\n", "tls = false\n"),
        "targets.staging.services.registries[0].username: a registry takes credentials only over TLS: "
        "set tls = true in targets.staging.services",
    ),
    (
        ('instance = "custom"', 'instance = "local"'),
        "targets.staging.signing.instance: 'local' is the pipeline's own Sigstore: it needs local_services = true",
    ),
    (
        ('instance = "custom"', 'instance = "public"'),
        "targets.staging.signing.instance: a target with services of its own signs with their Sigstore: "
        "instance = 'custom'",
    ),
    (
        ('repository = "astronomerinc/ap-airflow"', 'repository = "Astronomer Inc"'),
        "targets.staging.services.registries[1].repository: expected a path like astronomer/ap-airflow, "
        "got 'Astronomer Inc'",
    ),
    (
        ('password_env = "AC_HUB_PASSWORD"', 'password_env = "AC HUB"'),
        "targets.staging.services.registries[1].password_env: expected an environment variable name, got 'AC HUB'",
    ),
    (
        ('username = "acrelease"\n', ""),
        "targets.staging.services.registries[1]: set both username and password_env (credentials), or neither",
    ),
    (
        ("[targets.staging.index]\n", '[targets.staging.index]\nurl = "https://127.0.0.1:1/"\n'),
        "targets.staging.index.url: derived from targets.staging.services: remove it",
    ),
    (
        ('[targets.staging]\nbase_images = "debootstrap"\n', '[targets.staging]\ngit_remote = "origin"\n'),
        "targets.staging.git_remote: derived from targets.staging.services: remove it",
    ),
    (
        ('host = "127.0.0.1"\ntls = true', 'host = "10.0.0.1"\ntls = true'),
        "targets.staging.services.host: the local services listen on loopback only (127.0.0.0/8, ::1 or localhost), "
        "got '10.0.0.1'",
    ),
    (
        ("tls = true\n", "tls = true\nregistry_port = 5000\n"),
        "targets.staging.services.registry_port: unknown key (known keys: dev_pypi_port, dir, host, pypi_port, "
        "registries, "
        "sigstore_port, tls)",
    ),
]


def _staging_config(tmp_path: Path, old: str, new: str) -> Path:
    path = write_config(tmp_path, staging=True)
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(("change", "message"), STAGING_BAD, ids=[m.split(":")[0] for _, m in STAGING_BAD])
def test_bad_staging_values_are_one_line_naming_the_key(tmp_path, change, message):
    with pytest.raises(ReleaseError) as error:
        load_settings(_staging_config(tmp_path, *change))
    assert str(error.value) == f"{tmp_path / 'release.toml'}: {message}"


def test_a_port_shared_with_another_targets_services_is_refused(tmp_path):
    path = write_config(tmp_path, pypi_port=8765, staging=True)
    text = path.read_text()
    staging_pypi = text.split("[targets.staging.services]")[1].split("pypi_port = ")[1].split("\n")[0]
    path.write_text(text.replace(f"pypi_port = {staging_pypi}", "pypi_port = 8765"))
    with pytest.raises(ReleaseError) as error:
        load_settings(path)
    assert str(error.value) == (
        f"{path}: targets.staging.services.pypi_port: 8765 is already services.pypi_port: "
        "give each service its own port"
    )


def test_a_local_address_that_differs_from_services_is_refused(tmp_path):
    path = write_config(tmp_path, pypi_port=8765)
    path.write_text(path.read_text().replace('url = "http://127.0.0.1:8765/"', 'url = "http://127.0.0.1:9999/"'))
    with pytest.raises(ReleaseError) as error:
        load_settings(path)
    assert str(error.value) == (
        f"{path}: targets.local.index.url: derived from [services] (http://127.0.0.1:8765/); "
        "remove it from release.toml"
    )


def test_staging_secrets_are_environment_variables():
    assert set(STAGING_ENV.values()) == {
        "AC_INDEX_PASSWORD",
        "AC_QUAY_PASSWORD",
        "AC_HUB_PASSWORD",
    }
