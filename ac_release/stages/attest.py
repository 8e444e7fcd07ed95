"""Stage `attest`: every pushed image digest, on every registry of the target, signed and attested by the target's
Sigstore identity with cosign: a keyless signature, CycloneDX and SPDX SBOMs (syft, one scan per digest) and SLSA v1
provenance naming every input of the build.

check: `sign` what is missing, `keep` what verifies, `refuse` what exists but does not verify for this identity (or
names another digest, SBOM or inputs), `unknown` while the registry is down. Steps are per image, named after its
flavour's immutable tag, so that the dry run before the push lists the same steps the run then takes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ac_release.building.baseimage import base_digest
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.flavours import VARIANTS
from ac_release.model.records import AttestedImage, AttestRecord, ImagesRecord, PushRecord, WheelRecord
from ac_release.stages.steps import Step, open_steps
from ac_release.supply_chain import cosign, image_attestations, sbom
from ac_release.supply_chain.signing import client_token
from ac_release.world.context import ReleaseContext, ensure_local_services, flavours, services_running

NAME = "attest"
WHAT = "signature, CycloneDX and SPDX SBOMs, SLSA provenance"


def check(ctx: ReleaseContext) -> list[Step]:
    if not services_running(ctx):
        return [Step(NAME, "unknown", where, "registry not running") for where, _ in _targets(ctx)]
    signer = ctx.signer
    pushed = ctx.record(PushRecord)
    digests = {(t.repository, t.tag): t.digest for t in pushed.tags if t.digest and not t.floating} if pushed else {}
    images, wheel = ctx.record(ImagesRecord), ctx.manifest.get(WheelRecord)
    targets = _targets(ctx)
    if images is None or wheel is None or not any(digests.get((d["repository"], d["tag"])) for _, d in targets):
        return [Step(NAME, "sign", where, f"once pushed: {WHAT} as {signer.identity}", data) for where, data in targets]
    trust = cosign.trust_of(ctx)
    tags = {repository: ctx.world.tags(repository) for repository in ctx.target.registries}

    def judge(where: str, data: dict) -> Step:
        repository = data["repository"]
        digest = digests.get((repository, data["tag"]))
        if digest is None:
            return Step(NAME, "sign", where, f"once pushed: {WHAT} as {signer.identity}", data)
        image = cosign.ImageReference.of(repository, digest)  # reached with the registry's TLS and login
        try:
            inputs = _inputs(ctx, images, wheel, data["flavour"], image)
            found = image_attestations.check_image(
                trust,
                image,
                signer,
                image_attestations.flat(inputs),
                ("apache-airflow", ctx.version.wheel_version),
                tags[repository],
                ctx.world.remote_image,
            )
        except ReleaseError as exc:
            return Step(NAME, "refuse", where, str(exc), data)
        data = data | {"digest": digest, "missing": found.missing, "inputs": inputs}
        if found.refused:
            reason = f"{image}: {'; '.join(found.refused)}; remove them from the registry to attest again"
            return Step(NAME, "refuse", where, reason, data)
        if found.missing:
            return Step(NAME, "sign", where, f"{image}: {', '.join(found.missing)} as {signer.identity}", data)
        return Step(NAME, "keep", where, f"{image}: {WHAT} verify as {signer.identity}", data)

    # Each image is verified on its own (cosign waits on the registry and Sigstore): two at a time.
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda target: judge(*target), targets))


def _targets(ctx: ReleaseContext) -> list[tuple[str, dict]]:
    targets = []
    for repository in ctx.target.registries:
        for flavour in flavours(ctx):
            for variant in VARIANTS:
                tag = flavour.tags(ctx.version, variant)[-1]
                data = {"repository": repository, "tag": tag, "flavour": flavour.name, "variant": variant}
                targets.append((f"{repository}:{tag}.sig+att", data))
    return targets


def _inputs(
    ctx: ReleaseContext, images: ImagesRecord, wheel: WheelRecord, flavour: str, image: cosign.ImageReference
) -> dict:
    entry = images.flavours[flavour]
    labels = ctx.world.labels(image.registry, image.digest)
    # the digest the build labelled the image with, which verify reads back: where this engine has a debootstrap
    # base, its id must be that label; an official base's label must be its pin
    base = base_digest(entry.base_image, ctx.world.image_id(entry.base_image), labels)
    commit = labels.get(image_attestations.REVISION_LABEL, "")
    return image_attestations.expected_inputs(ctx, wheel, entry.base_image, base, commit)


def _reference(ctx: ReleaseContext, data: dict) -> cosign.ImageReference:
    """The pushed image of a step, reached with its registry's TLS and login."""
    return cosign.ImageReference.of(ctx.target.registry(data["repository"]), data["digest"])


