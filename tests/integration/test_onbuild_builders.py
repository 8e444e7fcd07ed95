"""A project FROM an onbuild image, as `astro dev init` lays it out, built the two ways `docker build` builds
(second audit, item 17). BuildKit builds it. Docker's classic builder (the default of `docker build` on Linux before
Docker 23, and of Debian's docker.io 20.10) cannot mount the build-ca secret the triggers use: its build stops at the
first trigger with one line naming the fix, not with Docker's "the --mount option requires BuildKit".

The generated onbuild Dockerfile is built FROM the small image of tests/integration/test_image_scripts.py (the
image's scripts, user astro, its variables and a fake `airflow`), so that its triggers run in seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid

import pytest

from ac_release.clients.docker import Docker
from ac_release.model.flavours import ONBUILD, flavours_of
from tests.helpers import REPO
from tests.integration import test_image_scripts as scripts

pytestmark = pytest.mark.integration

# The fixtures of the scripts' test image, shared.
docker_argv = scripts.docker_argv
image = scripts.image


@pytest.fixture(scope="module")
def onbuild_image(docker_argv, image, tmp_path_factory):
    (flavour,) = flavours_of(REPO / "images", "2.2.4")
    context = tmp_path_factory.mktemp("onbuild-image")
    shutil.copy(flavour.dockerfile(REPO / "images", ONBUILD), context / "Dockerfile")
    tag = f"ac-release/test-onbuild-builders:{uuid.uuid4().hex[:12]}"
    Docker(docker_argv).build(context, tag, build_args={"BASE_IMAGE": image}, log=context / "build.log")
    yield tag
    subprocess.run([*docker_argv, "image", "rm", tag], capture_output=True)


def _project(directory, base: str):
    """What `astro dev init` lays out: a Dockerfile FROM the image, empty packages.txt and requirements.txt, dags/."""
    (directory / "dags").mkdir(parents=True)
    (directory / "dags" / "example_dag.py").write_text("# a DAG\n")
    (directory / "Dockerfile").write_text(f"FROM {base}\n")
    (directory / "packages.txt").write_text("")
    (directory / "requirements.txt").write_text("# Astro Runtime includes the following pre-installed providers\n")
    return directory


def _build(docker: list[str], project, tag: str, buildkit: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_BUILDKIT": "1" if buildkit else "0"}
    argv = [*docker, "build", "--tag", tag, str(project)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)


def test_a_project_from_the_onbuild_image_builds_with_buildkit(docker_argv, onbuild_image, tmp_path):
    project = _project(tmp_path / "project", onbuild_image)
    tag = f"ac-release/test-onbuild-project:{uuid.uuid4().hex[:12]}"
    build = _build(docker_argv, project, tag, buildkit=True)
    try:
        assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
        script = "airflow version; stat -c %U dags/example_dag.py; id -un"
        run = subprocess.run([*docker_argv, "run", "--rm", tag, "sh", "-c", script], capture_output=True, text=True)
        assert (run.returncode, run.stdout.split()) == (0, ["2.2.4+astro.1", "astro", "astro"]), run.stderr
    finally:
        subprocess.run([*docker_argv, "image", "rm", "--force", tag], capture_output=True)


def test_the_classic_builder_stops_at_the_first_trigger_with_one_line_naming_the_fix(
    docker_argv, onbuild_image, tmp_path
):
    project = _project(tmp_path / "project", onbuild_image)
    tag = f"ac-release/test-onbuild-classic:{uuid.uuid4().hex[:12]}"
    build = _build(docker_argv, project, tag, buildkit=False)
    subprocess.run([*docker_argv, "image", "rm", "--force", tag], capture_output=True)
    output = re.sub(r"\x1b\[[0-9;]*m", "", build.stdout + build.stderr)  # the classic builder colours stderr
    assert build.returncode != 0, output[-2000:]
    fix = (
        "ERROR: this onbuild image needs BuildKit: build with DOCKER_BUILDKIT=1 docker build (or docker buildx build),"
        " not Docker's classic builder"
    )
    assert [line for line in output.splitlines() if line.startswith("ERROR:")] == [fix], output[-2000:]
    assert "--mount" not in output, output[-2000:]
