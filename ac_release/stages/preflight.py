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


def run(ctx: ReleaseContext) -> dict:
    missing = [tool for tool in ("patch", "git") if shutil.which(tool) is None]
    if ctx.target.base_images == "debootstrap" and shutil.which("debootstrap") is None:
        missing.append("debootstrap")
    if missing:
        raise ReleaseError(f"missing tools: {', '.join(missing)}; run .ci/bootstrap")
    ctx.docker  # noqa: B018 - resolving it checks that the engine answers
    ensure_local_services(ctx)
    check_index_credentials(ctx)
    return {"target": ctx.target.name, "index": ctx.target.index.url}
