"""Check for patch 0002-fix-resources-eq-check.patch: apache/airflow#21442 (released in Airflow 2.2.5).

Resource.__eq__ and Resources.__eq__ must answer False for an object of another type instead of raising
AttributeError, so that the DAG serializer (which compares attributes with `value in [{}, []]`) can serialize an
operator that has `resources`.

Run with the python of the venv that has the built airflow installed. Exit 0 and print "ok: ..." when the fix is
present, exit 1 and print "missing: ..." when it is not, exit 2 and print "error: ..." when airflow cannot be
imported at all. Needs no database and no network.
"""

import ast
import os
import shutil
import sys
import tempfile

WHAT = "Resources.__eq__ answers False for other types (apache/airflow#21442)"


def main() -> int:
    home = tempfile.mkdtemp(prefix="airflow-check-0002-")
    try:
        os.environ["AIRFLOW_HOME"] = home
        os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
        os.environ.pop("AIRFLOW_CONFIG", None)
        try:
            from airflow.operators.bash import BashOperator
            from airflow.serialization.serialized_objects import SerializedBaseOperator
            from airflow.utils.operator_resources import CpuResource, Resources
        except Exception as exc:  # pragma: no cover - environment problem, not the fix
            print(f"error: cannot import airflow's operator resources and serializer: {exc!r}")
            return 2

        try:
            answers = {
                "Resources(cpus=2) == {}": Resources(cpus=2) == {},
                "Resources(cpus=2) == None": Resources(cpus=2) == None,  # noqa: E711 - the comparison under test
                "CpuResource(2) == 2": CpuResource(2) == 2,
            }
        except AttributeError as exc:
            print(f"missing: {WHAT}; comparing with another type raised AttributeError: {exc}")
            return 1
        if any(answers.values()) or Resources(cpus=2) != Resources(cpus=2):
            print(f"missing: {WHAT}; got {answers!r} and Resources(cpus=2) != Resources(cpus=2)")
            return 1

        task = BashOperator(task_id="check", bash_command="true", resources={"cpus": 2})
        try:
            serialized = SerializedBaseOperator.serialize_operator(task)
        except AttributeError as exc:
            print(f"missing: {WHAT}; serializing an operator with resources raised AttributeError: {exc}")
            return 1
        # Airflow 2.2 stores an operator's resources as the str() of their dict.
        if ast.literal_eval(str(serialized.get("resources", "{}"))).get("cpus", {}).get("_qty") != 2:
            print(f"missing: {WHAT}; the serialized task holds resources {serialized.get('resources')!r}")
            return 1

        print(f"ok: {WHAT}: comparisons with {{}}, None and 2 are False and a task with resources serializes")
        return 0
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
