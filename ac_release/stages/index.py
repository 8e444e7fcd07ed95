"""Stage `index`: each immutable tag of the release (`2.2.4-1`, `2.2.4-1-bullseye`, `2.2.4-1-onbuild`, ...) made an OCI
image index of the platforms' own tags the push stage left (`2.2.4-1-bullseye-amd64`, `...-arm64`), then signed.

It reads the registry alone (no record, no local image), so it runs on any machine: release.yml's `index` job, after
every platform's job pushed and attested its images. A user's `docker pull` of the tag gets the image of their
platform (`--platform linux/arm64` the arm64 one).

Immutable tags: no such tag -> push the index; the tag already holds exactly these platforms' manifests -> skip;
anything else -> refuse (immutable tags never move). A platform's tag missing -> refuse, naming the job that pushes
it (unless the push stage runs before in this run). Each index is signed by the target's identity (cosign, keyless):
sign when its signature is missing, keep when it verifies, refuse when one exists that does not verify.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from ac_release.core.errors import ReleaseError
from ac_release.model.flavours import VARIANTS, Platform
from ac_release.model.records import IndexRecord, PushedTag
from ac_release.stages.steps import Step
from ac_release.supply_chain import cosign
from ac_release.supply_chain.image_attestations import cosign_tag
from ac_release.supply_chain.signing import client_token
from ac_release.world.context import ReleaseContext, flavours, release_platforms, services_running

NAME = "index"


@dataclass(frozen=True)
class IndexTarget:
    """One immutable tag of one registry as the index of `platforms` ({platform: its own tag}); `manifests`
    ({platform: manifest digest}) once every platform's tag is pushed; `digest` once the index is there."""

    repository: str
    tag: str
    platforms: tuple[tuple[str, str], ...]
    manifests: tuple[tuple[str, str], ...] = ()
    digest: str | None = None


def decide(ctx: ReleaseContext, earlier: Collection[str] = ()) -> list[Step[IndexTarget]]:
    """push an index that is not there, skip one that is, refuse an immutable tag holding anything else or a
    platform not pushed; then sign (or keep, or refuse) the index's signature."""
    if ctx.platform is not None:
        return [Step(NAME, "skip", "indexes", f"a run of {ctx.platform} alone: the index job assembles them")]
    running = services_running(ctx)
    every = release_platforms(ctx)
    steps = []
    for repository in ctx.target.registries:
        for flavour in flavours(ctx):
            for variant in VARIANTS:
                own = tuple((str(p), flavour.platform_tag(ctx.version, variant, p)) for p in every)
                for tag in flavour.tags(ctx.version, variant):
                    target = IndexTarget(repository, tag, own)
                    if not running:
                        steps.append(Step(NAME, "unknown", f"{repository}:{tag}", "registry not running", target))
                        continue
                    steps += _decide_tag(ctx, target, every, pushed_before="push" in earlier)
    return steps


def _decide_tag(
    ctx: ReleaseContext, target: IndexTarget, every: tuple[Platform, ...], pushed_before: bool
) -> list[Step[IndexTarget]]:
    where = f"{target.repository}:{target.tag}"
    held = ctx.world.remote_platforms(target.repository, target.tag)
    manifests = {}
    for platform, own in target.platforms:
        remote = ctx.world.remote_image(target.repository, own)
        if remote is None:
            if held is not None:  # an immutable tag that is there before this release's platforms: not its index
                found = ", ".join(f"{name} {digest}" for name, digest in held.platforms.items())
                reason = (
                    f"already holds {held.digest} ({found}) while this release's {platform} image is not pushed "
                    f"({target.repository}:{own}): immutable tags never move; release the next build number"
                )
                return [Step(NAME, "refuse", where, reason, target)]
            if pushed_before:  # the dry run before the push stage; the run decides again after it
                return [
                    Step(NAME, "push", where, f"index of {_names(every)} once they are pushed", target),
                    Step(NAME, "sign", f"{where}.sig", f"signature of its index as {ctx.signer.identity}", target),
                ]
            reason = (
                f"{target.repository}:{own} is not pushed: push its {platform} images first "
                f"(`invoke release {ctx.version} --platform {platform} --stages images,test,push,attest`)"
            )
            return [Step(NAME, "refuse", where, reason, target)]
        manifests[platform] = remote.digest
    target = replace(target, manifests=tuple(manifests.items()))
    listed = ", ".join(f"{platform} {digest}" for platform, digest in manifests.items())
    if held is None:
        target = replace(target, digest=ctx.world.index_digest(target.repository, manifests))
        return [Step(NAME, "push", where, f"index {target.digest} of {listed}", target), _signature(ctx, target)]
    if held.platforms != manifests:
        found = ", ".join(f"{platform} {digest}" for platform, digest in held.platforms.items())
        reason = (
            f"already holds {held.digest} ({found}), this release's platforms are {listed}: immutable tags never "
            f"move; release the next build number"
        )
        return [Step(NAME, "refuse", where, reason, target)]
    target = replace(target, digest=held.digest)
    return [Step(NAME, "skip", where, f"already the index {held.digest} of {listed}", target), _signature(ctx, target)]


