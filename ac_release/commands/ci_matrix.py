"""The job matrix of the workflows: which (version, flavour) pairs a CI or release run builds and tests.

Computed from images/matrix.toml and changelog/, so a workflow never lists flavours itself (`invoke matrix`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ac_release.clients import github_output
from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.model.flavours import flavours_of
from ac_release.model.line import known_lines
from ac_release.model.nox_sessions import session_params
from ac_release.model.products import load_product, parse_version

OUTPUT_NAME = "matrix"
GROUP_OUTPUT_NAME = "floating_group"
# `invoke matrix newest`: invoke has no optional positional argument, so "no version" is spelled as a word.
NEWEST = "newest"


def ci_matrix(root: Path, version: str = NEWEST) -> dict:
    """`{"include": [{"version": …, "flavour": …}, …]}`: every flavour of `version`'s line; for `newest`, every
    flavour of the newest changelog build of each line (the builds ci.yml's smoke jobs test)."""
    images = root / "images"
    if version != NEWEST:
        try:
            parsed = parse_version(version, root)
        except ReleaseError as exc:
            raise ReleaseError(f"{exc}; or `{NEWEST}` for the newest build of every line") from None
        pairs = [(str(parsed), flavour.name) for flavour in flavours_of(images, parsed.airflow_version)]
    else:
        pairs = [(version, flavour) for version, flavour, newest in session_params(root) if newest]
        if not pairs:  # GitHub refuses an empty matrix with a message far from the cause
            raise ReleaseError("no release line has both flavours in images/matrix.toml and a changelog/<airflow>.md")
    return {"include": [{"version": v, "flavour": f} for v, f in pairs]}


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


def lines_matrix(wheel_dir: Path) -> dict:
    """`{"include": [{"line": "2.2.4"}, …]}`: every release line (`wheel/<airflow>/line.toml`), one nightly job each."""
    lines = known_lines(wheel_dir)
    if not lines:  # GitHub refuses an empty matrix with a message far from the cause
        raise ReleaseError(f"no release line: {wheel_dir} has no <airflow>/line.toml")
    return {"include": [{"line": line} for line in lines]}


def print_matrix(version: str, github_output: bool) -> None:
    """`invoke matrix`: the job matrix of `version` on stdout, and with `--github-output` in $GITHUB_OUTPUT."""
    root = load_settings().root
    jobs = ci_matrix(root, version)
    if github_output:
        write_github_output(jobs, floating_group(root, version) if version != NEWEST else None)
    print(as_json(jobs))


def print_lines(github_output: bool) -> None:
    """`invoke lines`: the release lines as a job matrix on stdout, and with `--github-output` in $GITHUB_OUTPUT."""
    jobs = lines_matrix(load_settings().wheel_dir)
    if github_output:
        write_github_output(jobs)
    print(as_json(jobs))
