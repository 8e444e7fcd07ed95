"""Integration fixtures: real Docker builds, real local services, the real sigstore client.

With CI=true a missing prerequisite fails the run; elsewhere it skips with the command that provides it.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from rich.console import Console

from ac_release.model.config import docker_command, load_settings
from ac_release.pipeline.run import run_stage
from ac_release.services.manager import LocalServices
from ac_release.world.context import ReleaseContext
from tests.helpers import committed_copy, write_config

VERSION = "2.2.4-1"
SESSION_STARTED = time.time()  # conftest is imported as the session starts
FIGURES: list[str] = []
PLATFORMS = ("linux/amd64", "linux/arm64")  # the platforms of the 2.2.4 line (images/matrix.toml), in its order


@pytest.fixture(scope="session")
def figure():
    """Record a measured figure; the run prints them all at its end (a CI log carries them without `-s`)."""
    return FIGURES.append


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("figures measured in this run")
        for line in FIGURES:
            terminalreporter.write_line(line)


def require(ok: bool, what: str) -> None:
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {what} is missing: .ci/run (via .ci/bootstrap) must provide it")
    pytest.skip(f"{what} is missing: run .ci/bootstrap")


@pytest.fixture(scope="session")
def docker_ready():
    argv = docker_command("auto") if shutil.which("docker") or os.path.exists("/usr/bin/docker") else None
    require(
        argv is not None and subprocess.run([*argv, "info"], capture_output=True).returncode == 0,
        "a running Docker engine",
    )
    require(shutil.which("debootstrap") is not None, "debootstrap")
    require(shutil.which("patch") is not None, "patch")


@pytest.fixture(scope="session")
def debian_base(docker_ready) -> str:
    """The pipeline's own Debian bullseye base (debootstrap from the signed archive): built once per machine, keyed
    by its inputs, and shared by every fixture that needs a small image. A session fixture, so that it is made before
    any module traps the network for the clients it tests (test_cosign_local's `offline`): debootstrap downloads."""
    from ac_release.building.baseimage import ensure_debian_base
    from ac_release.clients.docker import Docker

    return ensure_debian_base(Docker(docker_command("auto")), "bullseye", log=lambda _: None)


@pytest.fixture(scope="module")
def release_repo(tmp_path_factory):
    """The working tree as it is (tracked and new files), committed in a repository of its own."""
    return committed_copy(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="session")
def registry_server():
    """Debian's docker-registry, which the local and staging services run (no Docker engine needed)."""
    require(shutil.which("docker-registry") is not None, "docker-registry")


@pytest.fixture(scope="session")
def staging(tmp_path_factory, registry_server):
    """A committed copy of the tree whose release.toml has the staging services in a directory of this session (a
    machine's own staging stays untouched), on `main`; the staging secrets (made up here, as a CI secret store holds
    them), the services up, and GitHub Actions' identity variables of a release.yml job on main, which staging's
    services serve as GitHub does (`invoke services.actions-env`).
    Session-wide: the end-to-end tier starts the release workflow's run to staging with the session, and the
    gate's push tests use its two TLS registries."""
    from tests.helpers import STAGING_ENV, git
    from tests.staging_run import STAGING_DIR, invoke

    repo = committed_copy(tmp_path_factory.mktemp("staging-repo"))
    services_dir = tmp_path_factory.mktemp("staging-services")
    config = repo / "release.toml"
    text = config.read_text()
    assert text.count(STAGING_DIR) == 1
    config.write_text(text.replace(STAGING_DIR, f'dir = "{services_dir}"'))
    git(repo, "branch", "-M", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "staging here")
    env = {name: secrets.token_urlsafe(24) for name in STAGING_ENV.values()}
    up = invoke(repo, None, env, "services.up", "--target", "staging")
    assert up.returncode == 0, up.stderr
    env |= actions_env(repo, env)  # GitHub Actions' identity of release.yml on main, as its jobs get it
    yield repo, config, env
    LocalServices(load_settings(config).target("staging").services).down(log=lambda _: None)


def actions_env(repo, env: dict[str, str], *args: str) -> dict[str, str]:
    """What `invoke services.actions-env --target staging` exports: a job's GitHub Actions identity variables."""
    from tests.staging_run import invoke

    printed = invoke(repo, None, env, "services.actions-env", "--target", "staging", *args)
    assert printed.returncode == 0 and not printed.stderr, printed.stderr
    exports = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in printed.stdout.splitlines())
    assert sorted(exports) == ["ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL", "GITHUB_ACTIONS"]
    return exports


