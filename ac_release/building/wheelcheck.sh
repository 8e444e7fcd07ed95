#!/bin/sh
# Runs inside the build environment: install each built wheel into a fresh venv of the line's Python and
# report what it says. Prints `airflow-version <venv> <value>` and `patch-check <venv> <name> <status> <line>`.
# Usage: wheelcheck.sh PYTHON_VERSION DIST_DIR AIRFLOW_WHEEL META_REQUIREMENT META_WHEEL
# (the lock is mounted at /lock/constraints.txt, the line's patch checks at /line/patches)
#
# DIST_DIR and the venvs live in this run's own work directory on the same mount as uv's cache: uv hardlinks
# instead of copying, and since the wheels' path is new on every run, uv can never serve an earlier build of the
# same name and version from its cache.
#
# Every file is installed by hash (`--require-hashes`): the dependencies' hashes come from the lock, the two wheels
# of this build are pinned by their own sha256. A file the index serves with other bytes, or a dependency the lock
# does not hold, fails the check.
set -eu
python="python$1"; dist="$2"; airflow_wheel="$3"; meta="$4"; meta_file="$5"
root="$(dirname "$dist")/venvs"
export UV_LINK_MODE=hardlink

# A requirements line for a built wheel: its name, its file, its sha256.
pinned() {
    printf '%s @ file://%s --hash=sha256:%s\n' "$1" "$2" "$(sha256sum "$2" | cut -d ' ' -f 1)"
}

install() {
    venv="$1"; requirements="$2"; shift 2
    uv venv --quiet --python "$python" "$venv"
    set -- --python "$venv/bin/python" --require-hashes --constraint /lock/constraints.txt \
        --requirement "$requirements" "$@"
    # From the cache alone when it holds every pinned dependency (a warm run), else from the index.
    uv pip install --quiet --offline "$@" 2>/dev/null || uv pip install --quiet "$@"
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
pinned apache-airflow "$dist/$airflow_wheel" > "$root/wheel.txt"
# The meta wheel as an index would serve it (found by its requirement), pinned to the sha256 of the one built here.
meta_wheel="$dist/$meta_file"
[ -f "$meta_wheel" ] || { echo "no $meta_file in $dist" >&2; exit 1; }
{ cat "$root/wheel.txt"; printf '%s --hash=sha256:%s\n' "$meta" "$(sha256sum "$meta_wheel" | cut -d ' ' -f 1)"; } \
    > "$root/meta.txt"
# The two venvs are independent: check them side by side.
check_venv wheel "$root/wheel.txt" > "$root/wheel.out" 2> "$root/wheel.err" &
wheel_pid=$!
check_venv meta "$root/meta.txt" --find-links "$dist" > "$root/meta.out" 2> "$root/meta.err" &
meta_pid=$!
status=0
wait "$wheel_pid" || status=$?
wait "$meta_pid" || status=$?
cat "$root/wheel.out" "$root/meta.out"
cat "$root/wheel.err" "$root/meta.err" >&2
exit "$status"
