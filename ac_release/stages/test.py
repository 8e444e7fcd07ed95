"""Stage `test`: the smoke and upgrade tests of every flavour, run by pytest against the exact images the push
stage pushes (by id), with the release's target. The upgrade test starts from the newest earlier release on the
target's registry (ac_release/world/released_images.py); a first release has none, and its record says so.

The stage pulls the earlier release by digest itself, with the registry's own login (registry.authenticated), and
names it to the upgrade session in AC_SMOKE_UPGRADE_FROM (`<version> <repository>@<digest>`): the sessions get no
secret, so they neither read a registry that requires credentials nor pull from it.

The smoke tests run as two parts (PARTS), side by side with each other and with the upgrade tests: three pytest
processes that share only the images, each with its own Docker network and PostgreSQL.

Results are recorded against the image ids: images that already passed are not tested again, and the push stage
refuses an image id without a passing result. A session in which any test was skipped, or none ran, failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ac_release.building.image_state import flavour_state
from ac_release.clients import proc, registry
from ac_release.clients.platforms import emulated
from ac_release.core.errors import ReleaseError
from ac_release.model.flavours import AMD64, Platform
from ac_release.model.names import run_log_stem
from ac_release.model.records import FlavourTest, ImagesRecord, Session, SessionsRecord
from ac_release.stages.steps import Step, open_steps
from ac_release.world.context import ReleaseContext, flavours, platforms, services_running
from ac_release.world.released_images import PreviousRelease, previous_release

NAME = "test"
KINDS = ("smoke", "upgrade")
# Each kind's tests as parts run side by side, by pytest marker expression (tests/smoke: `database` marks the tests
# that need the part's PostgreSQL). The parts of a kind together select every test of its marker, each once.
PARTS = {
    "smoke": {"image": "smoke and not database", "database": "smoke and database"},
    "upgrade": {"upgrade": "upgrade"},
}
# On a platform this machine emulates (linux/arm64 on amd64: 3-4x slower) the `full` tests are left out: the image
# checks and a DAG run against PostgreSQL (`airflow db init` first) remain, and the upgrade tests; the end-to-end tier
# runs the full set there.
EMULATED = " and not full"


def expression(kind_expression: str, platform: Platform) -> str:
    """A part's marker expression on `platform`."""
    return kind_expression + (EMULATED if kind_expression.startswith("smoke") and emulated(platform) else "")


# What the test sessions get of the environment: what Docker, pytest and the pipeline's configuration need.
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH")
PASSED_ENV_PREFIXES = ("AC_RELEASE_",)
UPGRADE_FROM_ENV = "AC_SMOKE_UPGRADE_FROM"


@dataclass(frozen=True)
class FlavourSessions:
    """The test sessions of a flavour's images of one platform; `previous`: the earlier release the upgrade tests
    start from (its image of that platform)."""

    flavour: str
    platform: Platform
    previous: PreviousRelease | None = None


def decide(ctx: ReleaseContext, earlier: Collection[str] = ()) -> list[Step[FlavourSessions]]:
    """skip a flavour's platform whose very images passed, from the same earlier release; run the rest; refuse one
    without images, unless the images stage runs before in this run."""
    record = ctx.record(SessionsRecord) or SessionsRecord({})
    built = ctx.record(ImagesRecord) or ImagesRecord({})
    running = services_running(ctx)
    repository = ctx.release_target.registries[0]  # where releases are: a dev build is upgrade-tested from one
    steps = []
    for platform in platforms(ctx):
        previous = previous_release(ctx, platform) if running else None
        upgrade_from = str(previous.version) if previous else None
        for flavour in flavours(ctx):
            state = flavour_state(ctx, flavour, platform)
            sessions = FlavourSessions(flavour.name, platform)
            name = f"{flavour.name}/{platform}"
            smoke, upgrade = f"smoke/{name}", f"upgrade/{name}"
            not_running = f"registry not running: earlier release on {repository}"
            passed = state.current and record.passed(
                flavour.name, platform, state.current.ids(), upgrade_from if running else ...
            )
            if passed:
                done = record.of(flavour.name, platform)
                steps.append(Step(NAME, "skip", smoke, f"these images passed: {done.smoke.summary}", sessions))
                if not running:
                    steps.append(Step(NAME, "unknown", upgrade, not_running, sessions))
                else:
                    reason = f"from {upgrade_from}: {done.upgrade.summary}" if upgrade_from else done.upgrade.summary
                    steps.append(Step(NAME, "skip", upgrade, reason, sessions))
                continue
            if built.of(flavour.name, platform) is None and "images" not in earlier:
                reason = f"no {name} images of {ctx.version} to test: run `invoke images {ctx.version}`"
                steps.append(Step(NAME, "refuse", smoke, reason, sessions))
            else:
                images = "the images built above" if not state.current else ", ".join(state.current.ids().values())
                selected = expression("smoke", platform)
                steps.append(Step(NAME, "run", smoke, f"tests/smoke -m '{selected}' on {images}", sessions))
            if not running:
                steps.append(Step(NAME, "unknown", upgrade, not_running, sessions))
            elif previous is None:
                reason = f"no earlier release with a {platform} image on {repository}"
                steps.append(Step(NAME, "skip", upgrade, reason, sessions))
            else:
                reason = f"from {previous.version} ({previous.reference})"
                steps.append(Step(NAME, "run", upgrade, reason, FlavourSessions(flavour.name, platform, previous)))
    return steps


