"""Stage `push`: the exact images that passed their tests, each platform's to its own immutable tag on every registry
of the target (`2.2.4-1-bullseye-amd64`, `2.2.4-1-bullseye-arm64`: the flavour's tag and the architecture); the
`index` stage then makes each of the flavour's immutable tags an index of them. A platform's tag is how a later job
finds what an earlier one pushed (release.yml builds each platform in its own job): through the registry, never a
runner's disk.

Each image is pushed from the Docker engine to the target's first registry, then copied from there to the others,
registry to registry (`docker push` would compress every layer again for each registry), each tag read back.

Immutable tags: already there with the same image -> skip; with another -> refuse, naming both. The floating tags
move later, registry-side by digest, in the `promote` stage: only once every flavour is pushed and attested.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from dataclasses import dataclass, replace

from ac_release.building.image_state import flavour_state
from ac_release.clients import registry
from ac_release.model.flavours import VARIANTS, Platform
from ac_release.model.records import FlavourImages, ImagesRecord, PushedTag, PushRecord, SessionsRecord
from ac_release.stages.steps import Step
from ac_release.world.context import ReleaseContext, flavours, platforms, services_running

NAME = "push"
_PUSHED = re.compile(
    r"^push: (?P<target>\S+) pushed in (?P<seconds>\d+(?:\.\d+)?) s \((?P<digest>sha256:[0-9a-f]{64})\)$", re.M
)


def pushed_line(target: str, digest: str, seconds: float) -> str:
    """The log line of one `docker push`: how long the Docker engine took to send the tag's layers (a whole value)."""
    return f"push: {target} pushed in {seconds:.1f} s ({digest})"


def pushed_seconds(log: str) -> dict[str, float]:
    """{tag: seconds} of every `docker push` a run's log shows (pushed_line)."""
    return {match["target"]: float(match["seconds"]) for match in _PUSHED.finditer(log)}


@dataclass(frozen=True)
class PushTarget:
    """A platform's image of the release under its own immutable tag of one registry; `image` None until the images
    stage built it in this run; `digest` once the registry holds it."""

    repository: str
    tag: str
    flavour: str
    variant: str
    platform: Platform
    image: str | None
    digest: str | None = None


def decide(ctx: ReleaseContext, earlier: Collection[str] = ()) -> list[Step[PushTarget]]:
    """skip a platform's tag already on the image; refuse one holding another image; push the rest, only images that
    passed their tests (the test record), unless the test stage runs before in this run."""
    running = services_running(ctx)
    built = ctx.record(ImagesRecord) or ImagesRecord({})
    tested = ctx.record(SessionsRecord) or SessionsRecord({})
    steps = []
    for repository in ctx.target.registries:
        for flavour in flavours(ctx):
            for platform in platforms(ctx):
                state = flavour_state(ctx, flavour, platform)
                # the images it pushes: the current ones; else those the images stage builds before it in this run;
                # else the recorded ones
                images = state.current or (None if "images" in earlier else built.of(flavour.name, platform))
                untested = (
                    None
                    if "test" in earlier
                    else _untested(ctx, flavour.name, platform, images, "images" in earlier, tested)
                )
                for variant in VARIANTS:
                    image = images.variants[variant].image if images else None
                    tag = flavour.platform_tag(ctx.version, variant, platform)
                    where = f"{repository}:{tag}"
                    target = PushTarget(repository, tag, flavour.name, variant, platform, image)
                    if not running:
                        step = Step(NAME, "unknown", where, "registry not running", target)
                    else:
                        step = _immutable(where, ctx.world.remote_image(repository, tag), target)
                    if untested and step.action != "refuse":  # known from the records, the registry up or not
                        step = Step(NAME, "refuse", where, untested, target)
                    steps.append(step)
    return steps


def _untested(
    ctx: ReleaseContext,
    flavour: str,
    platform: Platform,
    images: FlavourImages | None,
    built_before: bool,
    tested: SessionsRecord,
) -> str | None:
    """Why a flavour's images of a platform may not be pushed when no test stage runs before the push, or None."""
    if images is None and not built_before:
        return f"no {platform} images of {ctx.version}: run `invoke images {ctx.version}`"
    if images is None or not tested.passed(flavour, platform, images.ids()):
        return (
            f"the {flavour} {platform} images of {ctx.version} have not passed their tests: run the release "
            f"(`invoke release {ctx.version}`), which tests before it pushes"
        )
    return None


def _immutable(where: str, remote: registry.RemoteImage | None, target: PushTarget) -> Step[PushTarget]:
    image = target.image
    if remote is None:
        return Step(NAME, "push", where, image or "the image built above", target)
    if image and remote.config == image:
        reason = f"already {remote.digest} (image {image})"
        return Step(NAME, "skip", where, reason, replace(target, digest=remote.digest))
    ours = image or "an image not built yet"
    reason = (
        f"already holds {remote.digest} (image {remote.config}), this release's image is {ours}: immutable tags "
        f"never move; release the next build number"
    )
    return Step(NAME, "refuse", where, reason, target)


def act(ctx: ReleaseContext, steps: list[Step[PushTarget]]) -> PushRecord:
    """Pushes the images decide named, each of which passed its tests (decided on the record the test stage left)."""
    first = ctx.target.registries[0]
    on_first: dict[str, str] = {}  # image id -> its digest on the first registry, which decide() lists first
    tags: list[PushedTag] = []
    for step in steps:
        repository, tag, image = step.payload.repository, step.payload.tag, step.payload.image
        if not step.open:
            digest, action = step.payload.digest, "present"
        elif repository == first:
            ctx.log(f"push: {step.target}")
            started = time.monotonic()
            with ctx.view.row(step.target, level=1):
                digest, action = ctx.world.push(image, repository, tag), "pushed"
            ctx.log(pushed_line(step.target, digest, time.monotonic() - started))
        else:
            digest, action = on_first[image], "pushed"
            ctx.log(f"push: {step.target} (copied from {first}@{digest})")
            with ctx.view.row(step.target, level=1):
                ctx.world.copy_pushed(first, digest, repository, tag, image)
        if repository == first:
            on_first.setdefault(image, digest)
        tags.append(PushedTag(repository, tag, image, digest, False, action, str(step.payload.platform)))
    record = PushRecord(tags)
    ctx.save(record)
    return record
