"""The scripts of images/include (entrypoint, clean-airflow-logs, install-packages, install-requirements), run in a
small image of their own: the pipeline's Debian bullseye with tini, gosu, netcat-openbsd, user astro, and a fake
`airflow` that records its calls. It proves their behaviour in seconds, without building Airflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from ac_release.building.baseimage import ensure_debian_base
from ac_release.clients.docker import Docker
from ac_release.model.config import docker_command
from tests.helpers import REPO
from tests.integration.conftest import require

pytestmark = pytest.mark.integration

INCLUDE = REPO / "images" / "include"
SCRIPTS = ("entrypoint", "clean-airflow-logs", "install-packages", "install-requirements")
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
HINT = "check it or raise ASTRONOMER_WAIT_TIMEOUT"

# Records every call as "UID ARGS" in /tmp/airflow-calls; `show-calls` prints the record, `env` the environment,
# `version` the version; the webserver keeps running like the real one.
FAKE_AIRFLOW = """#!/bin/sh
echo "$(id -u) $*" >> /tmp/airflow-calls
case "${1:-}" in
    show-calls) cat /tmp/airflow-calls ;;
    env) env ;;
    version) echo "$AIRFLOW_VERSION" ;;
    webserver) exec sleep 300 ;;
esac
"""

DOCKERFILE = """FROM {base}
RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini gosu netcat-openbsd \\
    && apt-get clean && rm -rf /var/lib/apt/lists/* \\
    && useradd --uid 50000 --create-home astro \\
    && groupadd --gid 101 astrogroup \\
    && usermod --append --groups astrogroup astro \\
    && groupadd gosuers && chgrp gosuers /usr/sbin/gosu && chmod u+s,g+rx,o-rwx /usr/sbin/gosu \\
    && usermod --append --groups gosuers "$(id --name --user 100)" \\
    && python3 -m venv /opt/venv \\
    && install --directory --owner=astro /usr/local/airflow /usr/local/airflow/logs
COPY entrypoint /entrypoint
COPY clean-airflow-logs install-packages install-requirements airflow /usr/local/bin/
ENV AIRFLOW_HOME=/usr/local/airflow ASTRONOMER_USER=astro ASTRONOMER_UID=50000 \\
    AIRFLOW_VERSION=2.2.4+astro.1 AC_VERSION=2.2.4-1 PATH=/opt/venv/bin:$PATH
USER astro
WORKDIR /usr/local/airflow
ENTRYPOINT ["/entrypoint"]
CMD ["airflow", "--help"]
"""


@pytest.fixture(scope="session")
def docker_argv() -> list[str]:
    argv = docker_command("auto") if shutil.which("docker") or os.path.exists("/usr/bin/docker") else None
    require(argv is not None and subprocess.run([*argv, "info"], capture_output=True).returncode == 0, "Docker")
    return argv


@pytest.fixture(scope="session")
def image(docker_argv, tmp_path_factory) -> str:
    """The test image of the scripts as they are now, under a name of this session's own, removed at its end (the
    build cache makes an unchanged one quick: only a changed script is built again)."""
    docker = Docker(docker_argv)
    dockerfile = DOCKERFILE.format(base=ensure_debian_base(docker, "bullseye", log=lambda _: None))
    tag = f"ac-release/test-image-scripts:{uuid.uuid4().hex[:12]}"
    context = tmp_path_factory.mktemp("image-scripts")
    for name in SCRIPTS:
        shutil.copy(INCLUDE / name, context / name)
    (context / "airflow").write_text(FAKE_AIRFLOW)
    (context / "airflow").chmod(0o755)
    (context / "Dockerfile").write_text(dockerfile)
    docker.build(context, tag, log=context / "build.log")
    yield tag
    docker("image", "rm", tag, capture=True, check=False)


@pytest.fixture
def run(docker_argv, image):
    """`docker run --rm` of the test image: run(*args, env=..., user=..., entrypoint=..., options=...)."""

    def run(*args, env=None, user=None, entrypoint=None, options=(), timeout=120) -> subprocess.CompletedProcess:
        argv = [*docker_argv, "run", "--rm", *options]
        argv += [f"--env={key}={value}" for key, value in (env or {}).items()]
        argv += ["--user", user] if user else []
        argv += ["--entrypoint", entrypoint] if entrypoint else []
        return subprocess.run([*argv, image, *args], capture_output=True, text=True, timeout=timeout)

    return run


@contextmanager
def started(docker_argv, image, *args, user=None, options=()):
    """A detached container of the test image, removed afterwards; yields exec(*cmd) -> its stdout."""
    name = f"test-image-scripts-{uuid.uuid4().hex[:12]}"
    user_args = ["--user", user] if user else []
    argv = [*docker_argv, "run", "--detach", "--name", name, *user_args, *options, image, *args]
    subprocess.run(argv, check=True, capture_output=True)

    def exec_(*cmd) -> str:
        return subprocess.run([*docker_argv, "exec", name, *cmd], capture_output=True, text=True).stdout

    try:
        yield exec_
    finally:
        subprocess.run([*docker_argv, "rm", "--force", name], capture_output=True)


def until(check, what: str, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what} not within {seconds} s"
        time.sleep(0.2)
    return result


def uids_of(exec_, comm: str) -> list[str]:
    script = f'for p in /proc/[0-9]*; do [ "$(cat $p/comm)" = {comm} ] && stat -c %u $p; done; true'
    return exec_("sh", "-c", script).split()


# ---------------------------------------------------------------- entrypoint


# UID 100 (_apt, in gosuers as the image template puts it, seed 003) drops to astro like root; other users run as such.
@pytest.mark.parametrize(("user", "uid"), [("0", "50000"), ("50000", "50000"), ("100", "50000"), ("1234", "1234")])
def test_tini_is_pid_1_and_the_command_runs_as_astro_or_the_given_uid(docker_argv, image, user, uid):
    with started(docker_argv, image, "sleep", "300", user=user) as exec_:
        # PID 1 execs entrypoint -> gosu (as root) -> tini: read it once the chain has settled, not in between (a
        # loaded machine showed `gosu`); it must end as tini, whatever the user
        until(lambda: exec_("cat", "/proc/1/comm") in ("tini\n", "sleep\n"), "the entrypoint's exec chain")
        assert exec_("cat", "/proc/1/comm") == "tini\n"
        assert exec_("stat", "-c", "%u", "/proc/1") == f"{uid}\n"
        assert until(lambda: uids_of(exec_, "sleep"), "sleep running") == [uid]


def test_webserver_syncs_permissions_first(docker_argv, image):
    with started(docker_argv, image, "airflow", "webserver", user="0") as exec_:
        calls = until(lambda: "webserver" in (record := exec_("cat", "/tmp/airflow-calls")) and record, "webserver")
    assert calls.splitlines() == ["50000 sync-perm", "50000 webserver"]


def test_database_wait_times_out_with_one_line_and_no_password(run):
    url = "postgresql+psycopg2://airflow:hunter2@127.0.0.1:5999/airflow?sslmode=disable"
    begin = time.monotonic()
    result = run("airflow", "version", env={"AIRFLOW__CORE__SQL_ALCHEMY_CONN": url, "ASTRONOMER_WAIT_TIMEOUT": "2"})
    assert time.monotonic() - begin >= 2
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"entrypoint: database at 127.0.0.1:5999 not reachable after 2 s (AIRFLOW__CORE__SQL_ALCHEMY_CONN); {HINT}\n"
    )


def test_database_url_without_port_waits_on_5432(docker_argv, image, run):
    env = {"AIRFLOW__CORE__SQL_ALCHEMY_CONN": "postgresql://u:secret@127.0.0.1/airflow", "ASTRONOMER_WAIT_TIMEOUT": "2"}
    closed = run("airflow", "version", env=env)
    assert (closed.returncode, closed.stdout) == (1, "")
    assert closed.stderr == (
        f"entrypoint: database at 127.0.0.1:5432 not reachable after 2 s (AIRFLOW__CORE__SQL_ALCHEMY_CONN); {HINT}\n"
    )
    # The same URL once something listens on 5432, in a container whose network the entrypoint's container shares.
    listen = "import socket, time; server = socket.create_server(('127.0.0.1', 5432)); time.sleep(300)"
    with started(docker_argv, image, "-c", listen, options=["--entrypoint=python3"]) as exec_:
        until(lambda: exec_("sh", "-c", "nc -z 127.0.0.1 5432 && echo up"), "the listener on 5432")
        shared = [f"--network=container:{exec_('hostname').strip()}"]
        result = run("airflow", "version", env={**env, "ASTRONOMER_WAIT_TIMEOUT": "10"}, options=shared)
    assert (result.returncode, result.stdout, result.stderr) == (0, "2.2.4+astro.1\n", "")
    assert "secret" not in closed.stderr + result.stdout + result.stderr


def test_no_wait_at_all_with_a_zero_timeout(run):
    env = {"AIRFLOW__CORE__SQL_ALCHEMY_CONN": "mysql://u:p@127.0.0.1/airflow", "ASTRONOMER_WAIT_TIMEOUT": "0"}
    result = run("airflow", "version", env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "2.2.4+astro.1\n", "")


BROKER = {"AIRFLOW__CELERY__BROKER_URL": "redis://:hunter2@127.0.0.1/0", "ASTRONOMER_WAIT_TIMEOUT": "2"}


@pytest.mark.parametrize("command", [["scheduler"], ["celery", "worker"], ["celery", "flower", "--port=5555"]])
def test_scheduler_and_celery_commands_wait_for_the_broker(run, command):
    result = run("airflow", *command, env=BROKER)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"entrypoint: broker at 127.0.0.1:6379 not reachable after 2 s (AIRFLOW__CELERY__BROKER_URL); {HINT}\n"
    )


@pytest.mark.parametrize("command", [["version"], ["celery", "stop"], ["show-calls"]])
def test_other_commands_do_not_wait_for_the_broker(run, command):
    result = run("airflow", *command, env=BROKER)
    assert (result.returncode, result.stderr) == (0, "")
    expected = {"version": "2.2.4+astro.1\n", "show-calls": "50000 show-calls\n"}.get(command[0], "")
    assert result.stdout == expected


@pytest.mark.parametrize(
    ("env", "executor"),
    [
        ({"EXECUTOR": "Local"}, "LocalExecutor"),
        ({"EXECUTOR": "CeleryExecutor"}, "CeleryExecutor"),
        ({"EXECUTOR": "Local", "AIRFLOW__CORE__EXECUTOR": "KubernetesExecutor"}, "KubernetesExecutor"),
    ],
)
def test_executor_shortcut(run, env, executor):
    lines = run("airflow", "env", env=env).stdout.splitlines()
    assert [line for line in lines if line.startswith("AIRFLOW__CORE__EXECUTOR=")] == [
        f"AIRFLOW__CORE__EXECUTOR={executor}"
    ]


# ---------------------------------------------------------------- clean-airflow-logs


def test_clean_airflow_logs_deletes_only_old_log_files(run):
    script = (
        "cd logs && mkdir -p dag/task empty && touch -d '20 days ago' dag/task/old.log dag/task/old.txt"
        " && touch -d '10 days ago' dag/task/recent.log && touch dag/task/today.log"
        " && clean-airflow-logs --once"
        " && ASTRONOMER__AIRFLOW__WORKER_LOG_RETENTION_DAYS=5 clean-airflow-logs --once"
        " && find . | sort"
    )
    result = run("sh", "-c", script)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "clean-airflow-logs: deleted 1 log file(s) older than 15 day(s)",
        "clean-airflow-logs: deleted 1 log file(s) older than 5 day(s)",
        ".",
        "./dag",
        "./dag/task",
        "./dag/task/old.txt",
        "./dag/task/today.log",
        "./empty",
    ]


def test_clean_airflow_logs_loop_stops_at_once_on_sigterm(docker_argv, image):
    with started(docker_argv, image, "clean-airflow-logs") as exec_:
        name = exec_("hostname").strip()
        until(lambda: uids_of(exec_, "sleep"), "the loop's first sleep")
        # docker stop sends SIGTERM, then SIGKILL after its grace period: the loop's own trap ends it with 0, while a
        # script that let SIGTERM wait for its `sleep 900` would be killed (137, the SIGKILL's).
        subprocess.run([*docker_argv, "stop", "--time", "10", name], check=True, capture_output=True)
        inspect = [*docker_argv, "inspect", "--format", "{{.State.ExitCode}}", name]
        assert subprocess.run(inspect, capture_output=True, text=True).stdout == "0\n"
        logs = subprocess.run([*docker_argv, "logs", name], capture_output=True, text=True).stdout
    assert logs == "clean-airflow-logs: deleted 0 log file(s) older than 15 day(s)\n"


# ---------------------------------------------------------------- install-packages (onbuild, as root)


def project(tmp_path: Path, name: str, content: bytes) -> list[str]:
    """Docker options that mount a project directory holding one file at /project/NAME."""
    directory = tmp_path / "project"
    directory.mkdir(exist_ok=True)
    (directory / name).write_bytes(content)
    return [f"--volume={directory}:/project:ro"]


def test_install_packages_with_crlf_installs_and_cleans_apt_lists(run, tmp_path):
    options = project(tmp_path, "packages.txt", b"# tools we need\r\n\r\n  jq  \r\n")
    script = "install-packages /project/packages.txt >/dev/null && jq --version && ls -A /var/lib/apt/lists | wc -l"
    result = run("-c", script, user="0", entrypoint="bash", options=options, timeout=600)
    assert (result.returncode, result.stdout) == (0, "jq-1.6\n0\n"), result.stderr


def test_install_packages_without_a_package_does_nothing(run, tmp_path):
    options = project(tmp_path, "packages.txt", b"# nothing yet\r\n\r\n   \r\n")
    script = "install-packages /project/packages.txt && ls -A /var/lib/apt/lists"
    result = run("-c", script, user="0", entrypoint="bash", options=options)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# ---------------------------------------------------------------- install-requirements (onbuild)

PYPI = {"PIP_CERT": HOST_CA}
CA = [f"--volume={HOST_CA}:{HOST_CA}:ro"]
SIX = "pip show six 2>/dev/null | grep ^Version: || echo 'six: not installed'"


@pytest.mark.parametrize(
    "line",
    [
        "apache-airflow",
        "Apache_Airflow[postgres]>=2",
        "apache.airflow==2.3.0",
        'APACHE-AIRFLOW == 2.3.0 ; python_version >= "3.8"',
        "apache-airflow @ https://example.invalid/apache_airflow-2.3.0-py3-none-any.whl",
    ],
)
def test_install_requirements_refuses_apache_airflow_before_installing_anything(run, tmp_path, line):
    options = [*CA, *project(tmp_path, "requirements.txt", f"# ours\r\nsix==1.16.0\r\n  {line}  # pin\r\n".encode())]
    script = f"install-requirements /project/requirements.txt; echo exit $?; {SIX}"
    result = run("-c", script, user="0", entrypoint="bash", env=PYPI, options=options)
    assert result.stdout == "exit 1\nsix: not installed\n"
    assert result.stderr == (
        f"ERROR: requirements.txt line 3 installs apache-airflow ('{line}'): this image provides "
        "apache-airflow==2.2.4+astro.1 (AC 2.2.4-1); to change Airflow, change the base image tag instead\n"
    )


def test_install_requirements_installs_with_crlf(run, tmp_path):
    options = [*CA, *project(tmp_path, "requirements.txt", b"# ours\r\n\r\n  six==1.16.0  \r\n")]
    script = f"install-requirements /project/requirements.txt >/dev/null && {SIX}"
    result = run("-c", script, user="0", entrypoint="bash", env=PYPI, options=options, timeout=300)
    assert (result.returncode, result.stdout) == (0, "Version: 1.16.0\n"), result.stderr


def test_install_requirements_does_not_refuse_a_provider(run, tmp_path):
    # No index: pip is reached and fails to find the provider, which proves the line passed the check.
    options = project(tmp_path, "requirements.txt", b"apache-airflow-providers-http==2.0.3\r\n")
    offline = {"PIP_NO_INDEX": "1"}
    result = run("/project/requirements.txt", user="0", entrypoint="install-requirements", env=offline, options=options)
    assert result.returncode == 1
    assert "ERROR: requirements.txt" not in result.stderr
    assert "No matching distribution found for apache-airflow-providers-http==2.0.3" in result.stderr


def test_install_requirements_without_a_requirement_does_nothing(run, tmp_path):
    options = project(tmp_path, "requirements.txt", b"# later\r\n\r\n")
    result = run("/project/requirements.txt", entrypoint="install-requirements", options=options)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
