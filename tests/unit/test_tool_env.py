"""sigstore, twine, cosign and syft get an allow-list of the environment (issue 29, item 14): a registry password and
an unrelated variable of the release's environment reach none of them; what each needs still does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from ac_release.clients import proc, upload
from ac_release.model.config import IndexSettings, Secret, load_settings
from ac_release.supply_chain import cosign, sbom, signing
from ac_release.supply_chain.cosign import ImageReference, Trust
from ac_release.world.context import ReleaseContext
from tests.helpers import write_config

PLANTED = {"AC_QUAY_PASSWORD": "planted-quay-password", "UNRELATED_SETTING": "planted-unrelated"}
KEPT = {"HTTPS_PROXY": "http://proxy.invalid:3128", "LC_ALL": "C.UTF-8", "TMPDIR": "/tmp"}
AMBIENT = {"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_URL": "https://token.invalid/"}
IMAGE = ImageReference.parse("quay.io/astronomer/ap-airflow@sha256:" + "ab" * 32)


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    for name, value in {**PLANTED, **KEPT, **AMBIENT, "SIGSTORE_IDENTITY_TOKEN": "planted-token"}.items():
        monkeypatch.setenv(name, value)


def _captured(monkeypatch, module) -> dict:
    """Stands in for `module.proc.run`: keeps the env it was called with and answers success."""
    seen = {}

    def run(argv, *, env=None, **_):
        seen.update(env)
        return subprocess.CompletedProcess(list(argv), 0, b"", b"")

    monkeypatch.setattr(module.proc, "run", run)
    return seen


def _assert_allowed(env: dict, ambient: bool) -> None:
    assert not set(PLANTED) & set(env), sorted(env)
    assert not set(PLANTED.values()) & set(env.values())
    assert {name: env.get(name) for name in KEPT} == KEPT
    assert all(name in env for name in AMBIENT) is ambient


def test_sigstore_gets_the_allow_list_and_the_ambient_identity(monkeypatch, tmp_path):
    workflows = ("astronomer/ap-airflow", "release.yml@refs/heads/main", "nightly.yml@refs/heads/main")
    config = write_config(
        tmp_path, instance="public", workflows=workflows, issuer="https://token.actions.githubusercontent.com"
    )
    ctx = ReleaseContext.create("2.2.4-1", load_settings(config), console=Console(quiet=True))
    seen = _captured(monkeypatch, signing)
    signing._sigstore(ctx, "--version")
    _assert_allowed(seen, ambient=True)
    assert "SIGSTORE_IDENTITY_TOKEN" not in seen


def test_twine_gets_the_allow_list_and_its_password(monkeypatch, tmp_path):
    artifact = tmp_path / "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
    artifact.write_bytes(b"wheel")
    seen = _captured(monkeypatch, upload)
    index = IndexSettings("https://pip.example.invalid/", "__token__", Secret(env="AC_INDEX_PASSWORD"))
    assert upload.upload(index, artifact, "the-index-password") == "uploaded"
    _assert_allowed(seen, ambient=False)
    assert seen["TWINE_PASSWORD"] == "the-index-password"


def test_cosign_gets_the_allow_list_its_trust_and_the_ambient_identity():
    with cosign.environment(Trust.public(), IMAGE) as env:
        _assert_allowed(env, ambient=True)
        assert Path(env["TUF_ROOT"]).is_dir() and "SIGSTORE_IDENTITY_TOKEN" not in env


def test_syft_gets_the_allow_list_and_its_own_settings(tmp_path):
    with sbom.scan_command(IMAGE, tmp_path / "a.cdx.json", tmp_path / "a.spdx.json") as (_, env):
        _assert_allowed(env, ambient=False)
        assert env["SYFT_CHECK_FOR_APP_UPDATE"] == "false"


def test_the_allow_list_passes_named_variables_only():
    assert "AC_QUAY_PASSWORD" not in proc.tool_env(also=("DOCKER_CONFIG",))
    assert proc.tool_env(also=("AC_QUAY_PASSWORD",))["AC_QUAY_PASSWORD"] == "planted-quay-password"


def test_staging_sigstore_clients_trust_the_services_ca(monkeypatch, tmp_path):
    """Staging's Sigstore serves https with the services' CA: the CLI gets a bundle holding it, and the in-process
    clients (the Actions token fetch, the attestations' signer) hold it only while they run."""
    from ac_release.clients.tlsclients import trusting
    from ac_release.services.tls import ensure_server_certificate

    config = write_config(tmp_path, staging=True)
    ctx = ReleaseContext.create("2.2.4-1", load_settings(config), target="staging", console=Console(quiet=True))
    services = ctx.target.services
    ensure_server_certificate(services.ca_certificate, services.server_certificate, services.server_key, services.host)
    ca = services.ca_file.read_bytes()
    signing.trust_config_path(ctx).parent.mkdir(parents=True)
    signing.trust_config_path(ctx).write_text("{}")  # what `services.up` writes; the captured run never reads it
    seen = _captured(monkeypatch, signing)
    signing._sigstore(ctx, "--version")
    assert ca in Path(seen["REQUESTS_CA_BUNDLE"]).read_bytes() and seen["SSL_CERT_FILE"] == seen["REQUESTS_CA_BUNDLE"]
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with trusting(signing.services_ca(ctx)):
        assert ca in Path(os.environ["REQUESTS_CA_BUNDLE"]).read_bytes()
    assert "REQUESTS_CA_BUNDLE" not in os.environ
