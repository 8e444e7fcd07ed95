"""What a release image must carry in its registry, and the check of it: a keyless cosign signature, CycloneDX and
SPDX SBOM attestations and an SLSA v1 provenance attestation, each by the target's identity. The shared queries of
the attest stage and of `invoke verify`.

The check first lists the repository's tags (one skopeo call): an image without cosign's `sha256-<hex>.sig` or
`.att` tag lacks them, and nothing else is asked. A present one is verified with cosign against the target's
identity and issuer; the verified SBOM must list the released package, and the verified provenance must name
exactly the release's inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ac_release.building.baseimage import base_digest, labelled_base
from ac_release.building.image_build import SOURCE
from ac_release.clients import registry
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.config import Signer
from ac_release.model.flavours import AMD64, Flavour, Platform
from ac_release.model.records import WheelRecord
from ac_release.supply_chain import cosign, provenance, sbom
from ac_release.world.context import ReleaseContext

SBOM_KINDS = ("cyclonedx", "spdxjson")
KINDS = ("signature", *SBOM_KINDS, "slsaprovenance1")
REVISION_LABEL = "org.opencontainers.image.revision"
# Complete checks that passed in this process, by everything they depend on (the `.sig` and `.att` manifest digests
# among it): the preflight and the stage ask the same question of the same registry state.
_verified: dict[tuple, ImageCheck] = {}


@dataclass
class ImageCheck:
    """What an image in one registry carries: verified kinds, missing ones, and refusals with their reasons."""

    verified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    statements: dict[str, dict] = field(default_factory=dict)


def cosign_tag(digest: str, suffix: str) -> str:
    return f"sha256-{digest.removeprefix('sha256:')}.{suffix}"


def cosign_tags(digest: str) -> tuple[str, str]:
    """The tags cosign writes a digest's signature and attestations to, beside the image."""
    return cosign_tag(digest, "sig"), cosign_tag(digest, "att")


def expected_inputs(ctx: ReleaseContext, wheel: WheelRecord, base_image: str, base: str, commit: str) -> dict:
    """The inputs of an image build as `provenance.image_statement` takes them."""
    line = ctx.line
    return {
        "sdist": provenance.file_input("sdist", line.sdist.filename, line.sdist.sha256, line.sdist.url),
        "patches": [provenance.file_input("patch", p.name, sha256_file(p)) for p in line.patches],
        "lock": provenance.file_input("lock", line.lock_file.name, sha256_file(line.lock_file)),
        "wheels": [
            provenance.file_input("wheel", name, artifact.sha256)
            for name, artifact in sorted(wheel.artifacts.items())
            if name.endswith(".whl")
        ],
        "base_image": provenance.image_input("base-image", base_image.split("@")[0], base),
        "source": provenance.git_input(SOURCE, commit),
    }


def pushed_image_inputs(
    ctx: ReleaseContext,
    wheel: WheelRecord,
    labels: Mapping[str, str],
    flavour: Flavour,
    built_base: str | None = None,
    platform: Platform | None = None,
) -> dict:
    """The inputs a pushed image's provenance must name, its base and commit as its `labels` record them. The base
    is checked against `built_base`, the one the images stage recorded (the attest stage, where this engine holds a
    debootstrap base), or, without it (verify, on any machine), the flavour's pin or the pipeline's debootstrap
    naming of `platform`'s base: never against this machine's engine."""
    if built_base is None:
        base_image, base = labelled_base(ctx.target.base_images, flavour.distro, flavour.python, labels, platform)
    else:
        base_image, base = built_base, base_digest(built_base, ctx.world.image_id(built_base), labels)
    return expected_inputs(ctx, wheel, base_image, base, labels.get(REVISION_LABEL, ""))


def flat(inputs: dict) -> list[provenance.Input]:
    return [
        inputs["sdist"],
        *inputs["patches"],
        inputs["lock"],
        *inputs["wheels"],
        inputs["base_image"],
        inputs["source"],
    ]


def statement(
    ctx: ReleaseContext,
    repository: str,
    digest: str,
    inputs: dict,
    flavour: str,
    variant: str,
    platform: Platform = AMD64,
) -> dict:
    return provenance.image_statement(
        repository,
        digest,
        **inputs,
        builder_id=f"{SOURCE}/ac-release/image",
        external_parameters={
            "version": str(ctx.version),
            "flavour": flavour,
            "variant": variant,
            "platform": str(platform),
        },
    )