def _stem(data: dict) -> str:
    """The name of a step's SBOM and provenance files in dist/attestations/<target>/."""
    return f"{data['flavour']}-{data['variant']}"


def _scan_all(ctx: ReleaseContext, out, steps: list[Step]) -> dict[str, tuple]:
    """{digest: (cdx, spdx)}: one syft scan per digest, whatever the registry, the scans side by side (each mostly
    reads and unpacks layers: two cores run two in about the time of one)."""
    wanted: dict[str, tuple] = {}
    for step in steps:
        data = step.data
        if data["digest"] not in wanted:
            stem = _stem(data)
            wanted[data["digest"]] = (_reference(ctx, data), out / f"{stem}.cdx.json", out / f"{stem}.spdx.json")

    def scan(reference, cyclonedx, spdx) -> None:
        ctx.log(f"attest: SBOMs of {reference} (syft)")
        with ctx.view.row(f"sbom {reference}", level=1):
            sbom.scan_image(reference, cyclonedx, spdx)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda item: scan(*item), wanted.values()))  # list(): the first failure raises here
    return {digest: (cyclonedx, spdx) for digest, (_, cyclonedx, spdx) in wanted.items()}


def run(ctx: ReleaseContext, steps: list[Step]) -> AttestRecord:
    ensure_local_services(ctx)
    signer = ctx.signer
    trust = cosign.trust_of(ctx)
    out = ctx.dist / "attestations" / ctx.target.name
    todo = open_steps(steps)
    for step in todo:
        if "digest" not in step.data:
            raise ReleaseError(f"{step.target}: not pushed yet: run `invoke release {ctx.version}`")
    scanned = _scan_all(ctx, out, todo)
    token = client_token(ctx) if todo else None  # None: cosign asks GitHub Actions' provider per call

    def attest(step: Step) -> None:
        data = step.data
        reference = _reference(ctx, data)
        statement = image_attestations.statement(
            ctx, data["repository"], data["digest"], data["inputs"], data["flavour"], data["variant"]
        )
        predicate = image_attestations.write_predicate(out / f"{_stem(data)}.provenance.json", statement)
        ctx.log(f"attest: {', '.join(data['missing'])} of {reference} as {signer.identity}")
        with ctx.view.row(f"attest {reference}", level=1):
            try:
                image_attestations.make(trust, reference, token, data["missing"], scanned[data["digest"]], predicate)
            finally:
                ctx.world.wrote(data["repository"], *image_attestations.cosign_tags(data["digest"]))

    # Images side by side: each digest's signature and attestations go to tags of their own (sha256-<digest>.sig,
    # .att), and one image's attestations are made in order.
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(attest, todo))  # list(): the first failure raises here
    after = check(ctx)  # what was made must now verify, or the stage fails
    if not_done := [step for step in after if step.action not in ("keep", "skip")]:
        raise ReleaseError(f"after attesting, {not_done[0].target}: {not_done[0].action}: {not_done[0].reason}")
    record = AttestRecord(
        identity=signer.identity,
        issuer=signer.issuer,
        images=[
            AttestedImage(
                repository=step.data["repository"],
                tag=step.data["tag"],
                digest=step.data["digest"],
                base_image=step.data["inputs"]["base_image"].uri.rsplit("@", 1)[1],
                revision=step.data["inputs"]["source"].digest["gitCommit"],
                files={
                    str(path.relative_to(ctx.dist)): sha256_file(path)
                    for path in out.glob(f"{_stem(step.data)}.*.json")
                },
            )
            for step in after
        ],
    )
    ctx.save(record)
    return record
