"""The pure parts of the cosign and SBOM modules: image references, loopback detection, trust material, SBOM queries."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.console import Console

from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.supply_chain import cosign, sbom
from ac_release.supply_chain.cosign import ImageReference, Trust
from ac_release.world.context import ReleaseContext
from tests.helpers import write_config

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1:5000", True),
        ("127.0.0.1", True),
        ("127.8.9.1:80", True),
        ("localhost:5000", True),
        ("localhost", True),
        ("[::1]:5000", True),
        ("127.0.0.1.example.com:5000", False),
        ("localhost.example.com", False),
        ("quay.io", False),
        ("10.0.0.1:5000", False),
        ("[::2]:5000", False),
        ("127.0.0.1:5000:1", False),
    ],
)
def test_plain_http_only_for_a_loopback_registry(host, loopback):
    image = ImageReference.parse(f"{host}/astronomer/ap-airflow@{DIGEST}")
    assert image.is_loopback is loopback
    assert ("--allow-http-registry" in cosign._registry_args(image)) is loopback


def test_a_reference_is_split_into_registry_repository_and_digest():
    image = ImageReference.parse(f"quay.io/astronomer/ap-airflow@{DIGEST}")
    assert (image.host, image.repository, image.digest) == ("quay.io", "astronomer/ap-airflow", DIGEST)
    assert str(image) == f"quay.io/astronomer/ap-airflow@{DIGEST}"


@pytest.mark.parametrize(
    "reference",
    [
        "quay.io/astronomer/ap-airflow:2.2.4-1",  # a tag, not a digest
        f"astronomer/ap-airflow@{DIGEST}",  # no registry host
        "quay.io/astronomer/ap-airflow@sha256:abc",
        f"quay.io/Astronomer/ap-airflow@{DIGEST}",
        f"quay.io/astronomer/ap-airflow@{DIGEST} --insecure",
    ],
)
def test_references_that_are_not_registry_repository_digest_are_refused(reference):
    with pytest.raises(ReleaseError, match="is not REGISTRY/REPOSITORY@sha256:<64 hex>"):
        ImageReference.parse(reference)


def test_trust_from_a_client_trust_config_takes_the_v1_services():
    config = {
        "trustedRoot": {"tlogs": []},
        "signingConfig": {
            "caUrls": [{"url": "http://127.0.0.1:8766/", "majorApiVersion": 1}],
            "rekorTlogUrls": [
                {"url": "https://log2025-1.rekor.example", "majorApiVersion": 2},
                {"url": "http://127.0.0.1:8766", "majorApiVersion": 1},
            ],
        },
    }
    trust = Trust.from_client_trust_config(config)
    assert (trust.fulcio_url, trust.rekor_url) == ("http://127.0.0.1:8766", "http://127.0.0.1:8766")


def test_a_trust_config_without_a_signing_config_is_refused():
    with pytest.raises(ReleaseError, match="Sigstore trust config has no 'signingConfig'"):
        Trust.from_client_trust_config({"trustedRoot": {}})


def test_public_trust_material_is_the_current_ct_log_and_the_v1_rekor_key(tmp_path):
    trust = Trust.public()
    assert trust.rekor_url == "https://rekor.sigstore.dev"
    env = trust.write_material(tmp_path, now=dt.datetime(2026, 11, 30, tzinfo=dt.UTC))
    assert sorted(env) == [
        "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE",
        "SIGSTORE_REKOR_PUBLIC_KEY",
        "SIGSTORE_ROOT_FILE",
        "TUF_ROOT",
    ]
    assert list((tmp_path / "tuf").iterdir()) == []
    root = trust.trusted_root

    def spki(path) -> str:
        key = serialization.load_pem_public_key(open(path, "rb").read())
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode()

    rekor_v1 = next(log for log in root["tlogs"] if log["baseUrl"] == "https://rekor.sigstore.dev")
    assert spki(env["SIGSTORE_REKOR_PUBLIC_KEY"]) == rekor_v1["publicKey"]["rawBytes"]
    current_ct = [log for log in root["ctlogs"] if "end" not in log["publicKey"]["validFor"]]
    assert spki(env["SIGSTORE_CT_LOG_PUBLIC_KEY_FILE"]) == current_ct[-1]["publicKey"]["rawBytes"]
    certificates = x509.load_pem_x509_certificates(open(env["SIGSTORE_ROOT_FILE"], "rb").read())
    assert len(certificates) == sum(len(ca["certChain"]["certificates"]) for ca in root["certificateAuthorities"])


def test_only_statements_about_the_digest_are_taken():
    statement = {"subject": [{"name": "quay.io/astronomer/ap-airflow", "digest": {"sha256": "ab" * 32}}]}
    assert cosign._names_digest(statement, DIGEST)
    assert not cosign._names_digest(statement, "sha256:" + "cd" * 32)
    assert not cosign._names_digest({"subject": []}, DIGEST)


def cyclonedx(*components: dict) -> dict:
    return {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": list(components)}


AIRFLOW = {
    "type": "library",
    "name": "apache-airflow",
    "version": "2.2.4+astro.1",
    "purl": "pkg:pypi/apache-airflow@2.2.4%2Bastro.1",
    "externalReferences": [
        {"url": "file:///build/wheels/apache_airflow-2.2.4%2Bastro.1-py3-none-any.whl", "type": "vcs"}
    ],
}
DEB_PYTHON = {"type": "library", "name": "apache-airflow", "version": "2.2.4+astro.1", "purl": "pkg:deb/debian/x@1"}


def test_sbom_lists_a_python_package_by_normalized_name_and_exact_version(tmp_path):
    path = tmp_path / "image.cdx.json"
    path.write_text(json.dumps(cyclonedx(AIRFLOW)))
    assert sbom.sbom_lists(path, "apache-airflow", "2.2.4+astro.1")
    assert sbom.sbom_lists(path, "Apache_Airflow", "2.2.4+astro.1")
    assert not sbom.sbom_lists(path, "apache-airflow", "2.2.4")
    assert not sbom.sbom_lists(path, "apache-airflow-providers-http", "2.2.4+astro.1")


def test_sbom_does_not_take_a_non_python_component_for_the_package():
    assert not sbom.sbom_lists(cyclonedx(DEB_PYTHON), "apache-airflow", "2.2.4+astro.1")


def test_installed_from_names_the_wheel_file_the_installer_recorded():
    assert sbom.installed_from(cyclonedx(AIRFLOW), "apache-airflow", "2.2.4+astro.1") == (
        "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
    )
    without_url = {k: v for k, v in AIRFLOW.items() if k != "externalReferences"}
    assert sbom.installed_from(cyclonedx(without_url), "apache-airflow", "2.2.4+astro.1") is None


def test_a_file_that_is_not_cyclonedx_is_refused(tmp_path):
    path = tmp_path / "image.spdx.json"
    path.write_text(json.dumps({"spdxVersion": "SPDX-2.3"}))
    with pytest.raises(ReleaseError, match="is not a CycloneDX JSON SBOM"):
        sbom.sbom_lists(path, "apache-airflow", "2.2.4+astro.1")


def release_context(tmp_path, **config):
    settings = load_settings(write_config(tmp_path, **config))
    return ReleaseContext.create("2.2.4-1", settings, console=Console(quiet=True))


def test_trust_of_a_local_target_is_its_services_trust_config(tmp_path):
    ctx = release_context(tmp_path)
    with pytest.raises(ReleaseError, match=r"trust config .*trust_config.json is missing: run `invoke services.up`"):
        cosign.trust_of(ctx)
    path = tmp_path / "services" / "sigstore" / "trust_config.json"
    path.parent.mkdir(parents=True)
    signing = {"caUrls": [{"url": "http://127.0.0.1:1"}], "rekorTlogUrls": [{"url": "http://127.0.0.1:2"}]}
    path.write_text(json.dumps({"trustedRoot": {"tlogs": []}, "signingConfig": signing}))
    trust = cosign.trust_of(ctx)
    assert (trust.fulcio_url, trust.rekor_url) == ("http://127.0.0.1:1", "http://127.0.0.1:2")


def test_trust_of_a_public_target_is_the_shipped_public_good_root(tmp_path):
    workflows = ("astronomer/ap-airflow", "release.yml@refs/heads/main", "nightly.yml@refs/heads/main")
    public = release_context(
        tmp_path, instance="public", workflows=workflows, issuer="https://token.actions.githubusercontent.com"
    )
    assert cosign.trust_of(public) == Trust.public()