def check_image(
    trust: cosign.Trust,
    reference: str | cosign.ImageReference,
    signer: Signer,
    inputs: list[provenance.Input],
    package: tuple[str, str],
    tags: list[str] | None = None,
    remote_image: Callable[[str, str], registry.RemoteImage | None] | None = None,
) -> ImageCheck:
    """Ask the registry what `REPOSITORY@DIGEST` carries (reached as `cosign.ImageReference.of` says); `package` is
    (name, version) its SBOM must list. `tags` and `remote_image`: the registry's answers as the caller has them
    (a run's world), else asked here."""
    image = cosign.ImageReference.coerce(reference)
    tags = registry.tags(image.registry) if tags is None else tags
    remote_image = remote_image or registry.remote_image
    key = None
    if {cosign_tag(image.digest, "sig"), cosign_tag(image.digest, "att")} <= set(tags):
        held = [remote_image(image.registry, cosign_tag(image.digest, suffix)) for suffix in ("sig", "att")]
        inputs_key = tuple(json.dumps(i.descriptor(), sort_keys=True) for i in inputs)
        key = (str(image), signer, *(h.digest if h else None for h in held), inputs_key, package)
        if key in _verified:
            return _verified[key]

    def judge(kind: str) -> tuple[str, str, dict | None]:
        """(verified | missing | refused, what is said of it, the verified statement) of one kind."""
        if cosign_tag(image.digest, "sig" if kind == "signature" else "att") not in tags:
            return "missing", kind, None
        try:
            if kind == "signature":
                cosign.verify_image(trust, image, signer)
                return "verified", kind, None
            (verified, *_) = cosign.verify_attestation(trust, image, kind, signer)
        except ReleaseError as exc:
            if "none of the attestations matched the predicate type" in str(exc):
                return "missing", kind, None  # others are attested, this one is not
            return "refused", f"{kind}: {exc}", None
        if problem := _problem(kind, verified, image, inputs, package):
            return "refused", f"{kind}: {problem}", None
        return "verified", kind, verified

    # The kinds side by side: each cosign call mostly waits on the registry (user time 0.5 s of about 2 s)
    with ThreadPoolExecutor(max_workers=len(KINDS)) as pool:
        judged = list(pool.map(judge, KINDS))
    result = ImageCheck()
    for kind, (outcome, said, statement) in zip(KINDS, judged, strict=True):
        getattr(result, outcome).append(said)
        if statement is not None:
            result.statements[kind] = statement
    if key is not None and not result.missing and not result.refused:
        _verified[key] = result
    return result


def _problem(kind: str, statement: dict, image, inputs: list[provenance.Input], package: tuple[str, str]) -> str:
    if kind == "cyclonedx" and not sbom.sbom_lists(statement.get("predicate", {}), *package):
        return f"the attested SBOM does not list {package[0]}=={package[1]}"
    if kind == "slsaprovenance1":
        subjects = [(s.get("name"), s.get("digest", {}).get("sha256")) for s in statement.get("subject", [])]
        if subjects != [(image.name, image.digest.removeprefix("sha256:"))]:
            return f"the provenance is about {subjects}, not {image}"
        if problems := provenance.mismatched_inputs(statement, inputs):
            return "the provenance names other inputs: " + "; ".join(problems)
    return ""


def make(
    trust: cosign.Trust,
    reference: str | cosign.ImageReference,
    token: str | None,
    missing: list[str],
    sboms: tuple[Path, Path],
    predicate: Path,
) -> None:
    """Sign and attest what is missing (cosign writes the subject from the digest itself)."""
    files = {"cyclonedx": sboms[0], "spdxjson": sboms[1], "slsaprovenance1": predicate}
    if "signature" in missing:
        cosign.sign_image(trust, reference, token)
    for kind in KINDS[1:]:
        if kind in missing:
            cosign.attest_image(trust, reference, files[kind], kind, token)


def write_predicate(path: Path, statement: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(statement["predicate"], indent=1, sort_keys=True), encoding="utf-8")
    return path
