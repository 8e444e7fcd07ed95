"""What an AC image must be and do, asserted with exact values (seeds 000/003, ac-image-spec.md)."""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
import secrets
import subprocess
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ac_release.building.baseimage import SECURITY_LABEL
from ac_release.building.image_build import SOURCE, created
from ac_release.building.lock import files_path, read_files
from ac_release.clients.git import git
from ac_release.model.line import provider_distribution
from ac_release.model.records import ImagesRecord, WheelRecord
from ac_release.world.context import flavours
from tests.secret_scan import SecretScan, release_secrets
from tests.smoke.conftest import SMOKE_DAG, detached, env_args, last_json, run_dag, scheduler, smoke_dags, wait_for

pytestmark = pytest.mark.smoke


def test_airflow_version_equals_the_labels(docker, built):
    version = built.ctx.version
    out = docker("run", "--rm", built.image, "airflow", "version").stdout
    assert out.strip().splitlines()[-1] == version.wheel_version
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", built.image).stdout)
    # AC's pair: the upstream Airflow version and the AC build. A debootstrap base built without its security suite
    # (the archive did not serve it for the platform) says so, and its images keep saying it.
    base = built.ctx.record(ImagesRecord).of(built.flavour_name, built.platform).base_image
    base_labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", base).stdout) or {}
    unpatched = {k: v for k, v in base_labels.items() if k == SECURITY_LABEL}
    assert {k: v for k, v in labels.items() if k.startswith("io.astronomer.")} == unpatched | {
        "io.astronomer.docker": "true",
        "io.astronomer.docker.distro": "debian",
        "io.astronomer.docker.module": "airflow",
        "io.astronomer.docker.component": "airflow",
        "io.astronomer.docker.uid": "50000",
        "io.astronomer.docker.airflow.version": version.airflow_version,
        "io.astronomer.docker.ac.version": str(version),
        "io.astronomer.docker.airflow.wheel.sha256": built.ctx.manifest.get(WheelRecord).sha256(
            f"apache_airflow-{version.wheel_version}-py3-none-any.whl"
        ),
    }
    assert labels["maintainer"] == "Astronomer <humans@astronomer.io>"
    revision = labels["org.opencontainers.image.revision"]
    (flavour,) = [f for f in flavours(built.ctx) if f.name == built.flavour_name]
    # the base it is built FROM: an official base at its pin, a debootstrap base (never pushed) by its image id here
    base, _, pinned = built.ctx.record(ImagesRecord).of(built.flavour_name, built.platform).base_image.partition("@")
    base_digest = pinned or docker("image", "inspect", "--format", "{{.Id}}", base).stdout.strip()
    assert {k: v for k, v in labels.items() if k.startswith("org.opencontainers.")} == {
        "org.opencontainers.image.version": str(version),
        "org.opencontainers.image.title": f"{built.ctx.product.title} {version.airflow_version} "
        f"({flavour.distro}, Python {flavour.python})",
        "org.opencontainers.image.source": SOURCE,
        "org.opencontainers.image.revision": revision,
        # the line's SOURCE_DATE_EPOCH, not the time of the build
        "org.opencontainers.image.created": created(built.ctx.line.source_date_epoch),
        "org.opencontainers.image.base.name": base,
        "org.opencontainers.image.base.digest": base_digest,
    }
    # built from a commit of this repository's history
    assert re.fullmatch(r"[0-9a-f]{40}", revision)
    git(built.ctx.settings.root, "merge-base", "--is-ancestor", revision, "HEAD")


def test_the_image_is_of_its_platform_and_runs_as_it(docker, built):
    """An arm64 image says linux/arm64 and its processes see an aarch64 kernel (emulated on an amd64 machine)."""
    inspect = docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", built.image).stdout.strip()
    assert inspect == str(built.platform)
    assert docker("run", "--rm", built.image, "uname", "-m").stdout.strip() == built.platform.machine


