"""Stage `preflight`: the machine, the credentials and the remotes a release needs, checked before the first write.

What each later stage would refuse (a conflicting file on the index, immutable tag or git tag) is found by that
stage's own `decide`, which the pipeline asks for every stage right after this one, before any write.
"""

from __future__ import annotations

import datetime as dt
import shutil
import urllib.error
from collections.abc import Collection

from ac_release.clients.git import uncommitted
from ac_release.clients.index import open_url
from ac_release.clients.retry import retry
from ac_release.core.errors import ReleaseError
from ac_release.model.support import unsupported_reason
from ac_release.stages.steps import Step
from ac_release.world.context import ReleaseContext, ensure_local_services, services_running

NAME = "preflight"


def check_index_credentials(ctx: ReleaseContext) -> None:
    """An upload request without a file: bad credentials get 401/403, good ones get past authentication (400)."""
    index = ctx.target.index
    password = index.password.read()

    def probe() -> None:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        try:
            with open_url(index, password, index.upload_url, timeout=30, data=b":action=file_upload", **form):
                return
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise ReleaseError(
                    f"index {index.url} refused the credentials of {index.username!r}: "
                    f"check {index.password.describe()}"
                ) from None
            if exc.code >= 500:
                raise
        except urllib.error.URLError as exc:
            raise urllib.error.URLError(f"index {index.url} unreachable ({exc.reason})") from None

    retry(probe, what=f"reaching the index {index.url}")


def check_committed_inputs(ctx: ReleaseContext) -> None:
    """A release is made from a commit, and its changelog entry is dated: checked before anything starts. A dev
    build is made from a commit too; it needs no dated entry (the changelog is still checked)."""
    if dirty := uncommitted(ctx.settings.root):
        raise ReleaseError(
            f"the git tree has uncommitted changes ({dirty}): a release is made from a commit; commit or stash them"
        )
    if ctx.version.dev:
        ctx.catalog.dev_build_entry(ctx.version)
    else:
        ctx.catalog.release_entry(ctx.version)


def decide(ctx: ReleaseContext, earlier: Collection[str] = ()) -> list[Step[None]]:
    """refuse a release of a line past its support (unless forced); run the checks."""
    steps = []
    if ctx.releasing and not ctx.force_unsupported:
        support = ctx.catalog.support_of(ctx.version.airflow_version)
        if reason := unsupported_reason(support, dt.datetime.now(dt.UTC).date()):
            steps.append(Step(NAME, "refuse", "support", reason))
    if not services_running(ctx):
        steps.append(Step(NAME, "run", "local-services", "not running: started first"))
    checks = "tools, Docker engine, index credentials, registries"
    if ctx.releasing:
        entry = "dated changelog entry"
        if ctx.version.dev:
            entry = "well-formed changelog (a dev build needs no dated entry)"
        checks = f"clean git tree, {entry}, {checks}"
    return steps + [Step(NAME, "run", "checks", checks)]


def act(ctx: ReleaseContext, steps: list[Step[None]]) -> None:
    """The checks themselves: what they find wrong is the machine's, the credentials' or the tree's state."""
    missing = [tool for tool in ("patch", "git", "skopeo") if shutil.which(tool) is None]
    if ctx.target.base_images == "debootstrap" and shutil.which("debootstrap") is None:
        missing.append("debootstrap")
    if missing:
        raise ReleaseError(f"missing tools: {', '.join(missing)}; run .ci/bootstrap")
    if ctx.releasing:
        check_committed_inputs(ctx)
    ctx.docker  # noqa: B018 - resolving it checks that the engine answers
    ensure_local_services(ctx)
    check_index_credentials(ctx)
    for repository in ctx.target.registries:
        ctx.world.tags(repository)  # reachable, and the credentials may read it (the stages use the answer)
