"""The job matrix of the workflows: which images a CI or release run builds and tests.

Computed from images/matrix.toml, release.toml and changelog/, so a workflow never lists flavours or platforms
itself (`invoke matrix`).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from ac_release.clients import github_output
from ac_release.core.errors import ReleaseError
from ac_release.model.catalog import Declared
from ac_release.model.config import Target, load_settings
from ac_release.model.flavours import flavours_of, release_platforms
from ac_release.model.nox_sessions import session_params
from ac_release.model.products import load_product, parse_version
from ac_release.model.support import SUPPORT_FILE

OUTPUT_NAME = "matrix"
GROUP_OUTPUT_NAME = "floating_group"
# `invoke matrix newest`: invoke has no optional positional argument, so "no version" is spelled as a word.
NEWEST = "newest"


def ci_matrix(root: Path, version: str = NEWEST, target: Target | None = None) -> dict:
    """`{"include": [{"version": …, "flavour": …, "platform": …}, …]}`: one row per image of `version`'s release,
    every flavour of its line for every platform the release builds on `target` (None: every platform of the line),
    the release workflow's images jobs.

    For `newest`, `{"version": …, "flavour": …}` for every flavour of the newest changelog build of each line: ci.yml's
    smoke jobs, each one nox session (parameters version and flavour), which builds the platforms of the default
    target on one amd64 runner; a row there names no platform."""
    images = root / "images"
    if version == NEWEST:
        pairs = [(version, flavour) for version, flavour, newest in session_params(root) if newest]
        if not pairs:  # GitHub refuses an empty matrix with a message far from the cause
            raise ReleaseError("no release line has both flavours in images/matrix.toml and a changelog/<airflow>.md")
        return {"include": [{"version": v, "flavour": f} for v, f in pairs]}
    try:
        parsed = parse_version(version, root)
    except ReleaseError as exc:
        raise ReleaseError(f"{exc}; or `{NEWEST}` for the newest build of every line") from None
    airflow = parsed.airflow_version
    flavours = flavours_of(images, airflow)
    platforms = flavours[0].platforms  # the line's: every flavour of a line has them
    if target is not None:
        platforms = release_platforms(platforms, target.platforms, airflow, target.name)
    rows = [(flavour.name, str(platform)) for flavour in flavours for platform in platforms]
    return {"include": [{"version": str(parsed), "flavour": f, "platform": p} for f, p in rows]}


def floating_group(root: Path, version: str) -> str:
    """The floating tags a release of `version` may move, as one name (`certified-2.2.4`, `runtime-4.2`): the
    release workflow's promote jobs of one group run one at a time, whichever builds they promote."""
    parsed = parse_version(version, root)
    product = load_product(root, parsed.product)
    return f"{product.name}-{product.tagging.floating.format(**parsed.floating_fields)}"


def as_json(matrix: dict) -> str:
    """One line: a step output (`name=value` in $GITHUB_OUTPUT) cannot span lines."""
    return json.dumps(matrix)


def write_github_output(matrix: dict, group: str | None = None) -> Path:
    """Append `matrix=<json>` (and `floating_group=<name>`) to the file GitHub Actions names in $GITHUB_OUTPUT (the
    step's outputs)."""
    return github_output.write_github_output(
        {OUTPUT_NAME: as_json(matrix)} | ({GROUP_OUTPUT_NAME: group} if group else {})
    )


def lines_matrix(catalog: Declared, today: dt.date | None = None) -> dict:
    """`{"include": [{"line": "2.2.4"}, …]}`: every release line (`wheel/<airflow>/line.toml`) supported on `today`
    (None: every line), one nightly job each."""
    lines = list(catalog.lines)
    if not lines:  # GitHub refuses an empty matrix with a message far from the cause
        raise ReleaseError(f"no release line: {catalog.wheel_dir} has no <airflow>/line.toml")
    if today is not None:
        lines = catalog.supported_lines(today)
        if not lines:
            raise ReleaseError(f"no release line is supported on {today}: see {catalog.wheel_dir / SUPPORT_FILE}")
    return {"include": [{"line": line} for line in lines]}


def print_matrix(version: str, target: str | None, github_output: bool) -> None:
    """`invoke matrix`: the job matrix of `version` on stdout, and with `--github-output` in $GITHUB_OUTPUT."""
    settings = load_settings()
    if version == NEWEST and target is not None:
        raise ReleaseError(
            f"`invoke matrix {NEWEST}` takes no --target: ci.yml's smoke sessions build on the default target"
        )
    jobs = ci_matrix(settings.root, version, settings.target(target) if version != NEWEST else None)
    if github_output:
        write_github_output(jobs, floating_group(settings.root, version) if version != NEWEST else None)
    print(as_json(jobs))


def print_lines(github_output: bool, every: bool = False) -> None:
    """`invoke lines`: the release lines supported today (`every`: all of them) as a job matrix on stdout, and with
    `--github-output` in $GITHUB_OUTPUT."""
    jobs = lines_matrix(Declared.under(load_settings().root), None if every else dt.datetime.now(dt.UTC).date())
    if github_output:
        write_github_output(jobs)
    print(as_json(jobs))