def test_environment_of_the_image(docker, built):
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", built.image).stdout)
    env = dict(item.split("=", 1) for item in config["Env"])
    assert {
        key: env[key]
        for key in (
            "AIRFLOW_HOME",
            "ASTRONOMER_USER",
            "ASTRONOMER_UID",
            "PIP_NO_CACHE_DIR",
            "PIP_DISABLE_PIP_VERSION_CHECK",
            "PYTHON_MAJOR_MINOR_VERSION",
            "AIRFLOW__WEBSERVER__BASE_URL",
            "AIRFLOW_PIP_VERSION",
            "AC_VERSION",
            "AIRFLOW_VERSION",
            "PYTHONPATH",
        )
    } == {
        "AIRFLOW_HOME": "/usr/local/airflow",
        "ASTRONOMER_USER": "astro",
        "ASTRONOMER_UID": "50000",
        "PIP_NO_CACHE_DIR": "True",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHON_MAJOR_MINOR_VERSION": built.flavour.python,
        "AIRFLOW__WEBSERVER__BASE_URL": "http://localhost:8080",
        "AIRFLOW_PIP_VERSION": built.flavour.pip,
        "AC_VERSION": str(built.ctx.version),
        "AIRFLOW_VERSION": built.ctx.version.wheel_version,
        "PYTHONPATH": "/usr/local/airflow",
    }
    assert "DEBIAN_FRONTEND" not in env
    assert config["User"] == "astro"
    assert config["WorkingDir"] == "/usr/local/airflow"
    assert config["Entrypoint"] == ["/entrypoint"]
    assert config["Cmd"] == ["airflow", "--help"]


@pytest.mark.full
def test_pip_show_and_pip_check_are_clean(docker, built):
    show = docker("run", "--rm", built.image, "pip", "show", "apache-airflow", built.ctx.product.meta_project).stdout
    version = built.ctx.version
    assert re.findall(r"^Version: (.*)$", show, re.MULTILINE) == [version.wheel_version, version.meta_version]
    check = docker("run", "--rm", built.image, "pip", "check")
    assert check.stdout.strip() == "No broken requirements found."
    assert docker("run", "--rm", built.image, "pip", "--version").stdout.startswith(f"pip {built.flavour.pip} ")
    constraints = docker("run", "--rm", built.image, "sh", "-c", 'cat "$PIP_CONSTRAINT"').stdout
    assert constraints == f"apache-airflow=={version.wheel_version}\n"


def test_every_provider_at_its_declared_version(docker, built):
    installed = {
        p["name"].lower(): p["version"]
        for p in json.loads(docker("run", "--rm", built.image, "pip", "list", "--format", "json").stdout)
    }
    declared = {provider_distribution(extra): version for extra, version in built.ctx.line.providers.items()}
    # and the product version's own packages (Runtime's astronomer-providers and openlineage-airflow)
    declared |= {name.lower(): version for name, version in (p.split("==") for p in built.ctx.line.packages)}
    assert {name: installed.get(name) for name in declared} == declared
    # and Airflow's providers manager accepts every one of them (it warns below a provider's minimum version)
    listed = docker("run", "--rm", built.image, "airflow", "providers", "list")
    assert "is not compatible with this version of Airflow" not in listed.stdout + listed.stderr


def test_backported_patches_are_in_the_image(docker, built):
    patches = built.ctx.line.directory / "patches"
    checks = sorted(patches.glob("*.check.py"))
    assert checks
    for check in checks:
        out = docker(
            "run", "--rm", f"--volume={patches}:/patches:ro", built.image, "python", f"/patches/{check.name}"
        ).stdout
        assert out.strip().splitlines()[-1].startswith("ok: "), out


def test_compiled_dependencies_load(docker, built):
    """The build strips extension modules: every compiled dependency must still load and work. mysql-connector-python
    has its C extension only where the platform's file of the lock is a binary wheel (8.0.28: x86_64; arm64 gets the
    pure-Python wheel, as `pip install` there does)."""
    files = read_files(files_path(built.ctx.line.lock_file).read_text())[str(built.platform)]
    connector = files["mysql-connector-python"].filename
    c_extension = ", _mysql_connector" if not connector.endswith("-none-any.whl") else ""
    script = (
        f"import numpy, pandas, pyarrow.parquet, grpc, psycopg2, MySQLdb, mysql.connector{c_extension}, lxml.etree, "
        "yaml, google.protobuf, setproctitle, gevent, pendulum; "
        "from cryptography.hazmat.bindings import _rust; "
        "print(int(numpy.linalg.det(numpy.eye(3))), pandas.DataFrame({'a': [1, 2]}).a.sum(), "
        "psycopg2.extensions.QuotedString('x').getquoted().decode())"
    )
    out = docker("run", "--rm", built.image, "python", "-c", script).stdout
    assert out.strip().splitlines()[-1] == "1 3 'x'"


