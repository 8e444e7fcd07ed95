"""Stage `push`: the exact images that passed their tests, to their immutable tags on every registry of the target.

Each image is pushed from the Docker engine to the target's first registry, then copied from there to the others,
registry to registry (`docker push` would compress every layer again for each registry), each tag read back.

Immutable tags: already there with the same image -> skip; with another -> refuse, naming both. The floating tags
move later, registry-side by digest, in the `promote` stage: only once every flavour is pushed and attested.
"""

from __future__ import annotations

import re
import time

from ac_release.building.image_state import flavour_state
from ac_release.clients import registry
from ac_release.core.errors import ReleaseError
from ac_release.model.flavours import VARIANTS
from ac_release.model.records import ImagesRecord, PushedTag, PushRecord, SessionsRecord
from ac_release.stages.steps import Step
from ac_release.world.context import ReleaseContext, ensure_local_services, flavours, services_running

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


def check(ctx: ReleaseContext) -> list[Step]:
    running = services_running(ctx)
    steps = []
    for repository in ctx.target.registries:
        for flavour in flavours(ctx):
            state = flavour_state(ctx, flavour)
            for variant in VARIANTS:
                image = state.current.variants[variant].image if state.current else None
                immutable = flavour.tags(ctx.version, variant)
                data = {"repository": repository, "flavour": flavour.name, "variant": variant, "image": image}
                for tag in immutable:
                    where = f"{repository}:{tag}"
                    if not running:
                        steps.append(Step(NAME, "unknown", where, "registry not running", data | {"tag": tag}))
                    else:
                        steps.append(
                            _immutable(where, ctx.world.remote_image(repository, tag), image, data | {"tag": tag})
                        )
    return steps


def _immutable(where: str, remote: registry.RemoteImage | None, image: str | None, data: dict) -> Step:
    if remote is None:
        return Step(NAME, "push", where, image or "the image built above", data)
    if image and remote.config == image:
        return Step(NAME, "skip", where, f"already {remote.digest} (image {image})", data | {"digest": remote.digest})
    ours = image or "an image not built yet"
    reason = (
        f"already holds {remote.digest} (image {remote.config}), this release's image is {ours}: immutable tags "
        f"never move; release the next build number"
    )
    return Step(NAME, "refuse", where, reason, data)


def run(ctx: ReleaseContext, steps: list[Step]) -> PushRecord:
    ensure_local_services(ctx)
    images = ctx.record(ImagesRecord)
    tested = ctx.record(SessionsRecord) or SessionsRecord({})
    if images is None:
        raise ReleaseError(f"no images of {ctx.version}: run `invoke images {ctx.version}`")
    for name, entry in images.flavours.items():
        if not tested.passed(name, entry.ids()):
            raise ReleaseError(
                f"the {name} images of {ctx.version} have not passed their tests: run the release "
                f"(`invoke release {ctx.version}`), which tests before it pushes"
            )
    first = ctx.target.registries[0]
    on_first: dict[str, str] = {}  # image id -> its digest on the first registry, which check() lists first
    tags: list[PushedTag] = []
    for step in steps:
        repository, tag = step.data["repository"], step.data["tag"]
        image = images.flavours[step.data["flavour"]].variants[step.data["variant"]].image
        if not step.open:
            digest, action = step.data["digest"], "present"
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
        tags.append(PushedTag(repository, tag, image, digest, False, action))
    record = PushRecord(tags)
    ctx.save(record)
    return record
