"""Invoke tasks: argument parsing and wiring only; the work is in the `ac_release` package."""

from __future__ import annotations

import errno
import functools
import os
import sys
from pathlib import Path

from invoke import Collection, Exit, ParseError, Program, task

from ac_release.core.errors import DEBUG_ENV, ReleaseError, describe_decode_error, describe_os_error, one_line
from ac_release.model.config import load_settings
from ac_release.pipeline.run import RELEASE, plan, print_steps, released_state, run_stages, stage_names
from ac_release.pipeline.runlock import held
from ac_release.world.context import ReleaseContext


def _reports_errors(function):
    """Every failure becomes one line on stderr and a non-zero exit, never a traceback.

    ReleaseError, system errors (full disk, permissions) and undecodable files exit 1; Ctrl-C exits 130; anything
    else is a bug of the pipeline: one line and exit 2, and the traceback with AC_RELEASE_DEBUG=1.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ReleaseError as exc:
            raise Exit(f"error: {one_line(exc)}", code=1) from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EPIPE) and exc.filename is None:
                _discard_pending_output()
            raise Exit(f"error: {one_line(describe_os_error(exc))}", code=1) from None
        except UnicodeDecodeError as exc:
            raise Exit(f"error: {describe_decode_error(exc)}", code=1) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV) == "1":
                raise
            raise Exit(
                f"error: internal error: {type(exc).__name__}: {one_line(exc)} "
                f"(run with {DEBUG_ENV}=1 for the traceback)",
                code=2,
            ) from None

    return wrapper


def _discard_pending_output() -> None:
    """Standard output cannot be written (full disk, closed pipe): drop what is buffered, so that flushing it at
    exit adds no second message to the one line on stderr."""
    try:
        sys.stdout.flush()
    except OSError:
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _parse_tasks_with_one_error_line(self: Program) -> None:
    """invoke prints a bad command line (unknown flag, missing version) as a bare line; ours start with `error: `."""
    try:
        _parse_tasks(self)
    except ParseError as exc:
        raise Exit(f"error: {one_line(exc)}", code=1) from None


if Program.parse_tasks.__name__ != _parse_tasks_with_one_error_line.__name__:  # tasks.py may be imported twice
    _parse_tasks, Program.parse_tasks = Program.parse_tasks, _parse_tasks_with_one_error_line


def _stages(version: str, target: str | None, names: list[str], **context) -> None:
    ctx = ReleaseContext.create(version, load_settings(), target, **context)
    with held(ctx.dist, str(ctx.version)):  # one writing command per version at a time
        run_stages(ctx, names)


@task(
    help={
        "version": "version, e.g. 2.2.4-1 (AC) or runtime-4.2.0 (Astro Runtime)",
        "target": "a target of release.toml (default: local)",
        "dry-run": "print every file, tag, digest comparison and remote the release would write; write nothing",
        "stages": f"only these stages, after the preflight (a workflow job's part), e.g. wheel,sign,publish; of "
        f"{','.join(RELEASE)}",
        "flavour": "only this image flavour (a workflow's images job; `invoke matrix <version>` lists them)",
    }
)
@_reports_errors
def release(c, version, target=None, dry_run=False, stages=None, flavour=None):
    """Release a product version (AC 2.2.4-1, Runtime runtime-4.2.0): preflight, wheel, sign, publish, images, test,
    push, attest, promote, tag (each skips what is done)."""
    names = stage_names(stages)
    if dry_run:
        ctx = ReleaseContext.create(version, load_settings(), target, releasing=True, flavour=flavour)
        print_steps(
            plan(ctx, names), title=f"dry run: {ctx.product.title} {version} -> {ctx.target.name} (nothing written)"
        )
        return
    _stages(version, target, names, releasing=True, flavour=flavour)


@task(
    help={
        "line": "Airflow version of the release line, e.g. 2.2.4",
        "target": "a target of release.toml (default: local); the build goes to its dev index and registries",
        "dry-run": "print the nightly's version and why, then the plan; write nothing",
        "date": "the nightly's day, YYYY-MM-DD (default: today in UTC)",
    }
)
@_reports_errors
def nightly(c, line, target=None, dry_run=False, date=None):
    """Build the line's current tree as a dated dev build (`2.2.4-2-dev2026120101`, images `2.2.4-nightly-20261201`):
    the same inputs again the same day do nothing; other inputs get the next sequence."""
    from ac_release.clients.git import uncommitted
    from ac_release.commands import nightly as nightlies
    from ac_release.services.manager import LocalServices

    settings = load_settings()
    line, day = nightlies.parse_line(line), nightlies.parse_date(date)
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
    state = nightlies.DevState(dev_target, settings) if readable else None
    choice = nightlies.choose(settings, line, day, state)
    print(choice.line(), flush=True)
    if choice.done:
        return
    if dry_run:
        ctx = ReleaseContext.create(str(choice.version), settings, target, releasing=True)
        note = f" (the tree has uncommitted changes: the run refuses them: {dirty})" if dirty else ""
        print_steps(plan(ctx), title=f"dry run: AC {choice.version} -> {ctx.target.name} (nothing written){note}")
        return
    _stages(str(choice.version), target, RELEASE, releasing=True)


@task(
    help={
        "version": "version, e.g. 2.2.4-1 (AC) or runtime-4.2.0 (Astro Runtime)",
        "target": "a target of release.toml",
    }
)
@_reports_errors
def status(c, version, target=None):
    """Show what of a release exists where: dist/, index, images, registries, git tag."""
    ctx = ReleaseContext.create(version, load_settings(), target)
    print_steps(released_state(ctx), title=f"{ctx.product.title} {version} on {ctx.target.name}", as_status=True)


@task(
    help={
        "version": "version, e.g. 2.2.4-1 (AC) or runtime-4.2.0 (Astro Runtime)",
        "target": "a target of release.toml",
    }
)
@_reports_errors
def verify(c, version, target=None):
    """From a clean client: download and verify every artifact, pull every image by digest, run airflow version."""
    from ac_release.supply_chain.verify import run_verify

    ctx = ReleaseContext.create(version, load_settings(), target)
    for what, result in run_verify(ctx):
        print(f"ok  {what}: {result}")


@task(
    help={
        "version": "version, e.g. 2.2.4-1 (AC) or runtime-4.2.0 (Astro Runtime)",
        "target": "a target of release.toml",
    }
)
@_reports_errors
def github_release(c, version, target=None):
    """Publish the tag's notes with the wheels, bundles and manifest as the GitHub release (in GitHub Actions)."""
    from ac_release.commands.github_release import publish_github_release

    print(publish_github_release(ReleaseContext.create(version, load_settings(), target)))


