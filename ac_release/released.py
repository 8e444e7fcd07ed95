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
    """The newest release older than this build on the target's first registry, or None for a first release."""
    repository = ctx.target.registries[0]
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
