"""Stage `preflight`: everything a release needs is checked before the first write."""

from __future__ import annotations

import base64
import shutil
import urllib.error
import urllib.request

from ac_release.context import ReleaseContext, ensure_local_services
from ac_release.errors import ReleaseError
from ac_release.retry import retry

NAME = "preflight"


def check_index_credentials(ctx: ReleaseContext) -> None:
    """An upload request without a file: bad credentials get 401/403, good ones get past authentication (400)."""
    index = ctx.target.index
    token = base64.b64encode(f"{index.username}:{index.password.read()}".encode()).decode()
    request = urllib.request.Request(
        index.upload_url,
        data=b":action=file_upload",
        method="POST",
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/x-www-form-urlencoded"},
    )

    def probe() -> None:
        try:
            with urllib.request.urlopen(request, timeout=30):
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
    """A release is made from a commit, and its changelog entry is dated: checked before anything starts."""
    from ac_release.changelog import release_entry
    from ac_release.stages.tag import git

    if dirty := git(ctx, "status", "--porcelain", "--untracked-files=normal"):
        raise ReleaseError(
            f"the git tree has uncommitted changes ({dirty.splitlines()[0].strip()}): a release is "
            f"made from a commit; commit or stash them"
        )
    release_entry(ctx.settings.root / "changelog", ctx.version)


def check_remotes(ctx: ReleaseContext) -> None:
    """Registries and git remote reachable, and nothing already released under this version with other bytes."""
    from ac_release import registry
    from ac_release.stages.publish import index_state
    from ac_release.stages.tag import git, remote_tag_commit

    for repository in ctx.target.registries:
        registry.tags(repository)  # reachable, and the credentials may read it
    head = git(ctx, "rev-parse", "HEAD")
    remote = remote_tag_commit(ctx)
    if remote is not None and remote != head:
        raise ReleaseError(
            f"{ctx.version} is already released from {remote} ({ctx.target.git_remote} has tag "
            f"{ctx.version.git_tag}); this tree is at {head}: release the next build number"
        )
    built = (ctx.manifest.stage("wheel") or {}).get("artifacts", {})
    on_index = index_state(ctx, ctx.target.index.password.read())
    for name, meta in built.items():
        if name in on_index and on_index[name].sha256 != meta["sha256"]:
            raise ReleaseError(
                f"{ctx.target.index.url} already holds {name} with sha256 {on_index[name].sha256}, "
                f"dist/{ctx.version} has {meta['sha256']}: published files never change"
            )


def run(ctx: ReleaseContext) -> dict:
    missing = [tool for tool in ("patch", "git") if shutil.which(tool) is None]
    if ctx.target.base_images == "debootstrap" and shutil.which("debootstrap") is None:
        missing.append("debootstrap")
    if missing:
        raise ReleaseError(f"missing tools: {', '.join(missing)}; run .ci/bootstrap")
    if ctx.releasing:
        check_committed_inputs(ctx)
    ctx.docker  # noqa: B018 - resolving it checks that the engine answers
    ensure_local_services(ctx)
    check_index_credentials(ctx)
    if ctx.releasing:
        check_remotes(ctx)
    return {"target": ctx.target.name, "index": ctx.target.index.url}