@pytest.fixture(scope="module")
def reference(release_repo, tmp_path_factory, figure, docker_ready):
    """`invoke release 2.2.4-1` from an empty dist/, index, registry and remote, after its dry run, on services of
    its own: (config, the run, what it left behind, the dry run). One per module that asks: the gate's
    test_release.py, and the end-to-end tier's scenarios built on it."""
    from tests.release_run import invoke, signing_share, state

    directory = tmp_path_factory.mktemp("reference")
    config = write_config(directory, root=release_repo)
    assert invoke(release_repo, config, "services.up").returncode == 0  # so that the dry run can read them
    plan = invoke(release_repo, config, "release", VERSION, "--dry-run")
    assert plan.returncode == 0, plan.stderr[-3000:]
    started = time.monotonic()
    result = invoke(release_repo, config, "release", VERSION)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    figure(f"release {VERSION} from an empty dist/, index, registry and remote: {seconds:.0f} s")
    figure(signing_share(result.stderr + result.stdout))
    yield config, result, state(config), plan
    LocalServices(load_settings(config).services).down(log=lambda _: None)


@pytest.fixture(scope="session")
def reference_started(tmp_path_factory, figure, docker_ready):
    """The gate's reference release (test_release.py), started in the background as the session starts, so that its
    minutes (arm64 built and tested under emulation) pass beside the other modules; test_release.py runs last. What
    it shares with the other tests (the Debian bases of both platforms, the wheel stage's build environment) is built
    once, by whichever process misses it first, the others waiting (building/build_once.py).
    `reference_started.result()` waits for it: (config, the run, what it left behind, the dry run), as `reference`
    gives it."""
    from tests.helpers import Background
    from tests.release_run import command, invoke

    repo = committed_copy(tmp_path_factory.mktemp("repo"))
    directory = tmp_path_factory.mktemp("reference")
    config = write_config(directory, root=repo)
    assert invoke(repo, config, "services.up").returncode == 0  # so that the dry run can read them
    plan = invoke(repo, config, "release", VERSION, "--dry-run")
    assert plan.returncode == 0, plan.stderr[-3000:]
    started = StartedRelease(
        repo, config, plan, Background.start(command(repo, config, ("release", VERSION)), directory / "release"), figure
    )
    yield started
    started.run.stop()
    LocalServices(load_settings(config).services).down(log=lambda _: None)


class StartedRelease:
    def __init__(self, repo: Path, config: Path, plan, run, figure):
        self.repo, self.config, self.plan, self.run, self._figure = repo, config, plan, run, figure
        self._result = None

    def result(self):
        from tests.release_run import signing_share, state

        if self._result is None:
            result, seconds = self.run.wait()
            assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
            figure = f"release {VERSION} from an empty dist/, index, registry and remote: {seconds:.0f} s"
            self._figure(f"{figure} (beside the other modules' tests)")
            self._figure(signing_share(result.stderr + result.stdout))
            self._result = (self.config, result, state(self.config), self.plan)
        return self._result


def pytest_collection_modifyitems(session, config, items):
    """test_release.py last: it waits for the reference release, which the other modules' tests run beside."""
    items.sort(key=lambda item: item.path.name == "test_release.py")


@pytest.fixture(scope="session", autouse=True)
def reference_beside(request):
    """When test_release.py is selected, its release starts with the session (reference_started)."""
    if any(item.path.name == "test_release.py" for item in request.session.items):
        request.getfixturevalue("reference_started")


@pytest.fixture(scope="session")
def release_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("release")


@pytest.fixture(scope="session")
def settings(release_dir):
    return load_settings(write_config(release_dir))


@pytest.fixture(scope="session")
def services(settings, registry_server):
    local = LocalServices(settings.services)
    local.up(log=lambda _: None)
    yield local
    local.down(log=lambda _: None)


