"""PEP 740 attestations (publish and SLSA provenance) made by the sign stage's module against the local Sigstore,
checked as the sign stage and `invoke verify` check them: they verify for the file and identity they were made for,
and are refused for another identity, other bytes, another predicate type or other build inputs."""

from __future__ import annotations

import shutil

import pytest

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.supply_chain import wheel_attestations
from tests.integration.conftest import context_like, make_context
from tests.integration.test_cosign_local import INTRUDER, probe_wheel

pytestmark = pytest.mark.integration


def test_wheel_attestations_verify_and_are_refused_when_they_do_not_match(services, settings, tmp_path):
    ctx = make_context(settings)
    wheel = probe_wheel(tmp_path)
    predicate = wheel_attestations.slsa_predicate(ctx, wheel.name, sha256_file(wheel), "a" * 40)
    made = wheel_attestations.sign(ctx, [(wheel, "publish", None), (wheel, "slsa", predicate)])
    files = {}
    for kind in ("publish", "slsa"):
        files[kind] = tmp_path / f"{wheel.name}.{kind}.attestation"
        files[kind].write_bytes(made[(wheel.name, kind)])
        wheel_attestations.verify(ctx, wheel, files[kind], kind)

    with pytest.raises(ReleaseError, match="has predicate type https://docs.pypi.org/attestations/publish/v1, not"):
        wheel_attestations.verify(ctx, wheel, files["publish"], "slsa")

    tampered = tmp_path / "tampered" / wheel.name
    tampered.parent.mkdir()
    tampered.write_bytes(wheel.read_bytes() + b"\0")
    with pytest.raises(ReleaseError, match=rf"attests {wheel.name} sha256 {sha256_file(wheel)}, not"):
        wheel_attestations.verify(ctx, tampered, files["publish"], "publish")

    (tmp_path / "intruder").mkdir()
    intruder = context_like(ctx, tmp_path / "intruder", identity=INTRUDER)
    (intruded,) = wheel_attestations.sign(intruder, [(wheel, "publish", None)]).values()
    files["intruded"] = tmp_path / "intruded.publish.attestation"
    files["intruded"].write_bytes(intruded)
    with pytest.raises(ReleaseError, match="does not verify as release@ac-release.local"):
        wheel_attestations.verify(ctx, wheel, files["intruded"], "publish")

    other_sdist = wheel_attestations.slsa_predicate(ctx, wheel.name, sha256_file(wheel), "a" * 40)
    other_sdist["buildDefinition"]["resolvedDependencies"][0]["digest"]["sha256"] = "f" * 64
    (other,) = wheel_attestations.sign(ctx, [(wheel, "slsa", other_sdist)]).values()
    files["other"] = tmp_path / "other.slsa.attestation"
    files["other"].write_bytes(other)
    with pytest.raises(ReleaseError, match=r"names other build inputs: sdist apache-airflow-2.2.4.tar.gz has sha256:f"):
        wheel_attestations.verify(ctx, wheel, files["other"], "slsa")
    shutil.rmtree(tampered.parent)
