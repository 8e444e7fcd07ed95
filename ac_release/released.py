"""What is released on a target's registry: where an upgrade test starts, and which build is the highest.

The upgrade test starts from the newest earlier AC release on the target's first registry.

Users upgrade from what was released, so the starting point is read from the registry, never from local images:
the previous build of the same Airflow version (2.2.4-1 for 2.2.4-2), or else the newest release of an older
line. Its image is the line's default flavour (`X.Y.Z-N`, the tag every release has), pinned by digest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ac_release import registry
from ac_release.context import ReleaseContext
from ac_release.errors import ReleaseError
from ac_release.images.matrix import VARIANTS, Flavour
from ac_release.images.state import flavours
from ac_release.version import ACVersion


@dataclass(frozen=True)
class PreviousRelease:
    version: ACVersion
    repository: str
    digest: str

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"


def release_tag_version(tag: str) -> ACVersion | None:
    """The AC release a tag names when it is a default-flavour base tag (`2.2.4-1`); distro, variant, dev: None."""
    try:
        version = ACVersion.parse(tag)
    except ReleaseError:
        return None
    return None if version.dev else version


def previous_release(ctx: ReleaseContext) -> PreviousRelease | None:
    """The newest release older than this build on the target's first release registry (a dev build's too), or
    None for a first release."""
    repository = ctx.release_target.registries[0]
    current = (ctx.version.airflow, ctx.version.build)
    earlier = [
        v for tag in registry.tags(repository) if (v := release_tag_version(tag)) and (v.airflow, v.build) < current
    ]
    if not earlier:
        return None
    version = max(earlier)
    image = registry.remote_image(repository, str(version))
    return PreviousRelease(version, repository, image.digest) if image else None


def highest_released_build(repository: str, version: ACVersion, canonical_tag: str) -> int:
    """The highest build number of this Airflow version and flavour/variant among the registry's release tags:
    floating tags move only to it."""
    suffix = canonical_tag.removeprefix(str(version))
    pattern = re.compile(rf"{re.escape(version.airflow_version)}-([1-9][0-9]*){re.escape(suffix)}")
    return max((int(m[1]) for tag in registry.tags(repository) if (m := pattern.fullmatch(tag))), default=0)


@dataclass(frozen=True)
class ReleasedImage:
    repository: str
    flavour: Flavour
    variant: str
    digest: str  # manifest digest every immutable tag of the image names
    config: str  # image id
    tags: tuple[str, ...]  # its immutable tags, then the floating tags that point to it


def released_images(ctx: ReleaseContext) -> list[ReleasedImage]:
    """Every image of this release as the target's registries hold it: read from the registries alone, so any
    machine can ask (a workflow's later job, `invoke verify`, the release notes). A missing immutable tag, or
    immutable tags of one image that name different digests, is an error."""
    images = []
    for repository in ctx.target.registries:
        for flavour in flavours(ctx):
            for variant in VARIANTS:
                immutable = flavour.tags(ctx.version, variant)
                remotes = {tag: registry.remote_image(repository, tag) for tag in immutable}
                if missing := [tag for tag, remote in remotes.items() if remote is None]:
                    raise ReleaseError(f"{repository}:{missing[0]} does not exist: {ctx.version} is not released there")
                if len({remote.digest for remote in remotes.values()}) > 1:
                    named = ", ".join(f"{tag} -> {remote.digest}" for tag, remote in remotes.items())
                    raise ReleaseError(f"the immutable tags of one image of {ctx.version} disagree: {named}")
                image = remotes[immutable[-1]]
                floating = [
                    tag
                    for tag in flavour.floating_tags(ctx.version, variant)
                    if (remote := registry.remote_image(repository, tag)) is not None and remote.digest == image.digest
                ]
                tags = (*immutable, *floating)
                images.append(ReleasedImage(repository, flavour, variant, image.digest, image.config, tags))
    return images