def test_config_edits(docker, built):
    """Permissions are synced by the entrypoint, plugins load eagerly (2.2.4 has no run_as_user option to edit)."""
    script = "airflow config get-value core lazy_load_plugins; airflow config get-value webserver update_fab_perms"
    out = docker("run", "--rm", built.image, "sh", "-c", script).stdout
    assert out.strip().splitlines()[-2:] == ["False", "False"]


# "100": the UID some platforms start the container as (seed 003): it may run gosu, and drops to astro through it.
@pytest.mark.parametrize("user", ["", "root", "100"])
def test_tini_is_pid_1_and_airflow_runs_as_astro(docker, built, user):
    extra = ["--user", user] if user else []
    name = f"smoke-tini-{user or 'default'}-{secrets.token_hex(6)}"
    docker("run", "--detach", "--name", name, *extra, built.image, "sleep", "300")
    try:
        # PID 1 execs its way to tini (entrypoint -> gosu, when started as root -> tini): wait for the end state
        pid1 = wait_for(
            lambda: (comm := docker("exec", name, "cat", "/proc/1/comm").stdout.strip()) == "tini" and comm,
            "PID 1 exec'd to tini",
            timeout=30,
        )
        assert pid1 == "tini"
        status = docker("exec", name, "sh", "-c", "grep -E '^(Uid|Gid):' /proc/1/status").stdout
        assert re.findall(r"^Uid:\s+(\d+)", status, re.MULTILINE) == ["50000"]
        sleepers = docker(
            "exec",
            name,
            "sh",
            "-c",
            'for p in /proc/[0-9]*; do [ "$(cat $p/comm)" = sleep ] && stat -c %u $p; done; true',
        ).stdout
        assert sleepers.split() == ["50000"]
    finally:
        docker("rm", "--force", name, check=False)


def test_uid_gid_and_gosu_restricted(docker, built):
    out = docker("run", "--rm", built.image, "sh", "-c", "id -u; id -g; id -Gn; stat -c '%U:%G %a' $(command -v gosu)")
    assert out.stdout.split("\n")[:4] == ["50000", "50000", "astro astrogroup", "root:gosuers 4750"]


def test_only_root_and_uid_100_may_run_gosu(docker, built):
    """Seed 003: "Set it up so that _apt/UID 100 can `gosu`, but no other users can" (root can anyway)."""
    members = docker("run", "--rm", built.image, "sh", "-c", "getent group gosuers | cut -d: -f4; id -u _apt")
    assert members.stdout.split() == ["_apt", "100"]
    from_100 = docker("run", "--rm", "--user", "100", "--entrypoint", "gosu", built.image, "astro", "id", "-un")
    assert from_100.stdout == "astro\n"
    for user in ("50000", "1234"):
        refused = docker(
            "run", "--rm", "--user", user, "--entrypoint", "gosu", built.image, "astro", "true", check=False
        )
        assert refused.returncode != 0 and "permission denied" in refused.stderr.lower(), (user, refused)
    # Any other user runs as itself, without gosu.
    assert docker("run", "--rm", "--user", "1234", built.image, "id", "-u").stdout == "1234\n"


