"""From the earlier release to this one, as a user upgrades: same database, newer image, `airflow db upgrade`.

The newest earlier release on the target's registry (world/released_images.py) initialises a database and runs a DAG;
this release's image upgrades that database and works on it. The nox session `upgrade(version=..., flavour=...)`
runs this module (the smoke session leaves it out) and keeps the local services, and so the registry, up.

In a release, the test stage has already pulled the earlier release with the registry's login and names it in
AC_SMOKE_UPGRADE_FROM: the session has no credentials (a registry requiring them answers it 401), so it takes that
image from the engine. Without the variable (the nox session, the local target's registry without credentials) it
asks the registry and pulls by digest itself.
"""

from __future__ import annotations

import json
import os
import secrets

import pytest

from ac_release.model.products import parse_version
from ac_release.stages.test import UPGRADE_FROM_ENV
from ac_release.world.released_images import PreviousRelease, previous_release
from tests.integration.conftest import require
from tests.smoke.conftest import airflow_runner, last_json, run_dag, scheduler, smoke_dags

pytestmark = pytest.mark.upgrade


@pytest.fixture(scope="module")
def previous(docker, built) -> PreviousRelease:
    """The earlier release, pulled by digest from the registry, as a user of it has it."""
    if given := os.environ.get(UPGRADE_FROM_ENV):
        version, reference = given.split(" ")
        repository, digest = reference.rsplit("@", 1)
        image = docker("image", "inspect", "--format", "{{.Id}}", reference, check=False)
        assert image.returncode == 0, f"{reference} is not in the engine: the test stage pulls it before this session"
        return PreviousRelease(parse_version(version, built.ctx.settings.root), repository, digest)
    found = previous_release(built.ctx)
    require(
        found is not None,
        f"a release before {built.ctx.version} on {built.ctx.target.registries[0]} to upgrade from",
    )
    docker("pull", "--quiet", found.reference)
    return found


@pytest.fixture(scope="module")
def previous_airflow(docker, network, airflow_env, previous):
    return airflow_runner(docker, network, airflow_env, previous.reference)


@pytest.fixture(scope="module")
def dags(tmp_path_factory) -> str:
    return smoke_dags(tmp_path_factory.mktemp("upgrade"))


@pytest.fixture(scope="module")
def used_database(docker, network, airflow_env, previous, previous_airflow, dags, sql) -> None:
    """What a user of the earlier release has: an initialised database, a user, a connection with an encrypted
    password, a variable, a pool, a finished run."""
    previous_airflow("db", "init")
    previous_airflow(
        "users", "create", "--username", "upgrade_user", "--firstname", "Up", "--lastname", "Grade", "--role", "Admin",
        "--email", "upgrade@example.invalid", f"--password={secrets.token_urlsafe(12)}",
    )  # fmt: skip
    previous_airflow("connections", "add", "upgrade_http", "--conn-uri", "http://user:pw@example.invalid:8080/up")
    previous_airflow("variables", "set", "upgrade_var", "kept-across-the-upgrade")
    previous_airflow("pools", "set", "upgrade_pool", "3", "kept across the upgrade")
    with scheduler(docker, network, previous.reference, airflow_env, dags):
        assert run_dag(previous_airflow, dags, sql) == "success"


@pytest.fixture(scope="module")
def upgraded(used_database, airflow) -> None:
    airflow("db", "upgrade")


def test_the_starting_point_is_the_earlier_release(docker, built, previous):
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", previous.reference).stdout)
    assert labels["io.astronomer.docker.ac.version"] == str(previous.version)
    ours = built.ctx.version
    if previous.version.product == ours.product:
        assert previous.version.release_key < ours.release_key
    else:  # a product's first release, from the product its users came from (AC 2.2.4-1 -> Runtime 4.2.0)
        assert previous.version.product == built.ctx.product.upgrade_from
        assert previous.version.airflow <= ours.airflow
    out = docker("run", "--rm", previous.reference, "airflow", "version").stdout.strip().splitlines()[-1]
    assert out == previous.version.wheel_version


# The alembic head of each line's Airflow: the one revision of airflow/migrations/versions that no other revises
# (read from the apache-airflow 2.2.4 sdist and 2.3.0 wheel). The database is there once every migration is applied.
MIGRATION_HEADS = {"2.2.4": "587bdf053233", "2.3.0": "b1b348e02d07"}


def test_db_upgrade_leaves_no_migration_pending(upgraded, airflow, built, sql):
    assert sql("SELECT version_num FROM alembic_version") == [MIGRATION_HEADS[str(built.ctx.line.airflow)]]
    # A timeout of 1 s checks once: Airflow 2.3.0's check with 0 s never compares the heads and always fails
    # ("unapplied migrations after 0 seconds ... Head(s) in DB: None"); 2.2.4 checks before it looks at the timeout.
    checked = airflow("db", "check-migrations", "--migration-wait-timeout", "1", check=False)
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert airflow("db", "check", check=False).returncode == 0


def test_connections_and_variables_survive(upgraded, airflow):
    got = last_json(airflow("connections", "get", "upgrade_http", "--output", "json").stdout)
    assert [(c["conn_type"], c["host"], c["port"], c["login"], c["schema"]) for c in got] == [
        ("http", "example.invalid", "8080", "user", "up")
    ]
    assert airflow("variables", "get", "upgrade_var").stdout.strip().splitlines()[-1] == "kept-across-the-upgrade"


def test_the_encrypted_password_a_user_and_a_pool_survive(upgraded, airflow):
    (connection,) = last_json(airflow("connections", "get", "upgrade_http", "--output", "json").stdout)
    # stored encrypted, read back with the same key (the CLI prints every value as a string)
    assert (connection["password"], connection["is_encrypted"]) == ("pw", "True")
    users = last_json(airflow("users", "list", "--output", "json").stdout)
    assert [(u["username"], u["roles"]) for u in users if u["username"] == "upgrade_user"] == [
        ("upgrade_user", ["Admin"])
    ]
    (pool,) = last_json(airflow("pools", "get", "upgrade_pool", "--output", "json").stdout)
    assert (pool["pool"], str(pool["slots"]), pool["description"]) == ("upgrade_pool", "3", "kept across the upgrade")


def test_the_upgraded_database_keeps_the_old_run_and_schedules_a_new_one(
    docker, built, network, airflow_env, airflow, sql, upgraded, dags
):
    with scheduler(docker, network, built.image, airflow_env, dags):
        assert run_dag(airflow, dags, sql) == "success"
    runs = last_json(airflow("dags", "list-runs", "--dag-id", "smoke", "--output", "json", extra=(dags,)).stdout)
    assert [run["state"] for run in runs] == ["success", "success"]
