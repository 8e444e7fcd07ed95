"""Which images of a release are current: the shared query of the images, test and push stages.

Per flavour and platform (each platform's images are built on their own, FROM the platform's base). A flavour's
recorded images are current when the inputs of their build (fingerprint) are unchanged and the images
are still in the Docker engine, by id (a reference is only a name: another checkout on the same engine may have
moved it); anything else is built again.
"""

from __future__ import annotations

from dataclasses import dataclass

from ac_release.building import image_build as build
from ac_release.building.baseimage import base_reference
from ac_release.model.flavours import VARIANTS, Flavour, Platform
from ac_release.model.names import local_repository
from ac_release.model.records import FlavourImages, ImagesRecord, WheelRecord
from ac_release.world.context import ReleaseContext, release_platforms


@dataclass(frozen=True)
class FlavourState:
    flavour: Flavour
    platform: Platform
    refs: dict[str, str]  # variant -> local reference the images are built as
    base: str  # base image reference
    args: dict[str, str] | None  # build arguments; None until the wheels are built
    fingerprint: str | None  # None until the wheels and the base image exist
    current: FlavourImages | None  # the recorded images, when still current

    def why_not_current(self, recorded: FlavourImages | None) -> str:
        if self.args is None:
            return "the wheels are not built yet"
        if recorded is None:
            return "not built yet"
        if self.fingerprint is None:
            return f"base image {self.base} not present: built first"
        if recorded.fingerprint != self.fingerprint:
            return "inputs changed since the recorded build (Dockerfiles, scripts, lock, base image or wheels)"
        return "a recorded image is no longer in the Docker engine"


def local_ref(ctx: ReleaseContext, flavour: Flavour, variant: str, platform: Platform) -> str:
    """`<repo>:<tag>` for the release's preferred platform (what a `docker run` of the tag gives on its machine),
    `<repo>:<tag>-<arch>` for the others: an engine holds one platform's image under a name."""
    tag = flavour.tags(ctx.version, variant)[-1]
    suffix = "" if platform == release_platforms(ctx)[0] else f"-{platform.architecture}"
    return f"{local_repository(ctx.target.name, ctx.product.repository)}:{tag}{suffix}"


def flavour_state(ctx: ReleaseContext, flavour: Flavour, platform: Platform) -> FlavourState:
    refs = {variant: local_ref(ctx, flavour, variant, platform) for variant in VARIANTS}
    base = base_reference(ctx.target.base_images, flavour.distro, flavour.python, platform)
    wheel = ctx.manifest.get(WheelRecord)
    recorded = (ctx.record(ImagesRecord) or ImagesRecord({})).of(flavour.name, platform)
    if wheel is None:
        return FlavourState(flavour, platform, refs, base, None, None, None)
    pins = {name: a.sha256 for name, a in wheel.artifacts.items() if name.endswith(".whl")}
    args = build.build_args(ctx, flavour, base, pins)
    base_id = ctx.world.image_id(base)
    if base_id is None:
        return FlavourState(flavour, platform, refs, base, args, None, None)
    fingerprint = build.fingerprint(ctx, flavour, base_id, args, platform)
    current = (
        recorded
        if recorded
        and recorded.fingerprint == fingerprint
        and all(ctx.world.image_id(recorded.variants[v].image) == recorded.variants[v].image for v in VARIANTS)
        else None
    )
    return FlavourState(flavour, platform, refs, base, args, fingerprint, current)