def test_no_compiler_no_build_ca_no_caches_no_credentials(docker, built):
    script = (
        "for c in gcc cc g++ make; do command -v $c; done; ls -d /root/.cache /home/astro/.cache"
        " /etc/ac-release /opt/build-tools /build 2>/dev/null;"
        f" ls /usr/include/python{built.flavour.python} 2>/dev/null; true"
    )
    assert docker("run", "--rm", "--user", "root", built.image, "sh", "-c", script).stdout == ""
    image_bundle = docker("run", "--rm", built.image, "cat", "/etc/ssl/certs/ca-certificates.crt").stdout
    local_cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    for ca in local_cas:  # CAs this machine added on top of Debian's store (the TLS-intercepting one among them)
        body = "".join(ca.read_text().split("-----")[2].split())
        assert body not in "".join(image_bundle.split()), f"{ca.name} leaked into the final image"
    # Every secret of the release this session can read (a missing one fails here), also encoded, and any file that
    # holds credentials, in no history and no file of any layer. The test stage passes no secret of the environment
    # on: an index password from the environment is scanned for by tests/integration/test_release.py.
    password = built.ctx.target.index.password
    readable = password.file is not None or bool(password.env and os.environ.get(password.env))
    scan = SecretScan(release_secrets(built.ctx, index_password=readable), docker=docker.argv)
    scan.history([built.image, built.onbuild])
    scan.saved([built.image, built.onbuild])
    assert scan.layers >= 2 and scan.files > 1000  # it read the images
    assert not scan.findings, scan.report()


@pytest.mark.database
@pytest.mark.full  # its eight Airflow commands: 2 1/2 minutes under qemu; the DAG run initialises the database too
def test_db_init_connections_and_variables(airflow, initialised_db):
    airflow("connections", "add", "smoke_http", "--conn-uri", "http://user:s3cret@example.invalid:8080/path")
    got = last_json(airflow("connections", "get", "smoke_http", "--output", "json").stdout)
    assert [(c["conn_id"], c["conn_type"], c["host"], c["port"], c["login"]) for c in got] == [
        ("smoke_http", "http", "example.invalid", "8080", "user")
    ]
    airflow("connections", "delete", "smoke_http")
    assert airflow("connections", "get", "smoke_http", check=False).returncode != 0
    airflow("variables", "set", "smoke_var", "value-1")
    assert airflow("variables", "get", "smoke_var").stdout.strip().splitlines()[-1] == "value-1"
    airflow("variables", "delete", "smoke_var")
    assert airflow("variables", "get", "smoke_var", check=False).returncode != 0


@pytest.mark.database
@pytest.mark.full
def test_webserver_health_and_login_page(docker, built, network, airflow_env, initialised_db):
    with detached(
        docker, network, "webserver", built.image, "airflow", "webserver", args=env_args(airflow_env)
    ) as name:

        def health():
            result = docker("exec", name, "curl", "-sf", "http://127.0.0.1:8080/health", check=False)
            return json.loads(result.stdout) if result.returncode == 0 else None

        assert wait_for(health, "webserver /health")["metadatabase"] == {"status": "healthy"}
        login = docker(
            "exec", name, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:8080/login/"
        )
        assert login.stdout == "200"
        # the product's footer (Runtime: its version on every page, this one included; AC declares none)
        page = docker("exec", name, "curl", "-sf", "http://127.0.0.1:8080/login/").stdout
        footers = re.findall(r'<div class="container ui-footer">([^<]*)</div>', page)
        expected = built.ctx.product.footer(built.ctx.version)
        assert footers == ([html.escape(expected)] if expected else []), footers


@pytest.mark.database
def test_scheduler_runs_a_dag_to_success(docker, built, network, airflow_env, airflow, sql, initialised_db, tmp_path):
    dags = smoke_dags(tmp_path)
    with scheduler(docker, network, built.image, airflow_env, dags):
        assert run_dag(airflow, dags, sql) == "success"


def test_database_wait_times_out_with_its_message(docker, built, network):
    result = docker(
        "run",
        "--rm",
        f"--network={network}",
        "--env=AIRFLOW__CORE__SQL_ALCHEMY_CONN=postgresql://u:hunter2@no-such-db/airflow",
        "--env=ASTRONOMER_WAIT_TIMEOUT=3",
        built.image,
        "airflow",
        "db",
        "check",
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "entrypoint: database at no-such-db:5432 not reachable after 3 s (AIRFLOW__CORE__SQL_ALCHEMY_CONN); "
        "check it or raise ASTRONOMER_WAIT_TIMEOUT"
    )
    assert "hunter2" not in result.stdout + result.stderr


