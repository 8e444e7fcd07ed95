"""Stage `test`: the nox smoke session of every flavour, against the exact images the push stage will push.

Results are recorded against the image ids: a flavour whose images already passed is not tested again, and the
push stage refuses an image id that has no passing result.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ac_release.context import ReleaseContext
from ac_release.errors import ReleaseError
from ac_release.images.matrix import ONBUILD

NAME = "test"


def session_name(version: str, flavour: str) -> str:
    return f"smoke(version='{version}', flavour='{flavour}')"


def tested_images(entry: dict) -> dict[str, str]:
    return {variant: entry[variant]["image"] for variant in ("base", ONBUILD)}


def run(ctx: ReleaseContext) -> dict:
    built = ctx.manifest.stage("images")
    if not built:
        raise ReleaseError(f"no images of {ctx.version} to test: run `invoke images {ctx.version}`")
    results = dict(ctx.manifest.stage(NAME) or {})
    for flavour, entry in sorted(built.items()):
        previous = results.get(flavour)
        if previous and previous["result"] == "passed" and previous["images"] == tested_images(entry):
            ctx.log(f"test: {flavour} images already passed their smoke tests, skipping")
            continue
        session = session_name(str(ctx.version), flavour)
        log = ctx.cache / "logs" / f"{ctx.version}-smoke-{flavour}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        ctx.log(f'test: nox -s "{session}" (log: {log})')
        started = time.monotonic()
        with open(log, "wb") as output:
            result = subprocess.run(
                [sys.executable, "-m", "nox", "--noxfile", str(ctx.settings.root / "noxfile.py"), "-s", session],
                cwd=ctx.settings.root,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ},
            )
        outcome = "passed" if result.returncode == 0 else "failed"
        results[flavour] = {
            "images": tested_images(entry),
            "result": outcome,
            "session": session,
            "seconds": round(time.monotonic() - started, 1),
            "summary": _summary(log),
        }
        ctx.manifest.record(NAME, results)
        if outcome != "passed":
            raise ReleaseError(f"smoke tests of {flavour} failed ({results[flavour]['summary']}): see {log}")
    ctx.manifest.record(NAME, results)
    return results


def _summary(log) -> str:
    """pytest's closing line, e.g. `16 passed in 78.74s`."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if " passed" in line or " failed" in line or " error" in line:
            return line.strip("= ").strip()
    return "no pytest summary"
