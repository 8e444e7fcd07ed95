"""nox sessions: wiring only. They run in the environment .ci/bootstrap made (.venv), which pins every tool."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nox

from ac_release.model.nox_sessions import session_params

# No per-session virtualenvs: every session uses the tools installed beside the interpreter running nox.
nox.options.default_venv_backend = "none"
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
# Two tiers. The gate, a plain `nox` (.ci/run, every change): lint, then `gate`: the unit tests beside the
# integration tests, whose one full release smoke-tests the newest build in its test stage (ci.yml runs `unit` and
# `integration` as jobs of their own). The end-to-end tier, `nox -s e2e` (e2e.yml: daily, and on pushes
# to main that touch the pipeline): the long scenarios, whose releases upgrade-test N-1 -> N (the backport build,
# the nightly, the Runtime chain). Image sessions exist for every changelog build of every line (`invoke release`
# tests older builds too); ci.yml's smoke jobs run each line's newest build's; neither tier runs them.
IMAGE_SESSIONS = session_params(Path(__file__).parent)
nox.options.sessions = ["lint", "gate"]
nox.options.error_on_missing_interpreters = True


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the code; zizmor (auditor persona) and actionlint with shellcheck on the GitHub Actions workflows."""
    from ac_release.commands.workflow_lint import WORKFLOWS, actionlint_command, zizmor_command
    from ac_release.core.errors import ReleaseError

    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    try:
        zizmor, actionlint = zizmor_command(WORKFLOWS), actionlint_command(WORKFLOWS)
    except ReleaseError as exc:
        session.error(str(exc))
    session.run(*zizmor)
    session.run(*actionlint)


PYTHON = sys.executable  # every tool runs as `python -m` of this environment, never found on PATH
SLOWEST = ("--durations=15", "--durations-min=0")  # where the time went, printed whole at the end of a tier


@nox.session
def unit(session: nox.Session) -> None:
    """Fast tests: no Docker, no network, no services."""
    session.run(PYTHON, "-m", "pytest", "tests/unit", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """One behaviour a test against the real parts (Docker engine, registry, index, Sigstore), and one full
    `invoke release` with its smoke tests. The gate's last session: it ends with the slowest tests and their times."""
    session.run(PYTHON, "-m", "pytest", "tests/integration", "-m", "integration", *SLOWEST, *session.posargs)


@nox.session
def gate(session: nox.Session) -> None:
    """The unit and integration sessions on one machine, side by side: the integration tests' critical path is their
    reference release (minutes of builds, emulation and containers), which the unit tests' minutes then fill. Two
    pytest processes; the unit tests' whole output is printed after the integration tests'."""
    # not session.create_tmp(): it sets TMPDIR for the session, which every test and release would then inherit
    with tempfile.NamedTemporaryFile(prefix="ac-release-unit-", suffix=".log", delete=False) as out:
        log = Path(out.name)
        unit = subprocess.Popen([PYTHON, "-m", "pytest", "tests/unit"], stdout=out, stderr=subprocess.STDOUT)
    try:
        session.run(PYTHON, "-m", "pytest", "tests/integration", "-m", "integration", *SLOWEST, *session.posargs)
    finally:
        status = unit.wait()
        print(f"--- the unit tests (beside the integration tests):\n{log.read_text()}", flush=True)
        log.unlink()
    if status != 0:
        session.error(f"the unit tests failed (exit {status}): their output is above")


@nox.session
def e2e(session: nox.Session) -> None:
    """The end-to-end tier, run daily and before a release (e2e.yml), not on every change: kill -9 at every point
    and the resume, nightlies, the backport release, Runtime across two lines, the workflows under act, the locks
    regenerated against PyPI."""
    session.run(PYTHON, "-m", "pytest", "tests/e2e", "-m", "e2e", *SLOWEST, *session.posargs)


@nox.session
@nox.parametrize(["version", "flavour"], [(version, flavour) for version, flavour, _ in IMAGE_SESSIONS])
def smoke(session: nox.Session, version: str, flavour: str) -> None:
    """Laptop convenience: build the release up to its images (each stage skips what is done), then smoke-test one
    flavour of the default target. `invoke release` runs the same tests itself, on the images it built."""
    with _local_services_left_as_found(session):
        _build_first(session, version)
    _image_tests(session, "smoke", version, flavour)


@nox.session
@nox.parametrize(["version", "flavour"], [(version, flavour) for version, flavour, _ in IMAGE_SESSIONS])
def upgrade(session: nox.Session, version: str, flavour: str) -> None:
    """The newest earlier release on the target's registry initialises a database; this release's image upgrades it."""
    with _local_services_left_as_found(session):  # the earlier release is pulled from the target's registry
        _build_first(session, version)
        _image_tests(session, "upgrade", version, flavour)


def _build_first(session: nox.Session, version: str) -> None:
    """The one place a session builds: never inside `invoke release`, whose test stage runs pytest itself."""
    session.run(PYTHON, "-m", "invoke", "build", version)


def _image_tests(session: nox.Session, marker: str, version: str, flavour: str) -> None:
    env = {"AC_SMOKE_VERSION": version, "AC_SMOKE_FLAVOUR": flavour}
    session.run(PYTHON, "-m", "pytest", "tests/smoke", "-m", marker, *session.posargs, env=env)


@contextlib.contextmanager
def _local_services_left_as_found(session: nox.Session):
    """Services a session had to start are stopped again: a CI run must not leave ports taken on its machine."""
    from ac_release.model.config import load_settings
    from ac_release.services.manager import LocalServices

    services = LocalServices(load_settings().services)
    were_up = any(state.startswith("up") for state in services.status().values())
    try:
        yield
    finally:
        if not were_up:
            session.run(PYTHON, "-m", "invoke", "services.down")


@nox.session
@nox.parametrize("version", [version for version, _, newest in IMAGE_SESSIONS if newest][:1])
def bench(session: nox.Session, version: str) -> None:
    """Image build time and size against an AC-2022-style baseline, and every image of the version's line build (other
    products included, each built first) as a share of the first (clears the Docker build cache)."""
    from ac_release.world.line_builds import same_line_build

    with _local_services_left_as_found(session):
        for made_from_its_line_build in same_line_build(Path(__file__).parent, version):
            _build_first(session, made_from_its_line_build)
        session.run(PYTHON, "-m", "invoke", "bench", version)
