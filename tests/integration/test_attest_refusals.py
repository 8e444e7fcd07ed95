# ruff: noqa: F811  (the fixtures of test_cosign_local are imported by name, and named again as arguments)
"""The checks of the attest stage and of `invoke verify` (image_attestations.py, oci_release_files.py)
against the local Sigstore and registry, on test_cosign_local's tiny images: a complete set verifies, and each
refused case is refused: an unsigned image, a signature by another identity, an attestation for another digest, a
swapped SBOM, a provenance naming another sdist, a bundle missing from the published location."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from ac_release.clients import oci_release_files as release_files
from ac_release.core.errors import ReleaseError
from ac_release.model.config import Signer
from ac_release.supply_chain import cosign, image_attestations, provenance
from tests.integration.test_cosign_local import (  # noqa: F401  (fixtures)
    IDENTITY,
    INTRUDER,
    ISSUER,
    PROBE,
    PROBE_VERSION,
    images,
    local,
    offline,
    sboms,
    token,
    trust,
)

pytestmark = pytest.mark.integration


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def inputs(sdist: str = "sdist") -> dict:
    return {
        "sdist": provenance.file_input("sdist", "apache-airflow-2.2.4.tar.gz", sha(sdist)),
        "patches": [provenance.file_input("patch", "0001-fix.patch", sha("patch"))],
        "lock": provenance.file_input("lock", "constraints.txt", sha("lock")),
        "wheels": [provenance.file_input("wheel", "probe.whl", sha("wheel"))],
        "base_image": provenance.image_input("base-image", "ac-release/debian", "sha256:" + sha("base")),
        "source": provenance.git_input("https://github.com/astronomer/ap-airflow", "a" * 40),
    }


def predicate_file(tmp_path, reference: str, sdist: str = "sdist"):
    repository, digest = reference.split("@")
    statement = provenance.image_statement(
        repository, digest, builder_id="https://ac-release.local/test", external_parameters={}, **inputs(sdist)
    )
    return image_attestations.write_predicate(tmp_path / f"{sdist}.provenance.json", statement)


def check(trust, reference):
    expected = image_attestations.flat(inputs())
    return image_attestations.check_image(trust, reference, Signer(IDENTITY, ISSUER), expected, (PROBE, PROBE_VERSION))


def test_a_complete_set_verifies_and_a_swapped_sbom_or_another_sdist_is_refused(trust, local, images, sboms, tmp_path):
    reference = images["probe"]
    missing = check(trust, reference).missing
    assert missing == list(image_attestations.KINDS)  # unsigned: the attest stage signs, verify refuses
    image_attestations.make(trust, reference, token(local), missing, sboms, predicate_file(tmp_path, reference))
    done = check(trust, reference)
    assert (done.verified, done.missing, done.refused) == (list(image_attestations.KINDS), [], [])

    swapped = json.loads(sboms[0].read_text())
    swapped["components"] = [c for c in swapped["components"] if c.get("name") != PROBE]
    swapped_file = tmp_path / "swapped.cdx.json"
    swapped_file.write_text(json.dumps(swapped))
    cosign.attest_image(trust, reference, swapped_file, "cyclonedx", token(local))
    cosign.attest_image(trust, reference, predicate_file(tmp_path, reference, "other"), "slsaprovenance1", token(local))
    refused = check(trust, reference).refused
    assert any(r.startswith("cyclonedx: the attested SBOM does not list ac-release-sbom-probe==1.2.3") for r in refused)
    assert any(
        r.startswith("slsaprovenance1: the provenance names other inputs: sdist apache-airflow-2.2.4.tar.gz has")
        for r in refused
    ), refused


def test_a_signature_by_another_identity_is_refused(trust, local, images):
    cosign.sign_image(trust, images["intruded"], token(local, INTRUDER))
    found = check(trust, images["intruded"])
    assert found.refused and found.refused[0].startswith("signature: ")
    assert "none of the expected identities matched" in found.refused[0]


def test_an_attestation_for_another_digest_is_refused(trust, local, images, sboms, tmp_path):
    probe, other = images["probe"], images["other"]
    cosign.attest_image(trust, probe, sboms[0], "cyclonedx", token(local))
    repository = other.split("@")[0]
    source, destination = (image_attestations.cosign_tag(ref.split("@")[1], "att") for ref in (probe, other))
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false"]
        + [f"docker://{repository}:{source}", f"docker://{repository}:{destination}"],
        check=True,
        capture_output=True,
    )
    refused = check(trust, other).refused
    assert any(r.startswith("cyclonedx: ") and "no matching subject digest" in r for r in refused), refused


def test_release_files_round_trip_and_a_missing_bundle_is_refused(local):
    settings, _ = local
    repository = release_files.location(f"127.0.0.1:{settings.services.registry_port}/test/attest")
    files = {"a.whl.sigstore.json": b'{"a": 1}', "a.whl.publish.attestation": b'{"b": 2}'}
    release_files.push(repository, "1.0.0-1", files)
    assert release_files.listing(repository, "1.0.0-1") == {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    assert release_files.fetch(repository, "1.0.0-1", "a.whl.sigstore.json") == b'{"a": 1}'
    release_files.push(repository, "1.0.0-2", {"a.whl.publish.attestation": b'{"b": 2}'})
    with pytest.raises(ReleaseError, match=r"^a.whl.sigstore.json is missing from .*release-files:1.0.0-2: it holds"):
        release_files.fetch(repository, "1.0.0-2", "a.whl.sigstore.json")
    with pytest.raises(ReleaseError, match="does not exist: the release files of this version are not published"):
        release_files.fetch(repository, "9.9.9-1", "a.whl.sigstore.json")
