"""Stage `images`: every flavour of the release on every platform, built FROM the wheels the publish stage put on the
index (pure Python: one set of bytes for every platform), each platform FROM its own base (emulated where the machine
is not of that architecture).

The wheels are downloaded from the target's index, must carry the wheel stage's sha256 and pass the verification
gate against their bundles, and are then handed to the build, which checks their sha256 again before installing.
"""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ac_release.building import image_build as build
from ac_release.building.baseimage import base_reference, ensure_base
from ac_release.building.dockerfiles import drift
from ac_release.building.image_state import flavour_state
from ac_release.clients.platforms import emulated, require_buildable
from ac_release.model.flavours import VARIANTS, Platform
from ac_release.model.records import FlavourImages, ImagesRecord, VariantImage
from ac_release.stages.steps import Step, open_steps
from ac_release.supply_chain.fetch import fetch_verified
from ac_release.world.context import ReleaseContext, flavours, platforms

NAME = "images"


@dataclass(frozen=True)
class FlavourImage:
    """One variant's image of a flavour on one platform (a flavour's images of a platform are built together)."""

    flavour: str
    variant: str
    platform: Platform


def _build(ctx: ReleaseContext, flavour, platform: Platform, wheels: dict) -> FlavourImages:
    build.ensure_bases(ctx, flavour, platform)
    state = flavour_state(ctx, flavour, platform)  # the base exists now: its id is part of the fingerprint
    built = build.build_flavour(ctx, flavour, list(wheels.values()), state.args, state.refs, platform)
    return FlavourImages(
        fingerprint=state.fingerprint,
        base_image=state.base,
        variants={
            variant: VariantImage(image, state.refs[variant], ctx.docker.image_size(image), seconds)
            for variant, (image, seconds) in built.items()
        },
    )


def decide(ctx: ReleaseContext, earlier: Collection[str] = ()) -> list[Step[FlavourImage | None]]:
    """keep a flavour's images when the inputs of their build are unchanged and they are present; build otherwise;
    refuse while the checked-in Dockerfiles drift from the template."""
    if problems := drift(ctx.images_dir, ctx.catalog.flavours):
        reason = f"generated Dockerfiles are out of date ({problems[0]}): run `invoke images.generate`"
        return [Step(NAME, "refuse", "images/", reason)]
    recorded = ctx.record(ImagesRecord) or ImagesRecord({})
    steps = []
    for flavour in flavours(ctx):
        for platform in platforms(ctx):
            state = flavour_state(ctx, flavour, platform)
            for variant in VARIANTS:
                payload = FlavourImage(flavour.name, variant, platform)
                if state.current:
                    reason = f"{state.current.variants[variant].image}, built from these inputs"
                    steps.append(Step(NAME, "keep", state.refs[variant], reason, payload))
                else:
                    reason = state.why_not_current(recorded.of(flavour.name, platform))
                    steps.append(Step(NAME, "build", state.refs[variant], f"{platform}: {reason}", payload))
    return steps


def prepare(ctx: ReleaseContext) -> None:
    """Work ahead, deciding nothing: for every flavour and platform this stage will build (its own decision), the
    Dockerfile's stages that need none of the release's wheels go into the build cache while the earlier stages run
    (build.PREPARED_STAGES). An official base is pulled by the build. A debootstrap base the machine does not have
    yet is built here when it is an emulated platform's (arm64 on amd64: minutes, beside the wheel stage); the
    machine's own platform's is left to the stages, whose build environment needs it too (one builder of a base at
    a time)."""
    to_build = {(step.payload.flavour, step.payload.platform) for step in open_steps(decide(ctx))}
    for flavour in flavours(ctx):
        for platform in platforms(ctx):
            if (flavour.name, platform) not in to_build:
                continue
            base = base_reference(ctx.target.base_images, flavour.distro, flavour.python, platform)
            if ctx.target.base_images == "debootstrap" and ctx.world.image_id(base) is None:
                if not emulated(platform):
                    continue
                require_buildable([platform])
                ensure_base(ctx.docker, ctx.target.base_images, flavour.distro, flavour.python, ctx.log, platform)
            stages = " and ".join(build.PREPARED_STAGES)
            ctx.log(f"images: preparing the {flavour.name} {platform} build's {stages} stages")
            build.prepare_flavour(ctx, flavour, base, platform)


def act(ctx: ReleaseContext, steps: list[Step[FlavourImage | None]]) -> ImagesRecord:
    record = ctx.record(ImagesRecord) or ImagesRecord({})
    to_build = {(step.payload.flavour, step.payload.platform) for step in open_steps(steps)}
    if not to_build:
        ctx.log("images: every flavour is built from these inputs, skipping")
    else:
        require_buildable(sorted({platform for _, platform in to_build}))
        wheel_names = [name for name in ctx.artifact_names if name.endswith(".whl")]
        wheels = fetch_verified(ctx, wheel_names, ctx.cache / "images" / str(ctx.version) / "wheels", ctx.bundles)
    for flavour in flavours(ctx):
        building = []
        for platform in platforms(ctx):
            if (flavour.name, platform) not in to_build:  # kept: its references name this release's images again
                for image in record.of(flavour.name, platform).variants.values():
                    ctx.docker("tag", image.image, image.ref, capture=True)
            else:
                building.append(platform)
        if not building:
            continue
        # A flavour's platforms side by side: an emulated platform's build is CPU-bound under qemu for minutes, the
        # native one's mostly waits on downloads and layers. The builds that succeeded are recorded (a resume keeps
        # them) before the first failure is raised.
        with ThreadPoolExecutor(max_workers=len(building)) as pool:
            futures = [pool.submit(_build, ctx, flavour, platform, wheels) for platform in building]
        failures = [future.exception() for future in futures if future.exception() is not None]
        for platform, future in zip(building, futures, strict=True):
            if future.exception() is None:
                record.put(flavour.name, platform, future.result())
        ctx.save(record)
        if failures:
            raise failures[0]
    return record
