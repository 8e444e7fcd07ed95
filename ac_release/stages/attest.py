"""Stage `attest`: every pushed platform image digest (each platform's own tag, `2.2.4-1-bullseye-arm64`), on every
registry of the target, signed and attested by the target's Sigstore identity with cosign: a keyless signature,
CycloneDX and SPDX SBOMs (syft, one scan per digest) and SLSA v1 provenance naming every input of the build.

decide: `sign` what is missing, `keep` what verifies, `refuse` what exists but does not verify for this identity (or
names another digest, SBOM or inputs), `unknown` while the registry is down. Steps are per image, named after its
platform's own tag, so that the dry run before the push lists the same steps the run then takes. The index of the
platforms is signed by the `index` stage.
"""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.flavours import VARIANTS, Platform
from ac_release.model.records import AttestedImage, AttestRecord, ImagesRecord, PushRecord, WheelRecord
from ac_release.stages.steps import Step, open_steps
from ac_release.supply_chain import cosign, image_attestations, sbom
from ac_release.supply_chain.signing import client_token
from ac_release.world.context import ReleaseContext, flavours, platforms, services_running

NAME = "attest"
WHAT = "signature, CycloneDX and SPDX SBOMs, SLSA provenance"


@dataclass(frozen=True)
class AttestTarget:
    """A pushed image of the release in one registry, named by its flavour's immutable tag; once pushed, its
    `digest`, the kinds it lacks and the `inputs` its provenance names."""

    repository: str
    tag: str
    flavour: str
    variant: str
    platform: Platform
    digest: str | None = None
    missing: tuple[str, ...] = ()
    inputs: dict | None = field(default=None, compare=False)

    @property
    def stem(self) -> str:
        """The name of its SBOM and provenance files in dist/attestations/<target>/."""
        return f"{self.flavour}-{self.variant}-{self.platform.architecture}"


def decide(ctx: ReleaseContext, earlier: Collection[str] = ()) -> list[Step[AttestTarget]]:
    """sign what is missing, keep what verifies, refuse what does not; an image not pushed is signed once pushed,
    when the push stage runs before in this run, and refused otherwise."""
    targets = _targets(ctx)
    if not services_running(ctx):
        return [Step(NAME, "unknown", where, "registry not running", target) for where, target in targets]
    signer = ctx.signer

    def unpushed(where: str, target: AttestTarget) -> Step[AttestTarget]:
        if "push" in earlier:
            return Step(NAME, "sign", where, f"once pushed: {WHAT} as {signer.identity}", target)
        return Step(NAME, "refuse", where, f"not pushed yet: run `invoke release {ctx.version}`", target)

    pushed = ctx.record(PushRecord)
    digests = {(t.repository, t.tag): t.digest for t in pushed.tags if t.digest and not t.floating} if pushed else {}
    images, wheel = ctx.record(ImagesRecord), ctx.manifest.get(WheelRecord)
    if images is None or wheel is None or not any(digests.get((t.repository, t.tag)) for _, t in targets):
        return [unpushed(where, target) for where, target in targets]
    trust = cosign.trust_of(ctx)
    tags = {repository: ctx.world.tags(repository) for repository in ctx.target.registries}
    flavour_of = {flavour.name: flavour for flavour in flavours(ctx)}

    def judge(where: str, target: AttestTarget) -> Step[AttestTarget]:
        digest = digests.get((target.repository, target.tag))
        if digest is None:
            return unpushed(where, target)
        image = cosign.ImageReference.of(target.repository, digest)  # reached with the registry's TLS and login
        try:
            labels = ctx.world.labels(image.registry, image.digest)
            built = images.of(target.flavour, target.platform)
            if built is None:
                return Step(NAME, "refuse", where, f"no {target.platform} images of {ctx.version} built here", target)
            inputs = image_attestations.pushed_image_inputs(
                ctx, wheel, labels, flavour_of[target.flavour], built.base_image, target.platform
            )
            found = image_attestations.check_image(
                trust,
                image,
                signer,
                image_attestations.flat(inputs),
                ("apache-airflow", ctx.version.wheel_version),
                tags[target.repository],
                ctx.world.remote_image,
            )
        except ReleaseError as exc:
            return Step(NAME, "refuse", where, str(exc), target)
        target = replace(target, digest=digest, missing=tuple(found.missing), inputs=inputs)
        if found.refused:
            reason = f"{image}: {'; '.join(found.refused)}; remove them from the registry to attest again"
            return Step(NAME, "refuse", where, reason, target)
        if found.missing:
            return Step(NAME, "sign", where, f"{image}: {', '.join(found.missing)} as {signer.identity}", target)
        return Step(NAME, "keep", where, f"{image}: {WHAT} verify as {signer.identity}", target)

    # Each image is verified on its own (cosign waits on the registry and Sigstore): two at a time.
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda item: judge(*item), targets))