@task(
    help={
        "version": "version, e.g. 2.2.4-1 (AC) or runtime-4.2.0 (Astro Runtime)",
        "target": "a target of release.toml",
    }
)
@_reports_errors
def build(c, version, target=None):
    """Everything before the tests: preflight, wheel, sign, publish, images (each skips what is done)."""
    _stages(version, target, ["preflight", "wheel", "sign", "publish", "images"])


@task(
    help={
        "version": "version, e.g. 2.2.4-1 (AC) or runtime-4.2.0 (Astro Runtime)",
        "target": "a target of release.toml",
    }
)
@_reports_errors
def wheel(c, version, target=None):
    """Build the patched apache-airflow wheel + sdist and the astronomer-certified meta wheel into dist/<version>/."""
    _stages(version, target, ["wheel"])


@task(
    help={
        "version": "version, e.g. 2.2.4-1 (AC) or runtime-4.2.0 (Astro Runtime)",
        "target": "a target of release.toml",
    }
)
@_reports_errors
def sign(c, version, target=None):
    """Sign every artifact of dist/<version>/ with Sigstore and verify the bundles."""
    _stages(version, target, ["sign"])


@task(
    help={
        "version": "version, e.g. 2.2.4-1 (AC) or runtime-4.2.0 (Astro Runtime)",
        "target": "a target of release.toml",
    }
)
@_reports_errors
def publish(c, version, target=None):
    """Upload the signed artifacts to the target's pip index (checked by sha256 first)."""
    _stages(version, target, ["preflight", "publish"])