def act(ctx: ReleaseContext, steps: list[Step[FlavourSessions]]) -> SessionsRecord:
    """Each flavour's platforms side by side (an emulated platform's sessions are slow and CPU-bound, the native
    one's mostly wait on containers), each platform's sessions side by side too (_side_by_side)."""
    record = ctx.record(SessionsRecord) or SessionsRecord({})
    images = ctx.record(ImagesRecord)
    runs = []  # (flavour, platform, the earlier release of that platform)
    for platform in platforms(ctx):
        # the earlier release the decision found (the registry is read once, by decide)
        mine = [step for step in steps if step.payload and step.payload.platform == platform]
        previous = next((step.payload.previous for step in mine if step.payload.previous), None)
        for name in sorted({step.payload.flavour for step in open_steps(mine)}):
            if previous is None:
                registry_name = ctx.release_target.registries[0]
                ctx.log(f"test: no {platform} release before {ctx.version} on {registry_name}, no upgrade to test")
            else:
                pull_previous(ctx, previous, platform)
            runs.append((name, platform, previous))
    for name in sorted({name for name, _, _ in runs}):
        of_flavour = [(platform, previous) for flavour, platform, previous in runs if flavour == name]
        with ThreadPoolExecutor(max_workers=len(of_flavour)) as pool:
            done = [
                (platform, previous, pool.submit(_side_by_side, ctx, name, platform, previous))
                for platform, previous in of_flavour
            ]
            results = [(platform, previous, future.result()) for platform, previous, future in done]
        for platform, previous, sessions in results:
            ids = images.of(name, platform).ids()  # decide refused a flavour without images
            upgrade = sessions.get("upgrade") or Session("no earlier release")
            upgrade_from = str(previous.version) if previous else None
            record.put(name, platform, FlavourTest(ids, upgrade_from, sessions["smoke"], upgrade))
        ctx.save(record)
        for platform, _, sessions in results:
            for kind, session in sessions.items():
                if session.result == "failed":
                    raise ReleaseError(
                        f"the {kind} tests of {name} {platform} failed ({session.summary}): see {session.log}"
                    )
    if not open_steps(steps):
        ctx.log("test: every flavour's images already passed their tests, skipping")
    return record


def _side_by_side(
    ctx: ReleaseContext, flavour: str, platform: Platform, previous: PreviousRelease | None
) -> dict[str, Session]:
    """Every part of the smoke tests, and the upgrade tests, at once: they share nothing but the images (each part
    has its own Docker network and PostgreSQL), and each mostly waits on containers, so two cores run them in
    about the time of the longest part. A kind's parts make one Session."""
    kinds = KINDS if previous is not None else ("smoke",)
    jobs = [(kind, part, expression(marks, platform)) for kind in kinds for part, marks in PARTS[kind].items()]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = []
        for kind, part, marks in jobs:
            earlier = previous if kind == "upgrade" else None
            futures.append((kind, pool.submit(_session, ctx, flavour, platform, kind, part, marks, earlier)))
        parts = [(kind, future.result()) for kind, future in futures]
    seconds = round(time.monotonic() - started, 1)
    return {kind: _combined([session for k, session in parts if k == kind], seconds) for kind in kinds}


