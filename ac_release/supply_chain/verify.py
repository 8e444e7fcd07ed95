"""`invoke verify <version>`: check a finished release as a stranger meets it.

It starts from an empty directory and the target's public trust material (trust config / trusted root) only. It
downloads every artifact from the index, and every bundle and attestation from where users fetch them (the
release-files artifact in the first registry), never from dist/ or the manifest.
It checks each artifact's sha256, bundle and PEP 740 attestations against the version's signer (its workflow,
repository and ref for GitHub Actions' identity); each image's signature and attestations with cosign (a client this
repository did not write); that the image's SBOM lists the released Airflow, installed from the released wheel whose
sha256 the provenance and the image label name; that the provenance's subject is the pushed digest and its materials
are the release's inputs, the base image the one the image's OCI base labels record (an official base at its pin),
never the local Docker engine's (a debootstrap base is built on the build machine and never pushed). Then it resolves
every immutable tag (and the floating tags that point to the same digest) to its index, checks the index's signature,
and for every platform of it checks that platform's image as above, pulls it by digest as that platform and runs
`uname -m` and `airflow version` in it (an arm64 image under emulation on an amd64 machine).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ac_release.clients import oci_release_files as release_files
from ac_release.clients import registry
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_bytes
from ac_release.model.flavours import Platform
from ac_release.model.names import ATTESTATION_KINDS, WHEEL_RECORD, attestation_name
from ac_release.model.records import WheelRecord
from ac_release.supply_chain import cosign, image_attestations, provenance, sbom, wheel_attestations
from ac_release.supply_chain.fetch import fetch_verified
from ac_release.world.context import ReleaseContext
from ac_release.world.released_images import ReleasedImage, released_images

WHEEL_LABEL = "io.astronomer.docker.airflow.wheel.sha256"


def fetch_release_files(ctx: ReleaseContext, directory: Path) -> None:
    """Every bundle, attestation and the wheel record, from the release-files artifact of the first registry."""
    directory.mkdir(parents=True, exist_ok=True)
    repository = release_files.location(ctx.target.registries[0])
    for name, data in release_files.fetch_files(repository, str(ctx.version), ctx.release_files).items():
        atomic_write_bytes(directory / name, data)


def run_verify(ctx: ReleaseContext) -> list[tuple[str, str]]:
    """Nothing local is read: no manifest, no dist/. What is verified is what the index and the registries serve."""
    checks: list[tuple[str, str]] = []
    signer = ctx.signer
    with tempfile.TemporaryDirectory(prefix="ac-verify-") as tmp:
        client, published = Path(tmp) / "files", Path(tmp) / "published"
        fetch_release_files(ctx, published)
        wheel = WheelRecord.from_json(json.loads((published / WHEEL_RECORD).read_text()))
        names = ctx.artifact_names
        fetched = fetch_verified(ctx, names, client, published, wheel)
        for name in names:
            for kind in ATTESTATION_KINDS:
                wheel_attestations.verify(ctx, fetched[name], published / attestation_name(name, kind), kind)
            checks.append((name, f"sha256 {wheel.sha256(name)}, bundle and attestations of {signer.identity}"))
    images = sorted(released_images(ctx), key=lambda image: (image.repository, image.digest))
    checks += _verify_indexes(ctx, images)
    checks += _verify_attestations(ctx, wheel, images)
    for image in images:
        for platform, digest in image.platforms.items():
            checks.append(_run_platform(ctx, image, Platform.parse(platform), digest))
    return checks


def _verify_indexes(ctx: ReleaseContext, images: list[ReleasedImage]) -> list[tuple[str, str]]:
    """Each index's own signature (the index stage's), by the version's signer."""
    trust, signer, checks = cosign.trust_of(ctx), ctx.signer, []
    for repository, digest in sorted({(image.repository, image.digest) for image in images}):
        reference = cosign.ImageReference.of(ctx.target.registry(repository), digest)
        cosign.verify_image(trust, reference, signer)
        checks.append((f"{reference} index", f"signature by {signer.identity}"))
    return checks


