"""Smoke tests of one built flavour of a release, against a real PostgreSQL in a private Docker network.

The release's test stage (and, on a laptop, the nox session `smoke(version=..., flavour=...)`) sets AC_SMOKE_VERSION,
AC_SMOKE_FLAVOUR and AC_SMOKE_TARGET (default: the default target); the images are the ones the release manifest of
the active configuration (release.toml, or AC_RELEASE_CONFIG) records for that target, by id.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from ac_release.building.postgres import ensure_postgres
from ac_release.model.config import docker_command, load_settings
from ac_release.model.flavours import AMD64, Flavour, Platform, flavours_of
from ac_release.model.records import ImagesRecord
from ac_release.world.context import ReleaseContext
from tests.integration.conftest import require

pytestmark = pytest.mark.smoke


@dataclass
class Built:
    ctx: ReleaseContext
    flavour_name: str
    image: str
    onbuild: str
    onbuild_ref: str
    flavour: Flavour  # images/matrix.toml's: the Python and the pip the image has
    platform: Platform  # the images' (AC_SMOKE_PLATFORM; an arm64 image runs under emulation on an amd64 machine)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


class DockerCli:
    def __init__(self):
        self.argv = docker_command("auto")
        self.env = {**os.environ, "DOCKER_BUILDKIT": "1"}

    def __call__(self, *args: str, check: bool = True, timeout: float = 600, **kwargs) -> Run:
        result = subprocess.run(
            [*self.argv, *args], capture_output=True, text=True, env=self.env, timeout=timeout, **kwargs
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args[:3])} failed ({result.returncode}): {result.stderr[-2000:]}")
        return Run(result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="session")
def docker() -> DockerCli:
    cli = DockerCli()
    require(cli("info", check=False).returncode == 0, "a running Docker engine")
    return cli


@pytest.fixture(scope="session")
def built(docker) -> Built:
    version, flavour = os.environ.get("AC_SMOKE_VERSION"), os.environ.get("AC_SMOKE_FLAVOUR")
    require(bool(version and flavour), "AC_SMOKE_VERSION and AC_SMOKE_FLAVOUR (run `nox -s smoke`)")
    settings = load_settings()
    target = os.environ.get("AC_SMOKE_TARGET") or None
    ctx = ReleaseContext.create(version, settings, target, console=Console(stderr=True, quiet=True))
    declared = next((f for f in flavours_of(ctx.images_dir, ctx.line.airflow) if f.name == flavour), None)
    assert declared is not None, flavour
    platform = Platform.parse(os.environ.get("AC_SMOKE_PLATFORM") or str(AMD64))
    entry = (ctx.record(ImagesRecord) or ImagesRecord({})).of(flavour, platform)
    require(entry is not None, f"{platform} images of {version} ({flavour}): run `invoke build {version}`")
    for variant, image in entry.variants.items():
        require(
            docker("image", "inspect", image.image, check=False).returncode == 0,
            f"the {variant} image {image.image} of {version} in the Docker engine",
        )
    variants = entry.variants
    base, onbuild = variants["base"].image, variants["onbuild"]
    return Built(ctx, flavour, base, onbuild.image, onbuild.ref, declared, platform)


@pytest.fixture(scope="session")
def network(docker):
    name = f"ac-smoke-{uuid.uuid4().hex[:8]}"
    docker("network", "create", name)
    yield name
    docker("network", "rm", name, check=False)


@contextlib.contextmanager
def detached(docker: DockerCli, network: str, role: str, image: str, *command: str, args: tuple[str, ...] = ()):
    """A container running `command` in the background on the test network, removed afterwards; yields its name."""
    name = f"{network}-{role}"
    docker("run", "--detach", "--name", name, f"--network={network}", *args, image, *command)
    try:
        yield name
    finally:
        docker("rm", "--force", name, check=False)


@pytest.fixture(scope="session")
def postgres_container(docker, built, network):
    """The session's PostgreSQL, ready: (container name, the URL Airflow connects with)."""
    image = ensure_postgres(
        built.ctx.docker, built.ctx.target.base_images, built.ctx.images_dir, built.ctx.cache, log=lambda _: None
    )
    password = secrets.token_urlsafe(16)
    docker.env["POSTGRES_PASSWORD"] = password  # the container takes it from the docker client's environment
    env = ("--env=POSTGRES_PASSWORD", "--env=POSTGRES_DB=airflow", "--network-alias=postgres")
    with detached(docker, network, "postgres", image, args=env) as name:
        deadline = time.monotonic() + 60
        while docker("exec", name, "pg_isready", "-h", "127.0.0.1", "-q", check=False).returncode != 0:
            assert time.monotonic() < deadline, "PostgreSQL did not become ready in 60 s"
            time.sleep(0.5)
        yield name, f"postgresql://postgres:{password}@postgres/airflow"  # no port: the entrypoint defaults it