def test_celery_worker_waits_for_the_broker_and_other_commands_do_not(docker, built, network):
    broker = ["--env=AIRFLOW__CELERY__BROKER_URL=redis://:pw@no-such-broker/0", "--env=ASTRONOMER_WAIT_TIMEOUT=2"]
    worker = docker(
        "run", "--rm", f"--network={network}", *broker, built.image, "airflow", "celery", "worker", check=False
    )
    assert worker.returncode == 1
    assert worker.stderr.strip().splitlines()[-1] == (
        "entrypoint: broker at no-such-broker:6379 not reachable after 2 s (AIRFLOW__CELERY__BROKER_URL); "
        "check it or raise ASTRONOMER_WAIT_TIMEOUT"
    )
    version = docker("run", "--rm", f"--network={network}", *broker, built.image, "airflow", "version")
    assert version.stdout.strip().splitlines()[-1] == built.ctx.version.wheel_version


def test_executor_shortcut_sets_the_executor_unless_it_is_set(docker, built):
    echo = ["sh", "-c", "echo $AIRFLOW__CORE__EXECUTOR"]
    assert docker("run", "--rm", "--env=EXECUTOR=Local", built.image, *echo).stdout.strip() == "LocalExecutor"
    explicit = ["--env=EXECUTOR=Local", "--env=AIRFLOW__CORE__EXECUTOR=CeleryExecutor"]
    assert docker("run", "--rm", *explicit, built.image, *echo).stdout.strip() == "CeleryExecutor"


def test_clean_airflow_logs_deletes_only_old_log_files(docker, built):
    script = (
        "mkdir -p logs/dag/task && cd logs/dag/task"
        " && touch -d '20 days ago' old.log old.txt && touch -d '10 days ago' recent.log && touch today.log"
        " && touch -d '4 days ago' short.log && cd \"$AIRFLOW_HOME\""
        " && clean-airflow-logs --once"
        " && ASTRONOMER__AIRFLOW__WORKER_LOG_RETENTION_DAYS=3 clean-airflow-logs --once"
        " && ls logs/dag/task"
    )
    out = docker("run", "--rm", built.image, "sh", "-c", script).stdout.strip().splitlines()
    assert out == [
        "clean-airflow-logs: deleted 1 log file(s) older than 15 day(s)",
        "clean-airflow-logs: deleted 2 log file(s) older than 3 day(s)",
        "old.txt",
        "today.log",
    ]


@pytest.fixture
def onbuild_base(docker, built):
    """The tested onbuild image by id, under a name of this test's own, removed afterwards: the release's reference
    is only a name, which another checkout on the same engine may move."""
    base = f"ac-release/smoke-onbuild-base:{uuid.uuid4().hex[:12]}"
    docker("tag", built.onbuild, base)
    yield base
    docker("image", "rm", base, check=False)


def _onbuild_project(tmp_path: Path, base: str, requirements: str) -> Path:
    project = tmp_path / "project"
    (project / "dags").mkdir(parents=True)
    (project / "Dockerfile").write_text(f"FROM {base}\n")
    # A new comment each time: the steps that mount the CA bundle run, never come from the cache.
    (project / "packages.txt").write_bytes(f"# system packages, build {uuid.uuid4().hex}\r\njq\r\n".encode())
    (project / "requirements.txt").write_text(requirements)
    (project / "dags" / "smoke_dag.py").write_text(SMOKE_DAG)
    return project


