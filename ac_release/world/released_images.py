"""What is released on a target's registry: where an upgrade test starts, and which build is the highest.

The upgrade test starts from the newest earlier release of the product on the target's first registry.

Users upgrade from what was released, so the starting point is read from the registry, never from local images:
the previous build of the same Airflow version (2.2.4-1 for 2.2.4-2), or else the newest release of an older
line. Its image is the line's default flavour (`X.Y.Z-N`, the tag every release has), pinned by digest.
"""

from __future__ import annotations

from dataclasses import dataclass

from ac_release.core.errors import ReleaseError
from ac_release.model.flavours import AMD64, VARIANTS, Flavour, Platform
from ac_release.model.products import Product
from ac_release.model.version import ACVersion, ProductVersion
from ac_release.world.context import ReleaseContext, flavours, release_platforms


@dataclass(frozen=True)
class PreviousRelease:
    version: ACVersion | ProductVersion
    repository: str
    digest: str

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"


def release_tag_version(tag: str, product: Product | None = None) -> ACVersion | ProductVersion | None:
    """The release a tag names when it is the version's own tag (AC's `2.2.4-1`; with a product whose versions
    have a prefix, its declared `4.2.0`); distro, variant, dev or anything else: None."""
    try:
        version = product.version(product.prefix + tag) if product and product.prefix else ACVersion.parse(tag)
    except ReleaseError:
        return None
    return None if version.dev else version


def previous_release(ctx: ReleaseContext, platform: Platform = AMD64) -> PreviousRelease | None:
    """The newest release older than this build on the target's first release registry (a dev build's too), as its
    `platform` image; None for a first release, or when that release has no image of `platform`."""
    repository = ctx.release_target.registries[0]
    earlier = [
        v
        for tag in ctx.world.tags(repository)
        if (v := release_tag_version(tag, ctx.product)) and v.release_key < ctx.version.release_key
    ]
    if not earlier and ctx.product.upgrade_from:
        # A product's first release upgrades from the product its users came from (AC 2.2.4-1 -> Runtime 4.2.0):
        # its newest release of this line build or an older one, in that product's repository beside this one.
        other = ctx.catalog.product(ctx.product.upgrade_from)
        repository = ctx.release_target_of(other).registries[0]
        ours = (ctx.version.airflow, ctx.version.build)
        earlier = [
            v
            for tag in ctx.world.tags(repository)
            if (v := release_tag_version(tag, other)) and (v.airflow, v.build) <= ours
        ]
    if not earlier:
        return None
    version = max(earlier)
    held = ctx.world.remote_platforms(repository, version.image_tag)  # `4.2.1` for runtime-4.2.1
    if held is None:
        return None
    # an index: its `platform` image (pulled by that digest); a release before platforms: linux/amd64 alone
    digest = held.platforms.get(str(platform))
    return PreviousRelease(version, repository, digest) if digest else None


def highest_released_build(tags: list[str], version: ACVersion | ProductVersion, canonical_tag: str) -> int:
    """The highest rank (AC: build of the line; Runtime: patch of the minor) of this version's floating group and
    flavour/variant among a registry's `tags`: floating tags move only to it."""
    pattern = version.sibling_pattern(canonical_tag.removeprefix(version.image_tag))
    return max((int(m[1]) for tag in tags if (m := pattern.fullmatch(tag))), default=0)


@dataclass(frozen=True)
class ReleasedImage:
    repository: str
    flavour: Flavour
    variant: str
    digest: str  # the index digest every immutable tag of the image names
    platforms: dict[str, str]  # platform (`linux/arm64`) -> its image manifest digest, in the index's order
    tags: tuple[str, ...]  # its immutable tags, then the floating tags that point to it


def released_images(ctx: ReleaseContext) -> list[ReleasedImage]:
    """Every image of this release as the target's registries hold it: read from the registries alone, so any
    machine can ask (a workflow's later job, `invoke verify`, the release notes). A missing immutable tag, immutable
    tags of one image that name different digests, or an index without one of the release's platforms is an error."""
    wanted = [str(platform) for platform in release_platforms(ctx)]
    images = []
    for repository in ctx.target.registries:
        for flavour in flavours(ctx):
            for variant in VARIANTS:
                immutable = flavour.tags(ctx.version, variant)
                remotes = {tag: ctx.world.remote_platforms(repository, tag) for tag in immutable}
                if missing := [tag for tag, remote in remotes.items() if remote is None]:
                    raise ReleaseError(f"{repository}:{missing[0]} does not exist: {ctx.version} is not released there")
                if len({remote.digest for remote in remotes.values()}) > 1:
                    named = ", ".join(f"{tag} -> {remote.digest}" for tag, remote in remotes.items())
                    raise ReleaseError(f"the immutable tags of one image of {ctx.version} disagree: {named}")
                image = remotes[immutable[-1]]
                if lacking := [platform for platform in wanted if platform not in image.platforms]:
                    held = ", ".join(image.platforms) or "no platform"
                    raise ReleaseError(
                        f"{repository}:{immutable[-1]} ({image.digest}) holds {held}, not {lacking[0]}: the release "
                        f"builds {', '.join(wanted)}"
                    )
                floating = [
                    tag
                    for tag in flavour.floating_tags(ctx.version, variant)
                    if (remote := ctx.world.remote_platforms(repository, tag)) is not None
                    and remote.digest == image.digest
                ]
                tags = (*immutable, *floating)
                images.append(ReleasedImage(repository, flavour, variant, image.digest, image.platforms, tags))
    return images
