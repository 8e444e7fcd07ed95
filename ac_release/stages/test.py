"""Stage `test`: the nox smoke and upgrade sessions of every flavour, on the exact images the push stage pushes.

The upgrade session starts from the newest earlier release on the target's registry (ac_release/upgrade.py); a
first release has none, and its record says so.

Results are recorded against the image ids: a flavour whose images already passed is not tested again, and the
push stage refuses an image id that has no passing result.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ac_release.context import ReleaseContext, ensure_local_services
from ac_release.errors import ReleaseError
from ac_release.images.matrix import ONBUILD
from ac_release.upgrade import previous_release

NAME = "test"


def session_name(version: str, flavour: str, kind: str = "smoke") -> str:
    return f"{kind}(version='{version}', flavour='{flavour}')"


def session_params(root: Path) -> list[tuple[str, str, bool]]:
    """(version, flavour, newest) for the nox smoke and upgrade sessions: every changelog build of every line with
    image flavours, so that any build can be tested; `newest` marks the builds a plain `nox` run tests."""
    from ac_release.changelog import builds
    from ac_release.images.matrix import load_matrix

    return [
        (version, flavour.name, index == 0)
        for airflow, flavours in load_matrix(root / "images").items()
        if (root / "changelog" / f"{airflow}.md").exists()
        for index, version in enumerate(builds(root / "changelog", airflow))
        for flavour in flavours
    ]


def tested_images(entry: dict) -> dict[str, str]:
    return {variant: entry[variant]["image"] for variant in ("base", ONBUILD)}


def run(ctx: ReleaseContext) -> dict:
    built = ctx.manifest.stage("images")
    if not built:
        raise ReleaseError(f"no images of {ctx.version} to test: run `invoke images {ctx.version}`")
    ensure_local_services(ctx)
    previous = previous_release(ctx)
    upgrade_from = str(previous.version) if previous else None
    results = dict(ctx.manifest.stage(NAME) or {})
    for flavour, entry in sorted(built.items()):
        done = results.get(flavour)
        if (
            done
            and done["result"] == "passed"
            and done["images"] == tested_images(entry)
            and done.get("upgrade", {}).get("from") == upgrade_from
        ):
            ctx.log(f"test: {flavour} images already passed their smoke and upgrade tests, skipping")
            continue
        smoke = _session(ctx, flavour, "smoke")
        if smoke["result"] != "passed":
            upgrade = {"from": upgrade_from, "result": "not run: the smoke tests failed"}
        elif previous is None:
            ctx.log(f"test: no release before {ctx.version} on {ctx.target.registries[0]}, no upgrade to test")
            upgrade = {"from": None, "result": "no earlier release"}
        else:
            upgrade = {"from": upgrade_from, **_session(ctx, flavour, "upgrade")}
        failed = [run for run in (smoke, upgrade) if run["result"] == "failed"]
        results[flavour] = {
            "images": tested_images(entry),
            "result": "failed" if failed else "passed",
            "smoke": smoke,
            "upgrade": upgrade,
        }
        ctx.manifest.record(NAME, results)
        if failed:
            raise ReleaseError(f"{failed[0]['session']} failed ({failed[0]['summary']}): see {failed[0]['log']}")
    ctx.manifest.record(NAME, results)
    return results


def _session(ctx: ReleaseContext, flavour: str, kind: str) -> dict:
    """One nox session against this release's images; its output goes to a log in the cache."""
    session = session_name(str(ctx.version), flavour, kind)
    log = ctx.cache / "logs" / f"{ctx.version}-{kind}-{flavour}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    ctx.log(f'test: nox -s "{session}" (log: {log})')
    started = time.monotonic()
    with ctx.view.row(session, level=1) as row, open(log, "wb") as output:
        result = subprocess.run(
            [sys.executable, "-m", "nox", "--noxfile", str(ctx.settings.root / "noxfile.py"), "-s", session],
            cwd=ctx.settings.root,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
        if result.returncode != 0:
            row.failed()
    return {
        "result": "passed" if result.returncode == 0 else "failed",
        "session": session,
        "seconds": round(time.monotonic() - started, 1),
        "summary": _summary(log),
        "log": str(log),
    }


def _summary(log) -> str:
    """pytest's counts from its closing line: `20 passed, 4 deselected in 73.45s (0:01:13)` -> `20 passed`."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if " passed" in line or " failed" in line or " error" in line:
            counts = line.strip("= ").split(" in ")[0].split(", ")
            return ", ".join(count for count in counts if not count.endswith("deselected"))
    return "no pytest summary"
