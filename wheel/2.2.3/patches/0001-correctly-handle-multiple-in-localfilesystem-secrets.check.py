"""Check for patch 0001: apache/airflow#21694 (released in Airflow 2.2.5).

LocalFilesystemBackend's .env parser must split each line on the FIRST "="
only, so values that themselves contain "=" are kept whole.

Run with the python of the venv that has the built airflow installed.
Exit 0 and print "ok: ..." when the fix is present, exit 1 and print
"missing: ..." when it is not, exit 2 and print "error: ..." when airflow
cannot be imported at all. Needs no database and no network.
"""

import os
import shutil
import sys
import tempfile

WHAT = "LocalFilesystemBackend .env parsing keeps '=' inside values (apache/airflow#21694)"


def main() -> int:
    home = tempfile.mkdtemp(prefix="airflow-check-0001-")
    try:
        os.environ["AIRFLOW_HOME"] = home
        os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
        os.environ.pop("AIRFLOW_CONFIG", None)

        try:
            from airflow.secrets import local_filesystem
        except Exception as exc:  # pragma: no cover - environment problem, not the fix
            print(f"error: cannot import airflow.secrets.local_filesystem: {exc!r}")
            return 2

        env_file = os.path.join(home, "secrets.env")
        with open(env_file, "w") as f:
            f.write("A=b=c\n")
            f.write("MY_CONN=my-conn-type://my-login:my-pa%2Fssword@my-host:5432/my-schema?param1=val1&param2=val2\n")

        expected = {
            "A": "b=c",
            "MY_CONN": "my-conn-type://my-login:my-pa%2Fssword@my-host:5432/my-schema?param1=val1&param2=val2",
        }
        try:
            got = local_filesystem.load_variables(env_file)
        except Exception as exc:
            print(f"missing: {WHAT}; load_variables raised {type(exc).__name__}: {str(exc).splitlines()[0]}")
            return 1
        if got != expected:
            print(f"missing: {WHAT}; load_variables returned {got!r}, expected {expected!r}")
            return 1

        print(f"ok: {WHAT}: 'A=b=c' -> {{'A': 'b=c'}} and a connection URI with two '=' is kept whole")
        return 0
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
