#!/bin/sh
# Runs inside the build environment: install each built wheel into a fresh venv of the line's Python and
# report what it says. Prints `airflow-version <venv> <value>` and `patch-check <name> <status> <line>` records.
set -eu
python="python$1"; airflow_wheel="$2"; meta="$3"
export AIRFLOW_HOME=/tmp/airflow-home
check_venv() {
    name="$1"
    printf 'airflow-version %s %s\n' "$name" "$("/tmp/$name/bin/airflow" version 2>/dev/null | tail -n 1)"
    for check in /line/patches/*.check.py; do
        [ -e "$check" ] || continue
        if out=$("/tmp/$name/bin/python" "$check" 2>&1); then status=0; else status=$?; fi
        printf 'patch-check %s %s %s %s\n' "$name" "$(basename "$check")" "$status" "$(printf '%s' "$out" | tail -n 1)"
    done
}
# Our own distributions are never taken from uv's cache: an earlier build may have had the same name and version.
fresh="--refresh-package apache-airflow --refresh-package astronomer-certified"
uv venv --quiet --python "$python" /tmp/wheel
uv pip install --quiet $fresh --python /tmp/wheel/bin/python --constraint /line/constraints.txt "/dist/$airflow_wheel"
check_venv wheel
uv venv --quiet --python "$python" /tmp/meta
uv pip install --quiet $fresh --python /tmp/meta/bin/python --constraint /line/constraints.txt --find-links /dist "$meta"
check_venv meta