@pytest.fixture(scope="session")
def postgres(postgres_container) -> str:
    return postgres_container[1]


@pytest.fixture(scope="session")
def sql(docker, postgres_container):
    """One query on Airflow's database, inside its container (local connections need no password): the rows, one
    line each, columns separated by `|`."""
    name, _ = postgres_container

    def query(statement: str) -> list[str]:
        argv = ("psql", "--username=postgres", "--dbname=airflow", "--no-align", "--tuples-only", "--command")
        return docker("exec", name, *argv, statement).stdout.splitlines()

    return query


@pytest.fixture(scope="session")
def airflow_env(docker, postgres) -> dict[str, str]:
    # One Fernet key for every container of the session (each would otherwise write its own airflow.cfg with a key of
    # its own): connection passwords are stored encrypted, and a later container, or a later image, decrypts them.
    fernet_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    env = {
        "AIRFLOW__CORE__FERNET_KEY": fernet_key,
        "AIRFLOW__CORE__SQL_ALCHEMY_CONN": postgres,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__WEBSERVER__WORKERS": "2",
        "ASTRONOMER_WAIT_TIMEOUT": "60",
    }
    docker.env.update(env)  # the values reach each container from the docker client's environment (env_args)
    return env


def env_args(env: dict[str, str]) -> list[str]:
    """`--env=NAME` only: docker takes the value from its own environment, so the key and the database password
    never appear on a command line (`ps` shows every docker command's arguments)."""
    return [f"--env={key}" for key in env]


def airflow_runner(docker: DockerCli, network: str, env: dict[str, str], image: str):
    """Run one airflow command in a fresh container of `image`, on the test network."""

    def run(*command: str, check: bool = True, extra: tuple[str, ...] = ()) -> Run:
        return docker(
            "run", "--rm", f"--network={network}", *env_args(env), *extra, image, "airflow", *command, check=check
        )

    return run


@pytest.fixture(scope="session")
def airflow(docker, built, network, airflow_env):
    return airflow_runner(docker, network, airflow_env, built.image)


@pytest.fixture(scope="session")
def initialised_db(airflow):
    airflow("db", "init")
    return True


SMOKE_DAG = """
import pendulum
from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG("smoke", start_date=pendulum.datetime(2022, 1, 1, tz="UTC"), schedule_interval=None, catchup=False) as dag:
    BashOperator(task_id="hello", bash_command="echo smoke-ok")
"""


def smoke_dags(directory: Path) -> str:
    """A dags folder holding the `smoke` DAG; returns the volume argument that mounts it as $AIRFLOW_HOME/dags."""
    dags = directory / "dags"
    dags.mkdir()
    (dags / "smoke_dag.py").write_text(SMOKE_DAG)
    dags.chmod(0o755)
    return f"--volume={dags}:/usr/local/airflow/dags:ro"


def wait_for(probe, what: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f} s"
        time.sleep(2)


def scheduler(docker: DockerCli, network: str, image: str, env: dict[str, str], dags: str):
    """A scheduler of `image` running in the background with the smoke DAG."""
    return detached(docker, network, "scheduler", image, "airflow", "scheduler", args=(dags, *env_args(env)))


def run_dag(airflow, dags: str, sql) -> str:
    """Trigger the smoke DAG once the running scheduler has stored it, and return the state its new run ends in.
    The waits read the database: an `airflow` command per poll would start a container and import Airflow every
    2 s, on the cores the scheduler it waits for needs."""
    stored = "SELECT count(*) FROM dag JOIN serialized_dag USING (dag_id) WHERE dag_id = 'smoke'"
    wait_for(lambda: sql(stored) == ["1"], "DAG smoke stored by the scheduler")
    assert "smoke" in airflow("dags", "list", "--output", "json", extra=(dags,)).stdout
    airflow("dags", "unpause", "smoke", extra=(dags,))
    (before,) = sql("SELECT count(*) FROM dag_run WHERE dag_id = 'smoke'")
    airflow("dags", "trigger", "smoke", extra=(dags,))
    newest = (  # the newest run's state once it is final, and only once the triggered run exists
        "SELECT state FROM (SELECT state FROM dag_run WHERE dag_id = 'smoke' ORDER BY execution_date DESC LIMIT 1) run"
        " WHERE state IN ('success', 'failed')"
        f" AND (SELECT count(*) FROM dag_run WHERE dag_id = 'smoke') > {int(before)}"
    )
    (state,) = wait_for(lambda: sql(newest), "DAG run smoke finished")
    return state


def last_json(text: str):
    """Airflow 2.2 prints log lines before a command's JSON (`[2026-12-02 12:03:56,993] {providers_manager.py:289}
    WARNING - ...`): the document is the last line that parses as JSON."""
    for line in reversed(text.splitlines()):
        if line.startswith(("[", "{")):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise AssertionError(f"no JSON document in the output: {text[-2000:]}")