def context_like(ctx: ReleaseContext, tmp_path, **overrides) -> ReleaseContext:
    """Another context on the same services, with some settings (signing identity, issuer, ...) changed."""
    services = ctx.settings.services
    config = write_config(
        tmp_path,
        pypi_port=services.pypi_port,
        sigstore_port=services.sigstore_port,
        registry_port=services.registry_port,
        services_dir=services.dir,
        **overrides,
    )
    return make_context(load_settings(config))


def own_bundle_mismatch(artifact: str = "apache_airflow-2.2.4+astro.1-py3-none-any.whl", bundle_of: str = "") -> str:
    """The gate's message when a bundle does not match the artifact's bytes, as a regex."""
    bundle = f"{bundle_of or artifact}.sigstore.json"
    return (
        rf"^signature check failed for {re.escape(artifact)} with {re.escape(bundle)}: "
        r"Bundle message digest mismatch$"
    )


def make_context(settings, version: str = VERSION, **kwargs) -> ReleaseContext:
    return ReleaseContext.create(version, settings, console=Console(stderr=True, quiet=True), **kwargs)


@pytest.fixture(scope="session")
def built(docker_ready, settings):
    ctx = make_context(settings)
    return ctx, run_stage(ctx, "wheel")


@pytest.fixture(scope="session")
def signed(built, services):
    ctx, _ = built
    return ctx, run_stage(ctx, "sign")


@pytest.fixture(scope="session")
def published(signed):
    ctx, _ = signed
    return ctx, run_stage(ctx, "publish")


@pytest.fixture
def other_index(tmp_path, signed):
    """A second, empty index with its own services, sharing the release's dist/ bytes and signing keys."""
    ctx, _ = signed
    services_dir = tmp_path / "services"
    shutil.copytree(ctx.settings.services.dir / "sigstore" / "state", services_dir / "sigstore" / "state")
    settings = load_settings(write_config(tmp_path, services_dir=services_dir))
    local = LocalServices(settings.services)
    local.up(log=lambda _: None)
    other = make_context(settings)
    shutil.copytree(ctx.dist, other.dist)
    yield other, local
    local.down(log=lambda _: None)


def tiny_image(docker, reference: str, content: str, platform: str = "linux/amd64", padding: int = 0) -> str:
    """A one-file image of `platform` named `reference` (its image id returned): BuildKit builds `FROM scratch` and
    a COPY for any platform without an emulator and without pulling anything, so a linux/arm64 image is a real one
    (its config says arm64). `padding` adds that many random bytes, as a second file."""
    with tempfile.TemporaryDirectory(prefix="ac-tiny-") as tmp:
        context = Path(tmp)
        (context / "content.txt").write_text(f"{content} {time.time_ns()}\n")
        files = ["content.txt"]
        if padding:
            (context / "padding.bin").write_bytes(os.urandom(padding))
            files.append("padding.bin")
        (context / "Dockerfile").write_text("FROM scratch\n" + "".join(f"COPY {name} /\n" for name in files))
        docker("build", "--platform", platform, "--tag", reference, str(context), capture=True)
    image = docker.image_id(reference)
    assert image, reference
    return image


def own_target(config: Path, name: str = "local") -> str:
    """Rename the target `name` of a write_config release.toml (and the default, when it is) to a name of this call's
    own, which it returns: the images a test tags under the target's local references (`ac-release/<target>/...`)
    then never move the names a release of the machine's own `local` or `staging` target uses."""
    own = f"{name}-{uuid.uuid4().hex[:12]}"
    text = config.read_text()
    text = text.replace(f'default_target = "{name}"', f'default_target = "{own}"')
    config.write_text(
        text.replace(f"[targets.{name}]", f"[targets.{own}]").replace(f"[targets.{name}.", f"[targets.{own}.")
    )
    return own


def remove_names(docker, *prefixes: str) -> None:
    """Remove from the engine every image name that starts with one of `prefixes`: `127.0.0.1:<port>/` for what the
    pushes to a test's registry left (registry.push names the image after its remote reference), `ac-release/<target>/`
    for a target's local references."""
    listed = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", capture=True).stdout.decode().split()
    names = [name for name in listed if name.startswith(prefixes) and not name.endswith(":<none>")]
    if names:
        docker("image", "rm", *names, capture=True, check=False)