def _run_platform(ctx: ReleaseContext, image: ReleasedImage, platform: Platform, digest: str) -> tuple[str, str]:
    """Pull one platform's image by its digest, as that platform, and run it: the kernel's architecture and
    `airflow version`."""
    reference = f"{image.repository}@{digest}"
    with registry.authenticated(ctx.docker, ctx.target.registry(image.repository)) as docker:
        docker("pull", "--quiet", "--platform", str(platform), reference, capture=True)
    config = ctx.world.remote_image(image.repository, digest).config
    if ctx.docker.image_id(reference) != config:
        raise ReleaseError(f"{reference} pulled as {ctx.docker.image_id(reference)}, the registry names {config}")
    run = ("run", "--rm", "--platform", str(platform), reference)
    machine = ctx.docker(*run, "uname", "-m", capture=True).stdout.decode().strip()
    if machine != platform.machine:
        raise ReleaseError(f"{reference} ({platform}) runs as {machine!r}, expected {platform.machine}")
    out = ctx.docker(*run, "airflow", "version", capture=True).stdout.decode().strip()
    if out.splitlines()[-1:] != [ctx.version.wheel_version]:
        raise ReleaseError(f"airflow version in {reference} prints {out!r}, expected {ctx.version.wheel_version}")
    tags = ", ".join(image.tags)
    return (reference, f"{platform} of {tags}; uname -m {machine}; airflow {ctx.version.wheel_version}")


def _verify_attestations(ctx: ReleaseContext, wheel: WheelRecord, images: list[ReleasedImage]) -> list[tuple[str, str]]:
    signer = ctx.signer
    trust = cosign.trust_of(ctx)
    airflow_wheel = next(n for n in wheel.artifacts if n.startswith("apache_airflow-") and n.endswith(".whl"))
    package = ("apache-airflow", ctx.version.wheel_version)
    checks = []
    for image, platform, digest in [(i, p, d) for i in images for p, d in i.platforms.items()]:
        repository = ctx.target.registry(image.repository)  # with its TLS settings and login
        reference = cosign.ImageReference.of(repository, digest)
        labels = registry.labels(repository, digest)
        try:  # the base the pushed image records, never this machine's engine (a debootstrap base is the builder's)
            inputs = image_attestations.pushed_image_inputs(
                ctx, wheel, labels, image.flavour, platform=Platform.parse(platform)
            )
        except ReleaseError as exc:
            raise ReleaseError(f"{reference}: {exc}") from exc
        found = image_attestations.check_image(trust, reference, signer, image_attestations.flat(inputs), package)
        if found.refused or found.missing:
            problems = found.refused + [f"{kind}: missing" for kind in found.missing]
            raise ReleaseError(f"{reference}: {'; '.join(problems)}")
        bom = found.statements["cyclonedx"]["predicate"]
        if (source := sbom.installed_from(bom, *package)) != airflow_wheel:
            raise ReleaseError(
                f"the SBOM of {reference} has apache-airflow installed from {source}, not {airflow_wheel}"
            )
        named = {
            i.name: i.digest.get("sha256")
            for i in provenance.resolved_dependencies(found.statements["slsaprovenance1"])
            if i.role == "wheel"
        }
        if not (named.get(airflow_wheel) == labels.get(WHEEL_LABEL) == wheel.sha256(airflow_wheel)):
            raise ReleaseError(
                f"{reference}: the provenance names {airflow_wheel} sha256 {named.get(airflow_wheel)}, the image label "
                f"{labels.get(WHEEL_LABEL)}, the release published {wheel.sha256(airflow_wheel)}"
            )
        checks.append(
            (
                f"{reference} attestations",
                f"signature, CycloneDX + SPDX SBOMs (apache-airflow=={ctx.version.wheel_version} from {airflow_wheel} "
                f"sha256 {named[airflow_wheel]}), SLSA provenance of this digest with the manifest's inputs, "
                f"by {signer.identity}",
            )
        )
    return checks