@task(
    default=True,
    help={
        "version": "version, e.g. 2.2.4-1 (AC) or runtime-4.2.0 (Astro Runtime)",
        "target": "a target of release.toml",
    },
)
@_reports_errors
def images_build(c, version, target=None):
    """Build every Docker flavour of a release FROM its published, signed wheels."""
    _stages(version, target, ["images"])


@task
@_reports_errors
def images_generate(c):
    """Render images/<airflow>/<flavour>/[onbuild/]Dockerfile from images/Dockerfile.j2 and images/matrix.toml."""
    from ac_release.building.dockerfiles import generate

    settings = load_settings()
    for path in generate(settings.root / "images"):
        print(f"wrote {path.relative_to(settings.root)}")


@task(
    help={
        "version": "AC version whose published wheels are built into images, e.g. 2.2.4-1",
        "release": "also release the version cold on a scratch target of its own, timed per stage (default: on)",
        "json": "write the figures as JSON here (default: <cache>/bench/<version>-<UTC time>.json)",
    }
)
@_reports_errors
def bench(c, version, target=None, release=True, json=None):
    """Image build time and size, and the whole release, against an AC-2022-style baseline built in the same run
    (clears the Docker build cache)."""
    from ac_release.bench.main import run_bench

    ctx = ReleaseContext.create(version, load_settings(), target)
    with held(ctx.dist, str(ctx.version)):
        run_bench(ctx, release=release, json_path=Path(json).absolute() if json else None)


@task(
    help={
        "version": "version (2.2.4-1, runtime-4.2.0), or `newest`: each line's newest build (ci.yml's smoke jobs)",
        "github-output": "also append `matrix=<json>` to the file named by $GITHUB_OUTPUT (a GitHub Actions step)",
    }
)
@_reports_errors
def matrix(c, version, github_output=False):
    """Print the workflows' job matrix as JSON: one {version, flavour} per image flavour to build and test."""
    from ac_release.commands.ci_matrix import NEWEST, as_json, ci_matrix, floating_group, write_github_output

    root = load_settings().root
    jobs = ci_matrix(root, version)
    if github_output:
        write_github_output(jobs, floating_group(root, version) if version != NEWEST else None)
    print(as_json(jobs))


@task(help={"github-output": "also append `matrix=<json>` to the file named by $GITHUB_OUTPUT (a GitHub Actions step)"})
@_reports_errors
def lines(c, github_output=False):
    """Print the release lines (wheel/<airflow>/line.toml) as a job matrix: one {line} per line (nightly.yml)."""
    from ac_release.commands.ci_matrix import as_json, lines_matrix
    from ac_release.commands.ci_matrix import write_github_output as write_matrix

    jobs = lines_matrix(load_settings().wheel_dir)
    if github_output:
        write_matrix(jobs)
    print(as_json(jobs))


@task(help={"line": "a release line (Airflow version, e.g. 2.2.4), or a product version with pins (runtime-4.2.0)"})
@_reports_errors
def lock(c, line):
    """Regenerate wheel/<line>/constraints.txt and build-requirements.txt, or a product version's
    products/<product>/<version>/constraints.txt, with uv, as of their cut-off."""
    from ac_release.building.lock import regenerate
    from ac_release.model.line import load_line
    from ac_release.model.products import load_product, parse_version
    from ac_release.model.version import ACVersion

    settings = load_settings()
    if (settings.wheel_dir / line / "line.toml").is_file():
        written = regenerate(load_line(settings.wheel_dir, ACVersion.parse(f"{line}-1")))
    else:
        try:
            version = parse_version(line, settings.root)
        except ReleaseError:
            version = None
        product = version and load_product(settings.root, version.product)
        if version is None or product.pins(version) is None:
            raise ReleaseError(
                f"no release line {line!r}: expected {settings.wheel_dir / line / 'line.toml'}, or a product version "
                f"with pins of its own (e.g. runtime-4.2.0)"
            )
        written = regenerate(product.line_of(load_line(settings.wheel_dir, version), version), toolchain=False)
    for path in written:
        print(f"wrote {Path(path).relative_to(settings.root)}")


