"""The test stage runs the smoke tests as parts side by side (ac_release/stages/test.py PARTS): together the parts
select every test of the kind exactly once, and every test that starts the session's PostgreSQL is in the part
that pays for one."""

from __future__ import annotations

import pytest

from ac_release.model.records import Session
from ac_release.stages.test import PARTS, _combined
from tests.helpers import REPO

DATABASE_FIXTURES = {"postgres", "sql", "airflow_env", "airflow", "initialised_db"}


class Collected:
    def __init__(self):
        self.items: dict[str, set[str]] = {}

    def pytest_collection_finish(self, session):
        self.items = {item.nodeid: set(item.fixturenames) for item in session.items}


def collect(expression: str) -> dict[str, set[str]]:
    collected = Collected()
    args = [str(REPO / "tests" / "smoke"), "-m", expression, "--collect-only", "-q", "-p", "no:cacheprovider"]
    assert pytest.main(args, plugins=[collected]) in (0, 5)  # 5: nothing selected
    return collected.items


@pytest.mark.parametrize("kind", sorted(PARTS))
def test_the_parts_of_a_kind_select_each_of_its_tests_once(kind):
    whole = collect(kind)
    parts = [collect(expression) for expression in PARTS[kind].values()]
    assert whole and sorted(nodeid for part in parts for nodeid in part) == sorted(whole)


def test_only_the_database_part_starts_a_database():
    for nodeid, fixtures in collect(PARTS["smoke"]["image"]).items():
        assert not fixtures & DATABASE_FIXTURES, nodeid
    assert all(fixtures & DATABASE_FIXTURES for fixtures in collect(PARTS["smoke"]["database"]).values())


def test_a_kind_passes_only_when_every_part_passed_and_names_the_failed_parts_log():
    ok = Session("passed", 70.0, {"tests": 17, "passed": 17, "failures": 0, "errors": 0, "skipped": 0}, "a.log")
    bad = Session("failed", 60.0, {"tests": 3, "passed": 2, "failures": 1, "errors": 0, "skipped": 0}, "b.log")
    assert _combined([ok, bad], 72.5) == Session(
        "failed", 72.5, {"tests": 20, "passed": 19, "failures": 1, "errors": 0, "skipped": 0}, "b.log"
    )
    both = _combined([ok, ok], 71.0)
    assert (both.result, both.counts["tests"], both.log) == ("passed", 34, "a.log, a.log")
    assert _combined([bad], 9.0) is bad


def test_container_environment_is_passed_by_name_never_by_value_on_a_command_line():
    """The database password and the Fernet key reach the smoke containers from the docker client's environment:
    `--env=NAME=value` put them in every docker command's argv, where `ps` shows them."""
    from tests.smoke.conftest import env_args

    assert env_args(
        {"AIRFLOW__CORE__FERNET_KEY": "k3y", "AIRFLOW__CORE__SQL_ALCHEMY_CONN": "postgresql://p:pw@h/db"}
    ) == [
        "--env=AIRFLOW__CORE__FERNET_KEY",
        "--env=AIRFLOW__CORE__SQL_ALCHEMY_CONN",
    ]
