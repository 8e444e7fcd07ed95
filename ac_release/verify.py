"""`invoke verify <version>`: check a finished release as a stranger meets it.

It starts from an empty directory and the target's public trust material (trust config / trusted root) only. It
downloads every artifact from the index, and every bundle and attestation from where users fetch them (the
release-files artifact in the first registry for local targets, the GitHub release otherwise), never from dist/.
It checks each artifact's sha256, bundle and PEP 740 attestations with the target's identity and issuer; each
image's signature and attestations with cosign (a client this repository did not write); that the image's SBOM lists
the released Airflow, installed from the released wheel whose sha256 the provenance and the image label name; that
the provenance's subject is the pushed digest and its materials are the manifest's. Then it resolves every pushed tag,
pulls each image by digest and runs `airflow version` in it.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from ac_release import cosign, image_attestations, provenance, registry, release_files, sbom, wheel_attestations
from ac_release.context import ReleaseContext
from ac_release.errors import ReleaseError
from ac_release.fsutil import atomic_write_bytes
from ac_release.names import ATTESTATION_KINDS, artifact_names, attestation_name
from ac_release.names import release_files as release_file_names
from ac_release.published import fetch_verified
from ac_release.records import AttestRecord, ImagesRecord, PushRecord, WheelRecord

WHEEL_LABEL = "io.astronomer.docker.airflow.wheel.sha256"


def fetch_release_files(ctx: ReleaseContext, directory: Path) -> None:
    """Every bundle and attestation, from where a user fetches them."""
    directory.mkdir(parents=True, exist_ok=True)
    if ctx.target.local_services:
        repository = release_files.location(ctx.target.registries[0])
        for name in release_file_names(ctx.version):
            atomic_write_bytes(directory / name, release_files.fetch(repository, str(ctx.version), name))
        return
    result = subprocess.run(  # the GitHub release of the tag (ac_release/github.py attaches them)
        [
            "gh",
            "release",
            "download",
            f"v{ctx.version}",
            "--dir",
            str(directory),
            "--pattern",
            "*.sigstore.json",
            "--pattern",
            "*.attestation",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise ReleaseError(f"gh release download v{ctx.version} failed: {result.stderr.strip()[-300:]}")
    for name in release_file_names(ctx.version):
        if not (directory / name).is_file():
            raise ReleaseError(f"{name} is missing from the GitHub release v{ctx.version}")


def run_verify(ctx: ReleaseContext) -> list[tuple[str, str]]:
    checks: list[tuple[str, str]] = []
    wheel, pushed, attested = ctx.manifest.get(WheelRecord), ctx.record(PushRecord), ctx.record(AttestRecord)
    if wheel is None or pushed is None or attested is None:
        raise ReleaseError(f"{ctx.version} is not released to {ctx.target.name}: nothing to verify")
    signing = ctx.target.signing
    with tempfile.TemporaryDirectory(prefix="ac-verify-") as tmp:
        client, published = Path(tmp) / "files", Path(tmp) / "published"
        fetch_release_files(ctx, published)
        names = artifact_names(ctx.version)
        fetched = fetch_verified(ctx, names, client, published)
        for name in names:
            for kind in ATTESTATION_KINDS:
                wheel_attestations.check(ctx, fetched[name], published / attestation_name(name, kind), kind)
            checks.append((name, f"sha256 {wheel.sha256(name)}, bundle and attestations of {signing.identity}"))
    released = [t for t in pushed.tags if t.action != "kept"]
    for pushed_tag in released:
        remote = registry.remote_image(ctx.target.registry(pushed_tag.repository), pushed_tag.tag)
        if remote is None or remote.config != pushed_tag.image:
            raise ReleaseError(
                f"{pushed_tag.repository}:{pushed_tag.tag} does not point to the released image {pushed_tag.image}"
            )
    checks += _verify_attestations(ctx, wheel, attested)
    for repository, image, digest in sorted({(t.repository, t.image, t.digest) for t in released if not t.floating}):
        reference = f"{repository}@{digest}"
        with registry.authenticated(ctx.docker, ctx.target.registry(repository)) as docker:
            docker("pull", "--quiet", reference, capture=True)
        if ctx.docker.image_id(reference) != image:
            raise ReleaseError(f"{reference} pulled as {ctx.docker.image_id(reference)}, released {image}")
        out = ctx.docker("run", "--rm", reference, "airflow", "version", capture=True).stdout.decode().strip()
        if out.splitlines()[-1:] != [ctx.version.wheel_version]:
            raise ReleaseError(f"airflow version in {reference} prints {out!r}, expected {ctx.version.wheel_version}")
        tags = sorted(t.tag for t in released if t.repository == repository and t.image == image)
        checks.append((reference, f"tags {', '.join(tags)}; airflow {ctx.version.wheel_version}"))
    return checks


def _verify_attestations(ctx: ReleaseContext, wheel: WheelRecord, attested: AttestRecord) -> list[tuple[str, str]]:
    signing = ctx.target.signing
    trust = cosign.trust_of(ctx)
    airflow_wheel = next(n for n in wheel.artifacts if n.startswith("apache_airflow-") and n.endswith(".whl"))
    package = ("apache-airflow", ctx.version.wheel_version)
    checks = []
    for image in sorted(attested.images, key=lambda i: (i.repository, i.digest)):
        repository = ctx.target.registry(image.repository)  # with its TLS settings and login
        reference = cosign.ImageReference.of(repository, image.digest)
        labels = registry.labels(repository, image.digest)
        commit = labels.get(image_attestations.REVISION_LABEL, "")
        inputs = image_attestations.expected_inputs(ctx, wheel, _base_image(ctx, image), image.base_image, commit)
        found = image_attestations.check_image(
            trust, reference, signing.identity, signing.issuer, image_attestations.flat(inputs), package
        )
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
                f"by {signing.identity}",
            )
        )
    return checks


def _base_image(ctx: ReleaseContext, image) -> str:
    images = ctx.record(ImagesRecord)
    for entry in images.flavours.values() if images else []:
        for variant in entry.variants.values():
            if variant.ref.rsplit(":", 1)[-1] == image.tag:
                return entry.base_image
    raise ReleaseError(f"{image.repository}:{image.tag} is not an image of the images record")
