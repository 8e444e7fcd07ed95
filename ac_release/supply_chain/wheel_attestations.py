"""PEP 740 attestations of the wheels and the sdist (pypi-attestations), made and checked offline against the
target's Sigstore instance.

Two per artifact: `publish` (predicate https://docs.pypi.org/attestations/publish/v1) and `slsa` (SLSA v1 provenance
naming the sdist, the patches and the build requirements it was built from). `Attestation.verify` of
pypi-attestations knows only the public instances, so `verify` is sigstore's `Verifier.verify_dsse` with the
target's trusted root, then the subject (file name and sha256) and the predicate are compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ac_release.building.image_build import SOURCE
from ac_release.clients.tlsclients import trusting
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.records import WheelRecord
from ac_release.supply_chain import provenance
from ac_release.supply_chain.signing import identity_token, services_ca, signer_policy, trust_config_path
from ac_release.world.context import ReleaseContext

if TYPE_CHECKING:
    from sigstore.models import ClientTrustConfig
    from sigstore.verify import Verifier

# pypi-attestations' AttestationType.PYPI_PUBLISH_V1 (a unit test holds them equal). pypi-attestations and sigstore
# are imported only where an attestation is made or read: loading them costs every command a third of a second.
PREDICATE_TYPES = {"publish": "https://docs.pypi.org/attestations/publish/v1", "slsa": provenance.PREDICATE_TYPE}
# The inputs that decide the bytes: a later commit that keeps the same wheels keeps their provenance too.
DECIDING_ROLES = ("sdist", "patch", "build-requirements")


def wheel_inputs(ctx: ReleaseContext) -> dict[str, list[provenance.Input]]:
    """The resolved inputs of the wheel stage's build, from the line's files."""
    line = ctx.line
    return {
        "sdist": [provenance.file_input("sdist", line.sdist.filename, line.sdist.sha256, line.sdist.url)],
        "patches": [provenance.file_input("patch", p.name, sha256_file(p)) for p in line.patches],
        "build_requirements": [
            provenance.file_input(
                "build-requirements", line.build_requirements_file.name, sha256_file(line.build_requirements_file)
            )
        ],
    }


def slsa_predicate(ctx: ReleaseContext, artifact: str, sha256: str, commit: str) -> dict:
    inputs = wheel_inputs(ctx)
    wheel = ctx.manifest.get(WheelRecord)
    statement = provenance.wheel_statement(
        artifact,
        sha256,
        sdist=inputs["sdist"][0],
        patches=inputs["patches"],
        build_requirements=inputs["build_requirements"][0],
        source=provenance.git_input(SOURCE, commit),
        builder_id=f"{SOURCE}/ac-release/wheel",
        external_parameters={
            "version": str(ctx.version),
            "buildenv": wheel.buildenv if wheel else "",
            "source_date_epoch": ctx.line.source_date_epoch,
        },
    )
    return statement["predicate"]


def _client_trust_config(ctx: ReleaseContext) -> ClientTrustConfig:
    from sigstore.models import ClientTrustConfig

    path = trust_config_path(ctx)
    if path is None:
        return ClientTrustConfig.production()
    if not path.is_file():
        raise ReleaseError(f"Sigstore trust config {path} is missing: run `invoke services.up` (local target)")
    return ClientTrustConfig.from_json(path.read_text(encoding="utf-8"))


def verifier(ctx: ReleaseContext) -> Verifier:
    from sigstore.verify import Verifier

    path = trust_config_path(ctx)
    if path is None:
        return Verifier.production(offline=True)  # the trust root shipped with the pinned client
    return Verifier(trusted_root=_client_trust_config(ctx).trusted_root)


def sign(ctx: ReleaseContext, jobs: list[tuple[Path, str, dict | None]]) -> dict[tuple[str, str], bytes]:
    """Attest each (artifact, kind, predicate) with one signing certificate; returns the attestations' JSON bytes."""
    token = identity_token(ctx)  # fetched now: GitHub Actions' tokens expire in minutes
    from pypi_attestations import Attestation, Distribution
    from sigstore.dsse import DigestSet, StatementBuilder, Subject
    from sigstore.errors import Error as SigstoreError
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    signing = SigningContext.from_trust_config(_client_trust_config(ctx))
    made = {}
    try:
        with trusting(services_ca(ctx)), signing.signer(IdentityToken(token)) as signer:
            for artifact, kind, predicate in jobs:
                distribution = Distribution.from_file(artifact)
                subject = Subject(name=distribution.name, digest=DigestSet(root={"sha256": distribution.digest}))
                if kind == "publish":
                    attestation = Attestation.sign(signer, distribution)
                else:
                    statement = (
                        StatementBuilder()
                        .subjects([subject])
                        .predicate_type(PREDICATE_TYPES[kind])
                        .predicate(predicate)
                        .build()
                    )
                    attestation = Attestation.from_bundle(signer.sign_dsse(statement))
                made[(artifact.name, kind)] = attestation.model_dump_json().encode()
    except (SigstoreError, ValueError) as exc:
        raise ReleaseError(f"attesting {artifact.name} ({kind}) failed: {exc}") from None
    return made


def verify(ctx: ReleaseContext, artifact: Path, attestation_file: Path, kind: str) -> None:
    """The attestation must be signed by the target's identity, name this file and its sha256, carry the kind's
    predicate type and, for provenance, name the inputs that decided the bytes; raises ReleaseError otherwise."""
    signer = ctx.signer
    where = attestation_file.name
    if not attestation_file.is_file():
        raise ReleaseError(f"{where} is missing")
    from pypi_attestations import Attestation
    from sigstore.errors import Error as SigstoreError

    try:
        attestation = Attestation.model_validate_json(attestation_file.read_bytes())
        _, payload = verifier(ctx).verify_dsse(attestation.to_bundle(), signer_policy(signer))
    except (SigstoreError, ValueError) as exc:
        raise ReleaseError(f"{where} does not verify as {signer.identity}: {str(exc).splitlines()[0]}") from None
    statement = json.loads(payload)
    subjects = statement.get("subject", [])
    ours = {"name": artifact.name, "digest": {"sha256": sha256_file(artifact)}}
    if subjects != [ours]:
        named = ", ".join(f"{s.get('name')} sha256 {s.get('digest', {}).get('sha256')}" for s in subjects)
        wanted = f"{artifact.name} sha256 {ours['digest']['sha256']}"
        raise ReleaseError(f"{where} attests {named or 'nothing'}, not {wanted}")
    if statement.get("predicateType") != PREDICATE_TYPES[kind]:
        raise ReleaseError(f"{where} has predicate type {statement.get('predicateType')}, not {PREDICATE_TYPES[kind]}")
    if kind == "slsa":
        expected = [i for inputs in wheel_inputs(ctx).values() for i in inputs]
        named = [i for i in provenance.resolved_dependencies(statement) if i.role in DECIDING_ROLES]
        if problems := provenance.mismatched_inputs(_with(named), expected):
            raise ReleaseError(f"{where} names other build inputs: {'; '.join(problems)}")


def _with(inputs: list[provenance.Input]) -> dict:
    return {"predicate": {"buildDefinition": {"resolvedDependencies": [i.descriptor() for i in inputs]}}}