def _combined(parts: list[Session], seconds: float) -> Session:
    """One kind's parts as one session: passed only when every part passed; counts summed; the failed parts' logs
    (every part's when none failed)."""
    if len(parts) == 1:
        return parts[0]
    counts: dict[str, int] = {}
    for part in parts:
        for key, value in part.counts.items():
            counts[key] = counts.get(key, 0) + value
    passed = all(part.result == "passed" for part in parts)
    logs = [part.log for part in parts if passed or part.result != "passed"]
    return Session("passed" if passed else "failed", seconds, counts, ", ".join(logs))


def pull_previous(ctx: ReleaseContext, previous: PreviousRelease, platform: Platform = AMD64) -> None:
    """The earlier release's image of `platform` by digest, pulled here with the registry's login: the upgrade
    session gets no secret."""
    ctx.log(f"test: pulling {previous.reference} ({previous.version}, {platform}) to upgrade from")
    # a release repository: a dev build's own target holds only the dev repositories, not their login
    with registry.authenticated(ctx.docker, ctx.release_target.registry(previous.repository)) as docker:
        docker("pull", "--quiet", "--platform", str(platform), previous.reference, capture=True)


def _session(
    ctx: ReleaseContext,
    flavour: str,
    platform: Platform,
    kind: str,
    part: str,
    expression: str,
    previous: PreviousRelease | None = None,
) -> Session:
    """pytest on tests/smoke with one marker expression, against this release's images of one flavour and this
    target."""
    logs = ctx.cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    parts = [platform.architecture, *([part] if part != kind else [])]
    stem = run_log_stem(ctx.version, ctx.target.name, kind, flavour, *parts)
    log, report = logs / f"{stem}.log", logs / f"{stem}.xml"
    report.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "pytest", str(ctx.settings.root / "tests" / "smoke"), "-m", expression]
    argv += ["-p", "no:cacheprovider", f"--junitxml={report}", "-o", "junit_family=xunit2", "-rfEs"]
    env = session_env(ctx, flavour, platform, previous)
    what = f"{kind} {flavour} {platform}{f' {part}' if part != kind else ''}"
    ctx.log(f"test: {what} (log: {log})")
    started = time.monotonic()
    with ctx.view.row(what, level=1) as row, open(log, "wb") as out:
        try:
            returncode = proc.run(
                argv, kind="pytest", cwd=ctx.settings.root, stdout=out, stderr=subprocess.STDOUT, env=env
            ).returncode
        except proc.Timeout as exc:
            out.write(f"\n{exc}\n".encode())
            returncode = -1
        counts = _counts(report)
        passed = returncode == 0 and counts.get("tests", 0) > 0 and counts["passed"] == counts["tests"]
        if not passed:
            row.failed()
    return Session("passed" if passed else "failed", round(time.monotonic() - started, 1), counts, str(log))


def session_env(
    ctx: ReleaseContext, flavour: str, platform: Platform = AMD64, previous: PreviousRelease | None = None
) -> dict[str, str]:
    """Only what the tests need of the environment: no index password, token or other secret reaches them. An
    upgrade session is told which earlier release the stage pulled for it."""
    env = {k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith(PASSED_ENV_PREFIXES)}
    env.pop(UPGRADE_FROM_ENV, None)
    if previous is not None:
        env[UPGRADE_FROM_ENV] = f"{previous.version} {previous.reference}"
    return env | {
        "AC_SMOKE_VERSION": str(ctx.version),
        "AC_SMOKE_FLAVOUR": flavour,
        "AC_SMOKE_PLATFORM": str(platform),
        "AC_SMOKE_TARGET": ctx.target.name,
    }


def _counts(report: Path) -> dict[str, int]:
    """pytest's counts from its JUnit report; skipped tests count against the session."""
    if not report.exists():
        return {}
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {"tests": counts["tests"], "passed": counts["passed"]} | {
        key: counts[key] for key in ("failures", "errors", "skipped")
    }
