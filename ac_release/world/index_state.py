"""What the target's index serves for a release: the shared query of the publish stage, line builds and restore."""

from __future__ import annotations

from pathlib import Path

from ac_release.clients.index import IndexFile
from ac_release.model.names import bundle_name, projects
from ac_release.world.context import ReleaseContext


def index_state(ctx: ReleaseContext) -> dict[str, IndexFile]:
    """{filename: IndexFile} of every project this pipeline publishes, as the target's index serves them."""
    files: dict[str, IndexFile] = {}
    for project in projects(ctx.product.meta_project):
        files.update(ctx.world.index_files(project))
    return files


def bundle_path(ctx: ReleaseContext, artifact: str) -> Path:
    return ctx.bundles / bundle_name(artifact)