def _signature(ctx: ReleaseContext, target: IndexTarget) -> Step[IndexTarget]:
    """The index's own signature: keep when it verifies for the target's identity, sign when missing, refuse else."""
    where = f"{target.repository}:{target.tag}.sig"  # named as the dry run names it before the digest is known
    signer = ctx.signer
    if cosign_tag(target.digest, "sig") not in ctx.world.tags(target.repository):
        return Step(NAME, "sign", where, f"signature of its index {target.digest} as {signer.identity}", target)
    image = cosign.ImageReference.of(ctx.target.registry(target.repository), target.digest)
    try:
        cosign.verify_image(cosign.trust_of(ctx), image, signer)
    except ReleaseError as exc:
        return Step(NAME, "refuse", where, f"{exc}; remove it from the registry to sign again", target)
    return Step(NAME, "keep", where, f"signature of its index {target.digest} verifies as {signer.identity}", target)


def _names(platforms: tuple[Platform, ...]) -> str:
    return ", ".join(map(str, platforms))


def act(ctx: ReleaseContext, steps: list[Step[IndexTarget]]) -> IndexRecord:
    record = IndexRecord([])
    for step in steps:
        target = step.payload
        if step.action == "refuse":
            raise ReleaseError(f"{step.target}: {step.reason}")
        if step.action == "push":  # decided by the run on the registry as the push stage left it: manifests known
            ctx.log(f"index: {step.target} <- {', '.join(f'{p} {d}' for p, d in target.manifests)}")
            with ctx.view.row(step.target, level=1):
                made = ctx.world.push_index(target.repository, target.tag, dict(target.manifests))
            if made.digest != target.digest:
                raise ReleaseError(
                    f"{step.target}: the registry made the index {made.digest}, not {target.digest} as decided: "
                    f"a platform's manifest changed while this ran; run the release again"
                )
            record.tags.append(_pushed(target, made.action))
        elif step.action == "skip" and target is not None:
            record.tags.append(_pushed(target, "present"))
    signs = [step for step in steps if step.action in ("sign", "keep")]
    token = client_token(ctx) if any(step.open for step in signs) else None
    trust = cosign.trust_of(ctx)
    for step in signs:
        target = step.payload
        name = f"{target.repository}@{target.digest}"
        if name in record.signed:  # two immutable tags of one image (`2.2.4-1`, `2.2.4-1-bullseye`): one index
            continue
        if target.digest is None:  # the dry run's step before the push stage: the run decides after it
            raise ReleaseError(f"{step.target}: decided before its platforms were pushed; decide again after them")
        if step.open:
            ctx.log(f"index: signing {name} as {ctx.signer.identity}")
            image = cosign.ImageReference.of(ctx.target.registry(target.repository), target.digest)
            with ctx.view.row(f"sign {name}", level=1):
                try:
                    cosign.sign_image(trust, image, token)
                finally:
                    ctx.world.wrote(target.repository, cosign_tag(target.digest, "sig"))
            cosign.verify_image(trust, image, ctx.signer)
        record.signed[name] = "signed" if step.open else "kept"
    ctx.save(record)
    return record


def _pushed(target: IndexTarget, action: str) -> PushedTag:
    return PushedTag(target.repository, target.tag, "", target.digest, False, action, "", dict(target.manifests))