@task(
    help={
        "line": "Airflow version of the release line, e.g. 2.2.4",
        "patch": "a `git format-patch` file: an upstream commit or a fix of this fork",
        "github-output": "also append the pull request of backport.yml (build, branch, title, body) to $GITHUB_OUTPUT",
    }
)
@_reports_errors
def backport(c, line, patch, github_output=False):
    """Add a patch to a line's series (proven to apply to the pinned sdist), with a check to fill in and the
    undated changelog entry of the next build."""
    from ac_release.clients.github_output import require_github_output, write_github_output
    from ac_release.commands.backport import backport as add_backport
    from ac_release.commands.backport import pull_request

    if github_output:
        require_github_output()  # before anything is written
    printed: list[str] = []

    def log(text: str) -> None:
        print(text)
        printed.append(text)

    planned = add_backport(load_settings(), line, Path(patch).absolute(), log=log)
    if github_output:
        write_github_output(pull_request(planned, printed))


@task(name="lock-tools", help={"upgrade": "re-resolve every pin instead of keeping the ones already in the lock"})
@_reports_errors
def lock_tools(c, upgrade=False):
    """Regenerate requirements/pipeline.txt: the pipeline's own dependencies (pyproject.toml) locked with hashes."""
    from ac_release.building.lock import regenerate_tools

    settings = load_settings()
    path = regenerate_tools(settings.root, upgrade=upgrade)
    print(f"wrote {path.relative_to(settings.root)}")


def _services_of(target: str | None):
    """The services the target runs here (`local`'s, `staging`'s); a target without any is refused."""
    from ac_release.services.manager import LocalServices

    chosen = load_settings().target(target)
    if chosen.services is None:
        raise ReleaseError(f"target {chosen.name} runs no services here: its index and registries are remote")
    return chosen, LocalServices(chosen.services)


_SERVICES_HELP = {"target": "a target of release.toml that runs services here (default: the default target)"}


@task(help=_SERVICES_HELP)
@_reports_errors
def services_up(c, target=None):
    """Start the target's services (pip index, Sigstore instance, registries, git remote) on loopback."""
    _services_of(target)[1].up()


@task(help=_SERVICES_HELP)
@_reports_errors
def services_down(c, target=None):
    """Stop the target's services; their data stays in their directory."""
    _services_of(target)[1].down()


@task(help=_SERVICES_HELP)
@_reports_errors
def services_status(c, target=None):
    """Show which of the target's services run, and where."""
    for name, state in _services_of(target)[1].status().items():
        print(f"{name:10} {state}")


@task(
    help={
        "target": "a target of release.toml with services of its own (default: staging)",
        "workflow": "the workflow file under .github/workflows/ whose job signs (default: release.yml)",
        "ref": "the git ref the run is for (default: refs/heads/main)",
        "repository": "OWNER/REPO (default: astronomer/ap-airflow)",
        "event": "the event that triggered the run (default: workflow_dispatch)",
        "environment": "the job's environment (default: the target's name; '' for none)",
        "sha": "the commit of the run (default: the checkout's HEAD)",
        "lifetime": "seconds the request token is valid (default 7200: a whole workflow run)",
    }
)
@_reports_errors
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
    from ac_release.services.actions_env import export_lines

    job = {"workflow": workflow, "ref": ref, "repository": repository, "event": event, "sha": sha}
    for line in export_lines(load_settings(), target, job, environment, lifetime):
        print(line)


services = Collection("services")
services.add_task(services_up, "up")
services.add_task(services_down, "down")
services.add_task(services_status, "status")
services.add_task(services_actions_env, "actions-env")
images = Collection("images")
images.add_task(images_build, "build", default=True)
images.add_task(images_generate, "generate")
namespace = Collection(
    release,
    nightly,
    status,
    verify,
    github_release,
    build,
    wheel,
    sign,
    publish,
    lock,
    lock_tools,
    backport,
    matrix,
    lines,
    services,
    images,
    bench,
)
