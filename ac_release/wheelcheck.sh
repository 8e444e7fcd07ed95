#!/bin/sh
# Runs inside the build environment: install each built wheel into a fresh venv of the line's Python and
# report what it says. Prints `airflow-version <venv> <value>` and `patch-check <venv> <name> <status> <line>`.
# Usage: wheelcheck.sh PYTHON_VERSION DIST_DIR AIRFLOW_WHEEL META_REQUIREMENT
#
# DIST_DIR and the venvs live in this run's own work directory on the same mount as uv's cache: uv hardlinks
# instead of copying, and since the wheels' path is new on every run, uv can never serve an earlier build of the
# same name and version from its cache.
set -eu
python="python$1"; dist="$2"; airflow_wheel="$3"; meta="$4"
root="$(dirname "$dist")/venvs"
export UV_LINK_MODE=hardlink

install() {
    venv="$1"; shift
    uv venv --quiet --python "$python" "$venv"
    # From the cache alone when it holds every pinned dependency (a warm run), else from the index.
    uv pip install --quiet --offline --python "$venv/bin/python" --constraint /line/constraints.txt "$@" 2>/dev/null \
        || uv pip install --quiet --python "$venv/bin/python" --constraint /line/constraints.txt "$@"
}

check_venv() {
    name="$1"; shift
    # Each venv its own AIRFLOW_HOME: Airflow writes airflow.cfg there on first start, and the venvs run together.
    export AIRFLOW_HOME="$root/$name-home"
    install "$root/$name" "$@"
    printf 'airflow-version %s %s\n' "$name" "$("$root/$name/bin/airflow" version 2>/dev/null | tail -n 1)"
    for check in /line/patches/*.check.py; do
        [ -e "$check" ] || continue
        if out=$("$root/$name/bin/python" "$check" 2>&1); then status=0; else status=$?; fi
        printf 'patch-check %s %s %s %s\n' "$name" "$(basename "$check")" "$status" "$(printf '%s' "$out" | tail -n 1)"
    done
}

mkdir -p "$root"
# The two venvs are independent: check them side by side.
check_venv wheel "$dist/$airflow_wheel" > "$root/wheel.out" 2> "$root/wheel.err" &
wheel_pid=$!
check_venv meta --find-links "$dist" "$meta" > "$root/meta.out" 2> "$root/meta.err" &
meta_pid=$!
status=0
wait "$wheel_pid" || status=$?
wait "$meta_pid" || status=$?
cat "$root/wheel.out" "$root/meta.out"
cat "$root/wheel.err" "$root/meta.err" >&2
exit "$status"
