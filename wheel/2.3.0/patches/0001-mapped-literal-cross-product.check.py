"""Check for patch 0001: apache/airflow#23434 (released in Airflow 2.3.1).

A task mapped over several literal lists must get one task instance per
element of their cross product: MappedOperator.parse_time_mapped_ti_count
multiplies the lengths of the expanded arguments instead of adding them.

Run with the python of the venv that has the built airflow installed.
Exit 0 and print "ok: ..." when the fix is present, exit 1 and print
"missing: ..." when it is not, exit 2 and print "error: ..." when airflow
cannot be imported at all. Needs no database and no network.
"""

import datetime
import os
import shutil
import sys
import tempfile

WHAT = "parse-time count of a task mapped over literals is the cross product (apache/airflow#23434)"


def main() -> int:
    home = tempfile.mkdtemp(prefix="airflow-check-0001-")
    try:
        os.environ["AIRFLOW_HOME"] = home
        os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
        os.environ.pop("AIRFLOW_CONFIG", None)

        try:
            from airflow.decorators import task
            from airflow.models.dag import DAG
            from airflow.operators.bash import BashOperator
        except Exception as exc:  # pragma: no cover - environment problem, not the fix
            print(f"error: cannot import airflow (DAG, @task, BashOperator): {exc!r}")
            return 2

        try:
            with DAG("check_0001", start_date=datetime.datetime(2022, 1, 1), schedule_interval=None):

                @task
                def add(x: int, y: int):
                    return x + y

                # The example of "Mapping over multiple parameters" in the 2.3 docs (apache/airflow#23425).
                decorated = add.expand(x=[2, 4, 8], y=[5, 10]).operator
                classic = BashOperator.partial(task_id="echo").expand(
                    bash_command=["echo $A", "echo $B"],
                    env=[{"A": "1"}, {"A": "2"}, {"A": "3"}],
                )
            got = (decorated.parse_time_mapped_ti_count, classic.parse_time_mapped_ti_count)
        except Exception as exc:
            print(f"missing: {WHAT}; mapping raised {type(exc).__name__}: {str(exc).splitlines()[0]}")
            return 1

        expected = (6, 6)
        if got != expected:
            print(
                f"missing: {WHAT}; add.expand(x=[2, 4, 8], y=[5, 10]) and a BashOperator expanded over "
                f"2 x 3 literals count {got!r} task instances, expected {expected!r}"
            )
            return 1

        print(
            f"ok: {WHAT}: add.expand(x=[2, 4, 8], y=[5, 10]) and a BashOperator expanded over "
            f"2 x 3 literals both count 6 task instances"
        )
        return 0
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
