"""Invoke tasks: argument parsing and wiring only; the work is in `ac_release.commands`, and every task reports its
failures through one boundary (`ac_release.commands.cli.command`)."""

from __future__ import annotations

from pathlib import Path

from invoke import Collection

from ac_release.commands import backport as backports
from ac_release.commands import ci_matrix, cli
from ac_release.commands import lock as locks
from ac_release.commands import nightly as nightlies
from ac_release.commands import release as releases
from ac_release.commands import services as target_services
from ac_release.commands.github_release import github_release_command
from ac_release.commands.images import generate_dockerfiles

cli.one_line_parse_errors()


@cli.command(help=cli.RELEASE_HELP)
def release(c, version, target=None, dry_run=False, stages=None, flavour=None, platform=None, force_unsupported=False):
    """Release a product version (AC 2.2.4-1, Runtime runtime-4.2.0): preflight, wheel, sign, publish, images, test,
    push, attest, index, promote, tag (each skips what is done)."""
    releases.release(version, target, dry_run, stages, flavour, platform, force_unsupported)


@cli.command(help=cli.NIGHTLY_HELP)
def nightly(c, line, target=None, dry_run=False, date=None):
    """Build the line's current tree as a dated dev build (`2.2.4-2-dev2026120101`, images `2.2.4-nightly-20261201`):
    the same inputs again the same day do nothing; other inputs get the next sequence."""
    nightlies.nightly(line, target, dry_run=dry_run, date=date)


@cli.command(help=cli.VERSION_HELP)
def status(c, version, target=None):
    """Show what of a release exists where: dist/, index, images, registries, git tag."""
    releases.status(version, target)


@cli.command(help=cli.VERSION_HELP)
def verify(c, version, target=None):
    """From a clean client: download and verify every artifact, pull every image by digest, run airflow version."""
    releases.verify(version, target)


@cli.command(help=cli.VERSION_HELP)
def github_release(c, version, target=None):
    """Publish the tag's notes with the wheels, bundles and manifest as the GitHub release (in GitHub Actions)."""
    github_release_command(version, target)


@cli.command(help=cli.VERSION_HELP)
def build(c, version, target=None):
    """Everything before the tests: preflight, wheel, sign, publish, images (each skips what is done)."""
    releases.run(version, target, ["preflight", "wheel", "sign", "publish", "images"])


@cli.command(help=cli.VERSION_HELP)
def wheel(c, version, target=None):
    """Build the patched apache-airflow wheel + sdist and the astronomer-certified meta wheel into dist/<version>/."""
    releases.run(version, target, ["wheel"])


@cli.command(help=cli.VERSION_HELP)
def sign(c, version, target=None):
    """Sign every artifact of dist/<version>/ with Sigstore and verify the bundles."""
    releases.run(version, target, ["sign"])


@cli.command(help=cli.VERSION_HELP)
def publish(c, version, target=None):
    """Upload the signed artifacts to the target's pip index (checked by sha256 first)."""
    releases.run(version, target, ["preflight", "publish"])


@cli.command(default=True, help=cli.VERSION_HELP)
def images_build(c, version, target=None):
    """Build every Docker flavour of a release FROM its published, signed wheels."""
    releases.run(version, target, ["images"])


@cli.command
def images_generate(c):
    """Render images/<airflow>/<flavour>/[onbuild/]Dockerfile from images/Dockerfile.j2 and images/matrix.toml."""
    generate_dockerfiles()


@cli.command(help=cli.BENCH_HELP)
def bench(c, version, target=None, release=True, json=None):
    """Image build time and size, and the whole release, against an AC-2022-style baseline built in the same run
    (clears the Docker build cache)."""
    from ac_release.bench.main import run_bench  # the benchmark's libraries: loaded when it runs

    json_path = Path(json).absolute() if json else None
    releases.under_run_lock(version, target, lambda ctx: run_bench(ctx, release=release, json_path=json_path))


@cli.command(help=cli.MATRIX_HELP)
def matrix(c, version, target=None, github_output=False):
    """Print the workflows' job matrix as JSON: one {version, flavour, platform} per image to build and test (for
    `newest`, one {version, flavour} per nox smoke session)."""
    ci_matrix.print_matrix(version, target, github_output)


@cli.command(help=cli.LINES_HELP)
def lines(c, github_output=False, all=False):
    """Print the release lines supported today (wheel/support.toml) as a job matrix: one {line} per line (nightly.yml,
    the audit); `--all`: every line of wheel/<airflow>/line.toml."""
    ci_matrix.print_lines(github_output, every=all)


@cli.command(help=cli.AUDIT_HELP)
def audit(c, target=None, json=None):
    """The security status of the newest release of every supported line and product: Debian updates and the CVEs
    they fix, yanked pins; exit 3 when a supported release has pending security updates."""
    from ac_release.commands.audit import audit as run_audit  # Debian's and Sigstore's libraries: loaded when used

    run_audit(target, json)


@cli.command(help=cli.LOCK_HELP)
def lock(c, line):
    """Regenerate wheel/<line>/constraints.txt and build-requirements.txt, or a product version's
    products/<product>/<version>/constraints.txt, with uv, as of their cut-off, for every platform of the line."""
    locks.lock(line)


@cli.command(help=cli.BACKPORT_HELP)
def backport(c, line, patch, github_output=False):
    """Add a patch to a line's series (proven to apply to the pinned sdist), with a check to fill in and the
    undated changelog entry of the next build."""
    backports.backport_command(line, patch, github_output)


@cli.command(name="lock-tools", help=cli.LOCK_TOOLS_HELP)
def lock_tools(c, upgrade=False):
    """Regenerate requirements/pipeline.txt: the pipeline's own dependencies (pyproject.toml) locked with hashes."""
    locks.lock_tools(upgrade)


@cli.command(help=cli.SERVICES_HELP)
def services_up(c, target=None):
    """Start the target's services (pip index, Sigstore instance, registries, git remote) on loopback."""
    target_services.up(target)


@cli.command(help=cli.SERVICES_HELP)
def services_down(c, target=None):
    """Stop the target's services; their data stays in their directory."""
    target_services.down(target)


@cli.command(help=cli.SERVICES_HELP)
def services_status(c, target=None):
    """Show which of the target's services run, and where."""
    target_services.print_status(target)


@cli.command(help=cli.ACTIONS_ENV_HELP)
def services_actions_env(
    c,
    target="staging",
    workflow="release.yml",
    ref="refs/heads/main",
    repository="astronomer/ap-airflow",
    event="workflow_dispatch",
    environment=None,
    sha=None,
    lifetime=7200,
):
    """Print the environment of a GitHub Actions job with `id-token: write` served by the target's own Sigstore
    (GITHUB_ACTIONS, ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN, a secret: stdout only), e.g. for `act --env-file`: the
    clients fetch their identity token themselves, as in production."""
    job = {"workflow": workflow, "ref": ref, "repository": repository, "event": event, "sha": sha}
    target_services.print_actions_env(target, job, environment, lifetime)


images = Collection("images", build=images_build, generate=images_generate)
services = Collection("services", up=services_up, down=services_down, status=services_status)
services.add_task(services_actions_env, "actions-env")
namespace = Collection(
    release, nightly, status, verify, audit, github_release, build, wheel, sign, publish, lock, lock_tools, backport,
    matrix, lines, services, images, bench,
)  # fmt: skip
