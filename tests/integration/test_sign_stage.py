"""Stage `sign` and the verification gate, with the real sigstore client and the local Sigstore instance."""

from __future__ import annotations

import re
import shutil

import pytest

from ac_release.errors import ReleaseError
from ac_release.fsutil import sha256_file
from ac_release.signing import verify
from ac_release.stages import sign
from tests.helpers import REPO
from tests.integration.conftest import context_like, make_context, own_bundle_mismatch

pytestmark = pytest.mark.integration

WHEEL = "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
META = "astronomer_certified-2.2.4.post1-py3-none-any.whl"
PRODUCTION = REPO / "tests" / "data" / "production-bundle"


def test_every_artifact_gets_a_verified_bundle(signed):
    ctx, result = signed
    assert result["identity"] == "release@ac-release.local"
    assert result["issuer"] == "https://oidc.ac-release.local"
    assert sorted(result["bundles"]) == sorted(ctx.manifest.stage("wheel")["artifacts"])
    for name, entry in result["bundles"].items():
        bundle = ctx.dist / entry["bundle"]
        assert bundle.name == f"{name}.sigstore.json"
        assert sha256_file(bundle) == entry["sha256"]
        verify(ctx, ctx.dist / name, bundle)
    assert ctx.manifest.stage("sign") == result


def test_second_run_keeps_the_bundles(signed):
    ctx, result = signed
    before = {p.name: p.read_bytes() for p in ctx.dist.glob("*.sigstore.json")}
    assert sign.run(make_context(ctx.settings)) == result
    assert {p.name: p.read_bytes() for p in ctx.dist.glob("*.sigstore.json")} == before


def test_gate_refuses_a_tampered_wheel(signed, tmp_path):
    ctx, _ = signed
    tampered = tmp_path / WHEEL
    data = bytearray((ctx.dist / WHEEL).read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    with pytest.raises(
        ReleaseError,
        match=own_bundle_mismatch(),
    ):
        verify(ctx, tampered, ctx.dist / f"{WHEEL}.sigstore.json")


def test_gate_refuses_another_files_bundle(signed):
    ctx, _ = signed
    with pytest.raises(
        ReleaseError,
        match=own_bundle_mismatch(bundle_of=META),
    ):
        verify(ctx, ctx.dist / WHEEL, ctx.dist / f"{META}.sigstore.json")


def test_gate_refuses_a_wrong_identity(signed, tmp_path):
    ctx, _ = signed
    other = context_like(ctx, tmp_path, identity="intruder@ac-release.local")
    with pytest.raises(
        ReleaseError,
        match=rf"^signature check failed for {re.escape(WHEEL)} with .*: Certificate's SANs "
        r"do not match intruder@ac-release.local; actual SANs: \{'release@ac-release.local'\}$",
    ):
        verify(other, ctx.dist / WHEEL, ctx.dist / f"{WHEEL}.sigstore.json")


def test_gate_refuses_a_wrong_issuer(signed, tmp_path):
    ctx, _ = signed
    other = context_like(ctx, tmp_path, issuer="https://token.actions.githubusercontent.com")
    with pytest.raises(
        ReleaseError,
        match=rf"^signature check failed for {re.escape(WHEEL)} with .*: Certificate's OIDCIssuer does not "
        r"match \(got 'https://oidc.ac-release.local', expected "
        r"'https://token.actions.githubusercontent.com'\)$",
    ):
        verify(other, ctx.dist / WHEEL, ctx.dist / f"{WHEEL}.sigstore.json")


def test_gate_refuses_a_missing_bundle(signed, tmp_path):
    ctx, _ = signed
    with pytest.raises(
        ReleaseError,
        match=rf"^no signature for {re.escape(WHEEL)}: absent.sigstore.json is missing; run `invoke sign 2.2.4-1`$",
    ):
        verify(ctx, ctx.dist / WHEEL, tmp_path / "absent.sigstore.json")


def test_sign_stage_refuses_a_bundle_that_does_not_verify(signed, tmp_path):
    ctx, _ = signed
    other = context_like(ctx, tmp_path)
    shutil.copytree(ctx.dist, other.dist)
    shutil.copy(other.dist / f"{META}.sigstore.json", other.dist / f"{WHEEL}.sigstore.json")
    with pytest.raises(
        ReleaseError,
        match=own_bundle_mismatch(),
    ):
        sign.run(other)


def test_gate_verifies_a_real_production_bundle_offline(signed, tmp_path):
    """Public-good Sigstore, as in GitHub Actions: the same gate, only the target's settings differ."""
    ctx, _ = signed
    identity = "https://github.com/trailofbits/pypi-attestation-models/.github/workflows/release.yml@refs/tags/v0.0.4a2"
    public = context_like(
        ctx, tmp_path, instance="public", identity=identity, issuer="https://token.actions.githubusercontent.com"
    )
    artifact = PRODUCTION / "pypi_attestation_models-0.0.4a2.tar.gz"
    bundle = PRODUCTION / "pypi_attestation_models-0.0.4a2.tar.gz.sigstore"
    verify(public, artifact, bundle)
    tampered = tmp_path / artifact.name
    tampered.write_bytes(artifact.read_bytes()[:-1] + bytes([artifact.read_bytes()[-1] ^ 1]))
    with pytest.raises(ReleaseError, match="^signature check failed for pypi_attestation_models-0.0.4a2.tar.gz"):
        verify(public, tampered, bundle)
