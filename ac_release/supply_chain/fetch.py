"""The verified download of a release's files from the target's index: the shared step of the images stage, the
GitHub release, the benchmark and `invoke verify`."""

from __future__ import annotations

from pathlib import Path

from ac_release.clients.index import download
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_bytes, sha256_file
from ac_release.model.records import WheelRecord
from ac_release.supply_chain.signing import verify_all
from ac_release.world.context import ReleaseContext
from ac_release.world.index_state import index_state


def fetch_verified(
    ctx: ReleaseContext, names: list[str], directory: Path, bundles: Path, wheel: WheelRecord | None = None
) -> dict[str, Path]:
    """Download `names` from the index into `directory`; each must carry the sha256 the wheel stage recorded (in the
    manifest, or the `wheel` record given) and verify against its bundle in `bundles` with the target's identity,
    or nothing is returned."""
    wheel = wheel or ctx.manifest.get(WheelRecord)
    if wheel is None:
        raise ReleaseError(f"{ctx.version} has no wheel record: run `invoke wheel {ctx.version}`")
    on_index = index_state(ctx)
    password = ctx.target.index.password.read()
    directory.mkdir(parents=True, exist_ok=True)
    fetched = {}
    for name in names:
        if name not in on_index:
            raise ReleaseError(f"{ctx.target.index.url} does not serve {name}: run `invoke publish {ctx.version}`")
        path = directory / name
        if not path.exists() or sha256_file(path) != on_index[name].sha256:
            atomic_write_bytes(path, download(ctx.target.index, password, on_index[name]))
        if (actual := sha256_file(path)) != wheel.sha256(name):
            raise ReleaseError(
                f"{ctx.target.index.url} serves {name} with sha256 {actual}, the release built {wheel.sha256(name)}: "
                f"refusing other bytes"
            )
        fetched[name] = path
    verify_all(ctx, list(fetched.values()), bundles)
    return fetched
