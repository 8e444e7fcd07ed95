"""Stage `push`: the exact images that passed the smoke tests, to every registry of the target.

Immutable tags: already there with the same image -> skip; with another -> refuse, naming both digests.
Floating tags move only when this build is the highest released build of its Airflow version on that registry:
releasing an older build, or another line, never moves them.
"""

from __future__ import annotations

import re

from ac_release import registry
from ac_release.context import ReleaseContext, ensure_local_services
from ac_release.errors import ReleaseError
from ac_release.images.matrix import ONBUILD, flavours_of
from ac_release.stages.images import images_dir
from ac_release.stages.test import tested_images
from ac_release.version import ACVersion

NAME = "push"


def tested_entries(ctx: ReleaseContext) -> dict[str, dict]:
    """The images stage's entries, each checked to have passed the smoke tests with these very image ids."""
    built = ctx.manifest.stage("images") or {}
    results = ctx.manifest.stage("test") or {}
    if not built:
        raise ReleaseError(f"no images of {ctx.version}: run `invoke images {ctx.version}`")
    for flavour, entry in built.items():
        result = results.get(flavour)
        if not result or result["result"] != "passed" or result["images"] != tested_images(entry):
            raise ReleaseError(
                f"the {flavour} images of {ctx.version} have not passed their smoke tests: run the release "
                f"(`invoke release {ctx.version}`), which tests before it pushes"
            )
    return built


def highest_released_build(repository: str, version: ACVersion, canonical_tag: str) -> int:
    """The highest build number of this Airflow version and flavour/variant among the registry's release tags."""
    suffix = canonical_tag.removeprefix(str(version))
    pattern = re.compile(rf"{re.escape(version.airflow_version)}-([1-9][0-9]*){re.escape(suffix)}")
    return max((int(m[1]) for tag in registry.tags(repository) if (m := pattern.fullmatch(tag))), default=0)


def _push_image(ctx: ReleaseContext, repository: str, image: str, tags: list[str], floating: list[str]) -> dict:
    pushed: dict[str, str] = {}
    digest = None
    for tag in tags:
        remote = registry.remote_image(repository, tag)
        if remote is None:
            ctx.log(f"push: {repository}:{tag}")
            digest = registry.push(ctx.docker, image, repository, tag)
            pushed[tag] = "pushed"
        elif remote.config == image:
            digest = remote.digest
            pushed[tag] = "present"
        else:
            ours = digest or image
            raise ReleaseError(
                f"{repository}:{tag} already exists with digest {remote.digest} (image {remote.config}), this "
                f"release's image is {ours}: immutable tags never move; release the next build number"
            )
    moved: dict[str, str] = {}
    if floating:
        highest = highest_released_build(repository, ctx.version, tags[-1])
        for tag in floating:
            if highest > ctx.version.build:
                moved[tag] = f"kept: {ctx.version.airflow_version}-{highest} is newer"
                continue
            remote = registry.remote_image(repository, tag)
            if remote is not None and remote.config == image:
                moved[tag] = "present"
                continue
            ctx.log(f"push: {repository}:{tag} -> {ctx.version}")
            registry.push(ctx.docker, image, repository, tag)
            moved[tag] = "moved"
    return {
        "repository": repository,
        "image": image,
        "digest": digest,
        "tags": tags,
        "pushed": pushed,
        "floating": moved,
        "floating_moved": [t for t, state in moved.items() if state in ("moved", "present")],
    }


def run(ctx: ReleaseContext) -> dict:
    ensure_local_services(ctx)
    built = tested_entries(ctx)
    flavours = {f.name: f for f in flavours_of(images_dir(ctx), ctx.line.airflow)}
    results: dict[str, dict] = {}
    for repository in ctx.target.registries:
        for name, entry in sorted(built.items()):
            flavour = flavours[name]
            for variant in ("base", ONBUILD):
                with ctx.view.row(f"{repository} {name}/{variant}", level=1):
                    results[f"{repository} {name}/{variant}"] = _push_image(
                        ctx,
                        repository,
                        entry[variant]["image"],
                        flavour.tags(ctx.version, variant),
                        flavour.floating_tags(ctx.version, variant),
                    )
    previous = ctx.manifest.stage(NAME) or {}
    ctx.manifest.record(NAME, {**previous, ctx.target.name: {"images": results}})
    return results
