"""Registry reads and pushes against a real Debian docker-registry: multi-arch lists of real linux/amd64 and
linux/arm64 images, the read-back after a push, a bounded skopeo, and the push failpoint firing only once a layer
reached the registry."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from pathlib import Path

import pytest

from ac_release.clients import proc, registry
from ac_release.clients.docker import Docker
from ac_release.core.errors import ReleaseError
from ac_release.model.config import docker_command
from tests.helpers import REPO, throwaway_registry
from tests.integration.conftest import tiny_image

pytestmark = pytest.mark.integration

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory, docker_ready):
    """Debian's docker-registry configured as services/manager.py does: plain HTTP on loopback, no auth."""
    directory = tmp_path_factory.mktemp("registry")
    with throwaway_registry(directory, delete=True) as address:
        yield address, directory / "data"
    # What the pushes left in the engine: registry.push names the image after its remote reference, and an image
    # whose tag moved on keeps that repository's digest.
    docker = docker_command("auto")
    listed = subprocess.run(
        [*docker, "image", "ls", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    pushed = [
        f"{repository}:{tag}" if tag != "<none>" else f"{repository}@{digest}"
        for repository, tag, digest in (line.split(" ") for line in listed)
        if repository.startswith(f"{address}/")
    ]
    if pushed:
        subprocess.run([*docker, "image", "rm", *pushed], capture_output=True)


@pytest.fixture(scope="module")
def docker():
    return Docker(docker_command("auto"))


@pytest.fixture
def make_image(docker):
    """A tiny distinct image of a platform (tiny_image: one file `FROM scratch`, a real linux/arm64 image when asked):
    no base image, no network, no emulator."""
    made = []
    repository = f"ac-release/faults-test-{uuid.uuid4().hex[:12]}"  # this fixture's own: no other run tags it

    def build(content: str, size: int = 0, platform: str = "linux/amd64") -> str:
        made.append(f"{repository}:{content}")
        return tiny_image(docker, made[-1], content, platform, padding=size)

    yield build
    for ref in made:
        docker("rmi", "--force", ref, capture=True, check=False)


def _manifest(host: str, name: str, reference: str) -> bytes:
    request = urllib.request.Request(f"http://{host}/v2/{name}/manifests/{reference}", headers={"Accept": DOCKER_V2})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def _put_list(host: str, name: str, tag: str, media_type: str, entries: list[tuple[bytes, str]]) -> bytes:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                {
                    "mediaType": DOCKER_V2,
                    "digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
                    "size": len(raw),
                    "platform": {"os": "linux", "architecture": arch},
                }
                for raw, arch in entries
            ],
        }
    ).encode()
    request = urllib.request.Request(
        f"http://{host}/v2/{name}/manifests/{tag}", data=body, method="PUT", headers={"Content-Type": media_type}
    )
    urllib.request.urlopen(request, timeout=10).close()
    return body


def _list(host: str, docker, make_image, media_type: str, name: str) -> tuple[str, str, dict[str, str]]:
    """A list (`media_type`) of a real linux/arm64 image and a linux/amd64 one, in that order, under `name:multi`:
    (amd64's image id, arm64's, {platform: image manifest digest}), the single-platform lists `arm-only` and
    `amd-only` beside it."""
    amd64, arm64 = make_image("amd64"), make_image("arm64", platform="linux/arm64")
    registry.push(docker, amd64, f"{host}/{name}", "amd64")
    registry.push(docker, arm64, f"{host}/{name}", "arm64")
    entries = [(_manifest(host, name, "arm64"), "arm64"), (_manifest(host, name, "amd64"), "amd64")]
    _put_list(host, name, "arm-only", media_type, entries[:1])
    _put_list(host, name, "amd-only", media_type, entries[1:])
    body = _put_list(host, name, "multi", media_type, entries)
    digests = {f"linux/{arch}": "sha256:" + hashlib.sha256(raw).hexdigest() for raw, arch in entries}
    return amd64, arm64, digests | {"list": "sha256:" + hashlib.sha256(body).hexdigest()}


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_a_multi_arch_list_reads_as_its_digest_with_each_platforms_image(
    local_registry, docker, make_image, media_type
):
    host, _ = local_registry
    name = f"lists/{'oci' if media_type == OCI_INDEX else 'docker'}"
    amd64, arm64, digests = _list(host, docker, make_image, media_type, name)
    digest = digests.pop("list")
    assert registry.remote_image(f"{host}/{name}", "multi") == registry.RemoteImage(digest=digest, config=amd64)
    assert registry.remote_image(f"{host}/{name}", "multi", "linux/arm64") == registry.RemoteImage(digest, arm64)
    assert registry.remote_platforms(f"{host}/{name}", "multi") == registry.RemotePlatforms(digest, digests)
    # the images themselves, each as its config says: the platform's own tag reads as that platform
    assert registry.remote_platforms(f"{host}/{name}", "arm64") == registry.RemotePlatforms(
        digests["linux/arm64"], {"linux/arm64": digests["linux/arm64"]}
    )


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_a_list_without_the_platform_asked_for_is_refused_in_one_line(local_registry, docker, make_image, media_type):
    host, _ = local_registry
    name = f"lacking/{'oci' if media_type == OCI_INDEX else 'docker'}"
    _list(host, docker, make_image, media_type, name)
    with pytest.raises(ReleaseError) as error:
        registry.remote_image(f"{host}/{name}", "arm-only")
    assert str(error.value) == (
        f"{host}/{name}:arm-only is a multi-arch list without a linux/amd64 image (it holds linux/arm64): "
        f"the release compares linux/amd64 images only"
    )
    with pytest.raises(ReleaseError) as error:
        registry.remote_image(f"{host}/{name}", "amd-only", "linux/arm64")
    assert str(error.value) == (
        f"{host}/{name}:amd-only is a multi-arch list without a linux/arm64 image (it holds linux/amd64): "
        f"the release needs its linux/arm64 image there"
    )