def _targets(ctx: ReleaseContext) -> list[tuple[str, AttestTarget]]:
    targets = []
    for repository in ctx.target.registries:
        for flavour in flavours(ctx):
            for platform in platforms(ctx):
                for variant in VARIANTS:
                    tag = flavour.platform_tag(ctx.version, variant, platform)
                    target = AttestTarget(repository, tag, flavour.name, variant, platform)
                    targets.append((f"{repository}:{tag}.sig+att", target))
    return targets


def _reference(ctx: ReleaseContext, target: AttestTarget) -> cosign.ImageReference:
    """The pushed image of a step, reached with its registry's TLS and login."""
    return cosign.ImageReference.of(ctx.target.registry(target.repository), target.digest)


def _scan_all(ctx: ReleaseContext, out, steps: list[Step[AttestTarget]]) -> dict[str, tuple]:
    """{digest: (cdx, spdx)}: one syft scan per digest, whatever the registry, the scans side by side (each mostly
    reads and unpacks layers: two cores run two in about the time of one)."""
    wanted: dict[str, tuple] = {}
    for step in steps:
        target = step.payload
        if target.digest not in wanted:
            stem = target.stem
            wanted[target.digest] = (_reference(ctx, target), out / f"{stem}.cdx.json", out / f"{stem}.spdx.json")

    def scan(reference, cyclonedx, spdx) -> None:
        ctx.log(f"attest: SBOMs of {reference} (syft)")
        with ctx.view.row(f"sbom {reference}", level=1):
            sbom.scan_image(reference, cyclonedx, spdx)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda item: scan(*item), wanted.values()))  # list(): the first failure raises here
    return {digest: (cyclonedx, spdx) for digest, (_, cyclonedx, spdx) in wanted.items()}


def act(ctx: ReleaseContext, steps: list[Step[AttestTarget]]) -> AttestRecord:
    signer = ctx.signer
    trust = cosign.trust_of(ctx)
    out = ctx.dist / "attestations" / ctx.target.name
    todo = open_steps(steps)  # each pushed: decide refused an image that is not
    scanned = _scan_all(ctx, out, todo)
    token = client_token(ctx) if todo else None  # None: cosign asks GitHub Actions' provider per call

    def attest(step: Step[AttestTarget]) -> None:
        target = step.payload
        reference = _reference(ctx, target)
        statement = image_attestations.statement(
            ctx, target.repository, target.digest, target.inputs, target.flavour, target.variant, target.platform
        )
        predicate = image_attestations.write_predicate(out / f"{target.stem}.provenance.json", statement)
        ctx.log(f"attest: {', '.join(target.missing)} of {reference} as {signer.identity}")
        with ctx.view.row(f"attest {reference}", level=1):
            try:
                image_attestations.make(
                    trust, reference, token, list(target.missing), scanned[target.digest], predicate
                )
            finally:
                ctx.world.wrote(target.repository, *image_attestations.cosign_tags(target.digest))

    # Images side by side: each digest's signature and attestations go to tags of their own (sha256-<digest>.sig,
    # .att), and one image's attestations are made in order.
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(attest, todo))  # list(): the first failure raises here
    after = decide(ctx)  # verified: what was made must now verify, or the stage fails
    if not_done := [step for step in after if step.action not in ("keep", "skip")]:
        raise ReleaseError(f"after attesting, {not_done[0].target}: {not_done[0].action}: {not_done[0].reason}")
    record = AttestRecord(
        identity=signer.identity,
        issuer=signer.issuer,
        images=[
            AttestedImage(
                repository=step.payload.repository,
                tag=step.payload.tag,
                digest=step.payload.digest,
                base_image=step.payload.inputs["base_image"].uri.rsplit("@", 1)[1],
                revision=step.payload.inputs["source"].digest["gitCommit"],
                files={
                    str(path.relative_to(ctx.dist)): sha256_file(path)
                    for path in out.glob(f"{step.payload.stem}.*.json")
                },
                platform=str(step.payload.platform),
            )
            for step in after
        ],
    )
    ctx.save(record)
    return record