def _planted_ca_bundle(tmp_path: Path, built) -> tuple[Path, str]:
    """The build's CA bundle plus a CA made for this test: returns the scratch bundle and a line of the planted
    certificate that nothing else contains."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ac-release smoke planted CA {uuid.uuid4().hex}")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    given = built.ctx.settings.extra_ca_bundle
    bundle = tmp_path / "build-ca.crt"
    bundle.write_text((given.read_text() if given and given.is_file() else "") + pem)
    return bundle, pem.splitlines()[-3]  # a whole line of its signature: this certificate's own


def _build_project(docker, built, project: Path, tag: str, bundle: Path):
    secret = ["--secret", f"id=build-ca,src={bundle}"]
    platform = ["--platform", str(built.platform)]
    return docker(
        "build", "--progress=plain", *platform, "--tag", tag, *secret, str(project), check=False, timeout=1800
    )


def _files_holding(docker, image: str, bundle: Path, line: str) -> list[str]:
    """Every file of a container of `image` holding `line`, with `bundle` mounted at /mnt/given-ca.crt (so the
    search shows that it finds the line where it is)."""
    search = ["grep", "-rlF", "--devices=skip", "--exclude-dir=proc", "--exclude-dir=sys", "--", line, "/"]
    mount = f"--volume={bundle}:/mnt/given-ca.crt:ro"
    return docker("run", "--rm", "--user", "root", mount, image, *search, check=False, timeout=900).stdout.split()


@pytest.mark.full
def test_onbuild_project_with_a_provider_and_crlf_packages_builds(docker, built, tmp_path, onbuild_base):
    project = _onbuild_project(tmp_path, onbuild_base, "apache-airflow-providers-openfaas==2.0.1\n")
    tag = f"ac-release/smoke-onbuild:{secrets.token_hex(6)}"
    bundle, planted = _planted_ca_bundle(tmp_path, built)
    result = _build_project(docker, built, project, tag, bundle)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    try:
        # The CA bundle given to the build (a CA planted in it) is in no file of the project's image.
        assert _files_holding(docker, tag, bundle, planted) == ["/mnt/given-ca.crt"]
        out = (
            docker(
                "run",
                "--rm",
                tag,
                "sh",
                "-c",
                "jq --version; pip show apache-airflow-providers-openfaas | grep ^Version; "
                "stat -c %U dags/smoke_dag.py; airflow version",
            )
            .stdout.strip()
            .splitlines()
        )
        assert out[0].startswith("jq-1.6")
        assert out[1:] == ["Version: 2.0.1", "astro", built.ctx.version.wheel_version]
    finally:
        docker("image", "rm", "--force", tag, check=False)


def test_onbuild_project_under_the_classic_builder_stops_with_one_line_naming_the_fix(docker, tmp_path, onbuild_base):
    """The triggers mount the build-ca secret, which needs BuildKit: Docker's classic builder (`docker build` on Linux
    before Docker 23) is stopped by the first trigger with one line naming the fix (second audit, item 17)."""
    project = _onbuild_project(tmp_path, onbuild_base, "")
    tag = f"ac-release/smoke-onbuild-classic:{secrets.token_hex(6)}"
    env = {**docker.env, "DOCKER_BUILDKIT": "0"}
    argv = [*docker.argv, "build", "--tag", tag, str(project)]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    docker("image", "rm", "--force", tag, check=False)
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # the classic builder colours stderr
    assert result.returncode != 0, output[-3000:]
    assert [line for line in output.splitlines() if line.startswith("ERROR:")] == [
        "ERROR: this onbuild image needs BuildKit: build with DOCKER_BUILDKIT=1 docker build (or docker buildx build),"
        " not Docker's classic builder"
    ], output[-3000:]


@pytest.mark.full
def test_onbuild_project_requiring_apache_airflow_fails_with_the_message(docker, built, tmp_path, onbuild_base):
    project = _onbuild_project(
        tmp_path, onbuild_base, "apache-airflow-providers-openfaas==2.0.1\napache-airflow==2.3.0\n"
    )
    bundle, _ = _planted_ca_bundle(tmp_path, built)
    result = _build_project(docker, built, project, f"ac-release/smoke-onbuild-refused:{secrets.token_hex(6)}", bundle)
    assert result.returncode != 0
    version = built.ctx.version
    assert (
        "ERROR: requirements.txt line 2 installs apache-airflow ('apache-airflow==2.3.0'): this image provides "
        f"apache-airflow=={version.wheel_version} (AC {version}); to change Airflow, change the base image tag instead"
    ) in result.stdout + result.stderr