def test_a_tag_that_does_not_resolve_to_the_pushed_image_is_refused(local_registry, docker, make_image):
    host, _ = local_registry
    repository = f"{host}/readback"
    ours, theirs = make_image("ours"), make_image("theirs")
    digest = registry.push(docker, ours, repository, "2.2.4-1")
    registry.check_pushed(repository, "2.2.4-1", digest, ours)  # read back: as pushed
    theirs_digest = registry.push(docker, theirs, repository, "2.2.4-1")  # another writer moves the tag
    with pytest.raises(ReleaseError) as error:
        registry.check_pushed(repository, "2.2.4-1", digest, ours)
    assert str(error.value) == (
        f"after the push {repository}:2.2.4-1 resolves to digest {theirs_digest} (image {theirs}), expected digest "
        f"{digest} (image {ours}): something else writes to this repository; check who, then run the release again"
    )


def test_a_registry_that_never_answers_stops_skopeo_at_its_bound(monkeypatch):
    monkeypatch.setitem(proc.TIMEOUTS, "skopeo", 2)
    spawned: list[subprocess.Popen] = []
    popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        spawned.append(popen(*args, **kwargs))
        return spawned[-1]

    monkeypatch.setattr(proc.subprocess, "Popen", recording_popen)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    held = []
    threading.Thread(target=lambda: held.append(silent.accept()), daemon=True).start()
    host = f"127.0.0.1:{silent.getsockname()[1]}"
    try:
        with pytest.raises(proc.Timeout) as error:
            registry.remote_image(f"{host}/astronomer/ap-airflow", "2.2.4-1")
    finally:
        silent.close()
    assert str(error.value) == (
        "skopeo inspect did not finish within 2 s and was stopped; check the network or the service it talks to, "
        "then run again"
    )
    # Stopped by the bound, not ended by itself: skopeo's exit is the SIGTERM the bound sent it, and nothing of its
    # process group is left running.
    assert [(Path(process.args[0]).name, process.returncode) for process in spawned] == [("skopeo", -signal.SIGTERM)]
    with pytest.raises(ProcessLookupError):
        os.killpg(spawned[0].pid, 0)
    assert proc.live_groups() == set()


def _layers(data: Path, name: str) -> list[str]:
    links = data / "docker" / "registry" / "v2" / "repositories" / name / "_layers" / "sha256"
    return sorted(p.name for p in links.iterdir()) if links.is_dir() else []


def test_the_push_failpoint_fires_only_after_a_layer_reached_the_registry(local_registry, docker, make_image):
    host, data = local_registry
    image = make_image("failpoint", size=8 << 20)
    script = (
        "import sys; from ac_release.clients.docker import Docker; from ac_release.clients.registry import push; "
        "push(Docker(sys.argv[2:]), sys.argv[1], 'HOST/failpoint', '2.2.4-1')"
    ).replace("HOST", host)
    killed = subprocess.run(
        [sys.executable, "-c", script, image, *docker.argv],
        env={**os.environ, "AC_RELEASE_FAULT": "during:push-1"},
        cwd=REPO,
        capture_output=True,
        start_new_session=True,  # the failpoint kills its whole process group
    )
    assert killed.returncode == -9, killed.stderr.decode()
    # Bytes reached the registry before the kill. (The push itself belongs to dockerd, which may finish it, tag
    # included, after the CLI died: a resumed run then finds the tag with the same image and skips it.)
    assert len(_layers(data, "failpoint")) >= 1
