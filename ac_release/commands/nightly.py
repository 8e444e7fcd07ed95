"""`invoke nightly <line>`: which dated dev build the line's current tree is, decided from what the target's dev
index and dev registry hold (never from local dist/), so any machine decides alike.

The version is `X.Y.Z-N-devYYYYMMDDKK`: N the line's next build (the newest changelog build +1 when it is dated,
the TBD build itself), the day in UTC and K the sequence of that day. The first K whose published inputs digest
(names.BUILD_INPUTS among its release files) equals this tree's is the answer: with nothing to do when `invoke
verify` of it passes (any machine, even one that never built it, agrees that it is complete), else the rest of an
interrupted build (the ordinary pipeline skips what is done); a K published from other inputs, or taken by a build
that left files but no inputs record, is never reused: the next K is.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass

from ac_release.building import build_inputs
from ac_release.clients import oci_release_files as release_files
from ac_release.clients import registry
from ac_release.clients.git import uncommitted
from ac_release.clients.index import project_files
from ac_release.commands import release
from ac_release.core.errors import ReleaseError
from ac_release.model.catalog import Catalog, load_catalog
from ac_release.model.changelog import is_date
from ac_release.model.config import Target
from ac_release.model.line import LINE_NAME
from ac_release.model.names import AIRFLOW_PROJECT, BUILD_INPUTS, line_build_names
from ac_release.model.version import NIGHTLY_YEARS, ACVersion, nightly_years
from ac_release.pipeline.run import RELEASE, plan, print_steps
from ac_release.world.context import ReleaseContext

MAX_SEQUENCE = 99


@dataclass(frozen=True)
class NightlyChoice:
    version: ACVersion
    reason: str
    done: bool = False  # published from these inputs and verified: the run stops here

    def line(self) -> str:
        return f"{self.version}: {self.reason}"


@dataclass(frozen=True)
class DevState:
    """What the dev locations hold of one line: release-files listings, index files and image tags."""

    target: Target  # the dev build target (its index and registries are the dev ones)
    catalog: Catalog | None = None  # to verify a published nightly; None: never verified (a dry run's listing)

    def listing(self, version: ACVersion) -> dict[str, str] | None:
        return release_files.listing(release_files.location(self.target.registries[0]), str(version))

    def recorded_inputs(self, version: ACVersion) -> str | None:
        repository = release_files.location(self.target.registries[0])
        return build_inputs.recorded_digest(release_files.fetch(repository, str(version), BUILD_INPUTS))

    def index_files(self) -> set[str]:
        password = self.target.index.password.read()
        return set(project_files(self.target.index, password, AIRFLOW_PROJECT))

    def verify_problem(self, version: ACVersion) -> str | None:
        """None when `invoke verify` of the version passes on the dev locations, else what it found."""
        if self.catalog is None:
            return "not verified"
        from ac_release.supply_chain.verify import run_verify

        try:
            run_verify(ReleaseContext.create(str(version), self.catalog, self.target.name))
        except ReleaseError as exc:
            return str(exc)
        return None

    def image_tags(self) -> set[str]:
        return {tag for repository in self.target.registries for tag in registry.tags(repository)}


def parse_line(text: str) -> str:
    if not LINE_NAME.fullmatch(text or ""):
        raise ReleaseError(f"invalid release line {text!r}: expected the Airflow version X.Y.Z, e.g. 2.2.4")
    return text


def parse_date(text: str | None) -> dt.date:
    """--date YYYY-MM-DD (tests, a re-run of a missed night); default: today in UTC."""
    if text is None:
        return dt.datetime.now(dt.UTC).date()
    if is_date(text) and (day := dt.date.fromisoformat(text)).year in NIGHTLY_YEARS:
        return day
    raise ReleaseError(
        f"invalid --date {text!r}: expected a calendar date YYYY-MM-DD, e.g. 2026-12-01 ({nightly_years()})"
    )


def choose(catalog: Catalog, line: str, date: dt.date, state: DevState | None) -> NightlyChoice:
    """The nightly of `line` for `date`. `state` None: the dev locations cannot be read without starting the
    target's services (a dry run with them down), so the first sequence is shown as an assumption."""
    build = catalog.next_build(line)
    first = ACVersion.nightly_of(line, build, date, 1)
    if state is None:
        return NightlyChoice(first, f"first nightly of {date} unless the dev index holds one (services not running)")
    inputs = build_inputs.digest(catalog.settings.root, line)
    index_files, image_tags = state.index_files(), state.image_tags()
    why_next = ""
    for sequence in range(1, MAX_SEQUENCE + 1):
        version = ACVersion.nightly_of(line, build, date, sequence)
        listing = state.listing(version)
        if listing is not None and BUILD_INPUTS in listing:
            if state.recorded_inputs(version) == inputs:
                if (problem := state.verify_problem(version)) is None:
                    return NightlyChoice(version, f"same inputs as {version}, verified: nothing to do", done=True)
                return NightlyChoice(version, f"same inputs as {version}, not complete ({problem}): resuming it")
            why_next = f"inputs differ from {version}: next sequence"
        elif listing is not None or _taken(version, index_files, image_tags):
            why_next = f"{version} was left by a build without an inputs record: next sequence"
        else:
            return NightlyChoice(version, why_next or f"first nightly of {date}")
    raise ReleaseError(
        f"{line} has {MAX_SEQUENCE} nightlies of {date} already: run the next one tomorrow (or release {line}-{build})"
    )


def _taken(version: ACVersion, index_files: set[str], image_tags: set[str]) -> bool:
    """Any of this version's Airflow files on the dev index (named by its dev number, they alone tell), or any of its
    image tags on a dev registry."""
    prefix = version.image_tag
    return bool(index_files & set(line_build_names(version))) or any(
        tag == prefix or tag.startswith(prefix + "-") for tag in image_tags
    )


def nightly(line: str, target: str | None, dry_run: bool, date: str | None) -> None:
    """`invoke nightly`: from a committed tree, with the target's services up (unless they stand on their host),
    choose the nightly, print it and why, then build it (or with `--dry-run` print its plan)."""
    from ac_release.services.manager import LocalServices  # the embedded services' libraries: loaded when used

    catalog = load_catalog()
    settings = catalog.settings
    line, day = parse_line(line), parse_date(date)
    configured = settings.target(target)
    dev_target = configured.for_dev_build()
    dirty = uncommitted(settings.root)
    if dirty and not dry_run:
        raise ReleaseError(
            f"the git tree has uncommitted changes ({dirty}): a nightly is made from a commit; commit or stash them"
        )
    services = LocalServices(configured.services) if configured.services else None
    if services is not None and not dry_run and not configured.standing_services:  # staging's stand on their host
        services.up(log=lambda message: print(message, file=sys.stderr))
    readable = services is None or all(state.startswith("up") for state in services.status().values())
    choice = choose(catalog, line, day, DevState(dev_target, catalog) if readable else None)
    print(choice.line(), flush=True)
    if choice.done:
        return
    if dry_run:
        ctx = ReleaseContext.create(str(choice.version), catalog, target, releasing=True)
        note = f" (the tree has uncommitted changes: the run refuses them: {dirty})" if dirty else ""
        print_steps(plan(ctx), title=f"dry run: AC {choice.version} -> {ctx.target.name} (nothing written){note}")
        return
    release.run(str(choice.version), target, RELEASE, catalog=catalog, releasing=True)
