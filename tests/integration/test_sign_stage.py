"""Stage `sign` and the verification gate, with the real sigstore client and the local Sigstore instance."""

from __future__ import annotations

import re
import shutil

import pytest

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.records import SignRecord, WheelRecord
from ac_release.pipeline.run import run_stage
from ac_release.supply_chain.signing import verify
from tests.helpers import REPO
from tests.integration.conftest import context_like, make_context, own_bundle_mismatch

pytestmark = pytest.mark.integration

WHEEL = "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
META = "astronomer_certified-2.2.4.post1-py3-none-any.whl"
PRODUCTION = REPO / "tests" / "data" / "production-bundle"


def test_every_artifact_gets_a_verified_bundle(signed):
    ctx, result = signed
    assert result.identity == "release@ac-release.local"
    assert result.issuer == "https://oidc.ac-release.local"
    assert sorted(result.bundles) == sorted(ctx.manifest.get(WheelRecord).artifacts)
    assert ctx.bundles == ctx.dist / "sigstore" / "local"  # one directory per target's signer
    for name, digest in result.bundles.items():
        bundle = ctx.bundles / f"{name}.sigstore.json"
        assert sha256_file(bundle) == digest
        verify(ctx, ctx.dist / name, bundle)
    assert ctx.record(SignRecord) == result


def test_second_run_keeps_the_bundles(signed):
    ctx, result = signed
    before = {p.name: p.read_bytes() for p in ctx.bundles.glob("*.sigstore.json")}
    assert run_stage(make_context(ctx.settings), "sign") == result
    assert {p.name: p.read_bytes() for p in ctx.bundles.glob("*.sigstore.json")} == before


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
        verify(ctx, tampered, ctx.bundles / f"{WHEEL}.sigstore.json")


def test_gate_refuses_another_files_bundle(signed):
    ctx, _ = signed
    with pytest.raises(
        ReleaseError,
        match=own_bundle_mismatch(bundle_of=META),
    ):
        verify(ctx, ctx.dist / WHEEL, ctx.bundles / f"{META}.sigstore.json")


def test_gate_refuses_a_wrong_identity(signed, tmp_path):
    ctx, _ = signed
    other = context_like(ctx, tmp_path, identity="intruder@ac-release.local")
    with pytest.raises(
        ReleaseError,
        match=rf"^signature check failed for {re.escape(WHEEL)} with .*: Certificate's SANs "
        r"do not match intruder@ac-release.local; actual SANs: \{'release@ac-release.local'\}$",
    ):
        verify(other, ctx.dist / WHEEL, ctx.bundles / f"{WHEEL}.sigstore.json")


def test_gate_refuses_a_wrong_issuer(signed, tmp_path):
    ctx, _ = signed
    other = context_like(ctx, tmp_path, issuer="https://oidc.other.local")  # GitHub's issuer is production's alone
    with pytest.raises(
        ReleaseError,
        match=rf"^signature check failed for {re.escape(WHEEL)} with .*: Certificate's OIDCIssuer does not "
        r"match \(got 'https://oidc.ac-release.local', expected "
        r"'https://oidc.other.local'\)$",
    ):
        verify(other, ctx.dist / WHEEL, ctx.bundles / f"{WHEEL}.sigstore.json")


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
    shutil.copy(other.bundles / f"{META}.sigstore.json", other.bundles / f"{WHEEL}.sigstore.json")
    with pytest.raises(ReleaseError) as error:
        run_stage(other, "sign")
    assert str(error.value) == (
        f"refused: 2.2.4-1/sigstore/local/{WHEEL}.sigstore.json: signature check failed for {WHEEL} with "
        f"{WHEEL}.sigstore.json: Bundle message digest mismatch; delete it to sign again"
    )


def test_sign_stage_refuses_an_artifact_that_is_not_the_wheel_stages(signed, tmp_path):
    """A swapped artifact is never signed: its sha256 must be the one the wheel stage recorded."""
    ctx, _ = signed
    other = context_like(ctx, tmp_path)
    shutil.copytree(ctx.dist, other.dist)
    shutil.rmtree(other.bundles)
    (other.dist / WHEEL).write_bytes(b"a wheel from elsewhere")
    with pytest.raises(ReleaseError) as error:
        run_stage(other, "sign")
    assert str(error.value) == (
        f"refused: 2.2.4-1/sigstore/local/{WHEEL}.sigstore.json: dist/2.2.4-1/{WHEEL} has sha256 "
        f"{sha256_file(other.dist / WHEEL)}, the wheel stage built {ctx.manifest.get(WheelRecord).sha256(WHEEL)} "
        f"(and 2 more: see `invoke release 2.2.4-1 --dry-run`)"  # its two attestations are refused too
    )
    assert not other.bundles.exists() or not list(other.bundles.iterdir())


def test_gate_verifies_a_real_production_bundle_offline(signed, tmp_path):
    """Public-good Sigstore, as in GitHub Actions: the same gate, only the target's settings differ."""
    ctx, _ = signed
    workflows = ("trailofbits/pypi-attestation-models", "release.yml@refs/tags/v0.0.4a2", "nightly.yml@refs/heads/main")
    public = context_like(
        ctx, tmp_path, instance="public", workflows=workflows, issuer="https://token.actions.githubusercontent.com"
    )
    assert public.signer.identity == (
        "https://github.com/trailofbits/pypi-attestation-models/.github/workflows/release.yml@refs/tags/v0.0.4a2"
    )
    artifact = PRODUCTION / "pypi_attestation_models-0.0.4a2.tar.gz"
    bundle = PRODUCTION / "pypi_attestation_models-0.0.4a2.tar.gz.sigstore"
    verify(public, artifact, bundle)
    tampered = tmp_path / artifact.name
    tampered.write_bytes(artifact.read_bytes()[:-1] + bytes([artifact.read_bytes()[-1] ^ 1]))
    with pytest.raises(ReleaseError, match="^signature check failed for pypi_attestation_models-0.0.4a2.tar.gz"):
        verify(public, tampered, bundle)
