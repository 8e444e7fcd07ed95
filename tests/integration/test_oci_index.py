"""An OCI image index assembled from platforms' images already pushed by digest (clients/oci_index.py), against a
real Debian docker-registry: read back under its digest, kept when already there, refused in one line for a missing
manifest or one of another platform; skopeo sees the index, `--all` copies move it whole; the per-platform query
(registry.remote_platforms). Also on a TLS registry requiring credentials, as staging's are.

No Docker engine: each image is a tiny config and layer uploaded with the registry API, its manifest put by digest."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ac_release.clients import oci_index, registry
from ac_release.clients.oci_http import Client
from ac_release.core.errors import ReleaseError
from ac_release.model.config import Registry, RegistryAccess, Secret
from ac_release.services.htpasswd import write_htpasswd
from ac_release.services.tls import ensure_server_certificate
from tests.helpers import free_port, throwaway_registry

pytestmark = pytest.mark.integration

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CONFIG = "application/vnd.docker.container.image.v1+json"


@pytest.fixture(scope="module")
def host(tmp_path_factory, registry_server) -> Iterator[str]:
    """Debian's docker-registry, plain HTTP on loopback, as the local target runs it."""
    with throwaway_registry(tmp_path_factory.mktemp("registry"), delete=True) as address:
        yield address


def _layer(content: str) -> tuple[bytes, str]:
    """A gzipped tar of one file (fixed times: the same content gives the same bytes) and its diff id."""
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as archive:
        data = content.encode()
        info = tarfile.TarInfo("content.txt")
        info.size, info.mtime = len(data), 0
        archive.addfile(info, io.BytesIO(data))
    raw = tar.getvalue()
    return gzip.compress(raw, mtime=0), "sha256:" + hashlib.sha256(raw).hexdigest()


def upload_image(repository: str, architecture: str, media_type: str = DOCKER_V2, variant: str | None = None):
    """A one-layer linux/<architecture> image uploaded by digest: (manifest digest, config digest, manifest size)."""
    client = Client(repository)
    layer, diff_id = _layer(f"{architecture} {variant or ''} {media_type}")
    config = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Cmd": ["true"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    } | ({"variant": variant} if variant else {})
    oci = media_type == OCI_MANIFEST
    config_type = "application/vnd.oci.image.config.v1+json" if oci else CONFIG
    layer_type = "application/vnd.oci.image.layer.v1.tar+gzip" if oci else LAYER
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": client.put_blob(json.dumps(config).encode(), config_type),
        "layers": [client.put_blob(layer, layer_type)],
    }
    body = json.dumps(manifest, indent=3).encode()  # not canonical, as a registry client may write it
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    client.request(client.url(f"manifests/{digest}"), "PUT", body, {"Content-Type": media_type}).close()
    return digest, manifest["config"]["digest"], len(body)


def skopeo_raw(repository: str, reference: str, *options: str) -> bytes:
    separator = "@" if reference.startswith("sha256:") else ":"
    argv = ["skopeo", "inspect", "--raw", *options, f"docker://{repository}{separator}{reference}"]
    return subprocess.run(argv, capture_output=True, check=True).stdout


def test_an_index_of_two_platforms_is_pushed_read_back_and_kept(host, monkeypatch):
    repository = f"{host}/astronomer/ap-airflow"
    amd64, amd64_config, amd64_size = upload_image(repository, "amd64")
    arm64, arm64_config, arm64_size = upload_image(repository, "arm64", variant="v8")
    platforms = {"linux/amd64": amd64, "linux/arm64": arm64}

    pushed = oci_index.push_index(repository, "2.2.4-1", platforms)

    assert pushed.action == "pushed" and pushed.platforms == platforms
    raw = skopeo_raw(repository, "2.2.4-1", "--tls-verify=false")  # what any client reads: the index
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == pushed.digest
    assert json.loads(raw) == {
        "schemaVersion": 2,
        "mediaType": oci_index.INDEX_TYPE,
        "manifests": [
            {
                "mediaType": DOCKER_V2,
                "digest": amd64,
                "size": amd64_size,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": DOCKER_V2,
                "digest": arm64,
                "size": arm64_size,
                "platform": {"os": "linux", "architecture": "arm64"},
            },
        ],
    }
    assert raw == oci_index.canonical(json.loads(raw))  # canonical bytes: sorted keys, no whitespace
    digest_of = subprocess.run(["skopeo", "manifest-digest", "/dev/stdin"], input=raw, capture_output=True)
    assert digest_of.stdout.decode().strip() == pushed.digest

    # the same inputs give the same index: "kept", nothing written
    methods = []
    request = Client.request

    def recorded(self, url, method="GET", *args, **kwargs):
        methods.append(method)
        return request(self, url, method, *args, **kwargs)

    monkeypatch.setattr(Client, "request", recorded)
    again = oci_index.push_index(repository, "2.2.4-1", dict(platforms))
    monkeypatch.undo()
    assert methods and "PUT" not in methods
    assert (again.digest, again.action, again.platforms) == (pushed.digest, "kept", platforms)
    # the order given is the index's order, so another order is another index
    reordered = oci_index.assemble(repository, {"linux/arm64": arm64, "linux/amd64": amd64})
    assert "sha256:" + hashlib.sha256(reordered).hexdigest() != pushed.digest

    # per platform, read with skopeo: the index digest and each platform's manifest
    assert registry.remote_platforms(repository, "2.2.4-1") == registry.RemotePlatforms(pushed.digest, platforms)
    assert registry.remote_image(repository, "2.2.4-1") == registry.RemoteImage(pushed.digest, amd64_config)
    assert registry.remote_image(repository, "2.2.4-1", "linux/arm64") == registry.RemoteImage(
        pushed.digest, arm64_config
    )
    assert registry.remote_image(repository, "2.2.4-1", "linux/arm64/v8").config == arm64_config
    registry.check_platforms(repository, "2.2.4-1", pushed.digest, platforms)
    # one platform's manifest under a tag: {its config's platform: its digest}
    arm64_tag = Client(repository)
    arm64_tag.request(
        arm64_tag.url("manifests/2.2.4-1-arm64"),
        "PUT",
        skopeo_raw(repository, arm64, "--tls-verify=false"),
        {"Content-Type": DOCKER_V2},
    ).close()
    assert registry.remote_platforms(repository, "2.2.4-1-arm64") == registry.RemotePlatforms(
        arm64, {"linux/arm64": arm64}
    )
    assert registry.remote_platforms(repository, "2.2.3-1") is None


def test_a_floating_tag_and_another_registry_get_the_whole_index_by_its_digest(host, tmp_path, figure):
    repository = f"{host}/astronomer/ap-airflow-copies"
    amd64, amd64_config, _ = upload_image(repository, "amd64", OCI_MANIFEST)
    arm64, _, _ = upload_image(repository, "arm64", OCI_MANIFEST)
    platforms = {"linux/amd64": amd64, "linux/arm64": arm64}
    index = oci_index.push_index(repository, "2.2.4-1", platforms).digest

    # skopeo without --all copies the machine's platform's image alone (the trap registry.py's copies avoid)
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{repository}@{index}",
            f"docker://{repository}:one-platform",
        ],
        check=True,
        capture_output=True,
    )
    assert registry.remote_platforms(repository, "one-platform").digest == amd64

    started = time.monotonic()
    registry.tag_digest(repository, index, "2.2.4")  # the floating tag: `skopeo copy --all --preserve-digests`
    moved = time.monotonic() - started
    assert registry.remote_platforms(repository, "2.2.4") == registry.RemotePlatforms(index, platforms)
    assert skopeo_raw(repository, "2.2.4", "--tls-verify=false") == skopeo_raw(repository, index, "--tls-verify=false")

    # another registry (registry to registry, the push stage's second registry), read back per platform
    with throwaway_registry(tmp_path) as other:
        second = f"{other}/astronomer/ap-airflow"
        registry.copy_pushed(repository, index, second, "2.2.4-1", "", platforms=platforms)
        assert registry.remote_platforms(second, "2.2.4-1") == registry.RemotePlatforms(index, platforms)
        with pytest.raises(ReleaseError) as error:
            registry.check_platforms(second, "2.2.4-1", index, {"linux/amd64": amd64})
        assert str(error.value) == (
            f"{second}:2.2.4-1 resolves to {index} (linux/amd64 {amd64}, linux/arm64 {arm64}), expected {index} "
            f"(linux/amd64 {amd64}): something else writes to this repository; check who, then run the release again"
        )
        # a single image is copied as before (--all copies a manifest as it is), read back by its config
        registry.copy_pushed(repository, amd64, second, "2.2.4-1-amd64", amd64_config)
        assert registry.remote_image(second, "2.2.4-1-amd64") == registry.RemoteImage(amd64, amd64_config)

    # and moves as before
    registry.tag_digest(repository, arm64, "2.2.4-arm64")
    assert registry.remote_platforms(repository, "2.2.4-arm64") == registry.RemotePlatforms(
        arm64, {"linux/arm64": arm64}
    )
    figure(f"moving a floating tag to a two-platform index (skopeo copy --all, registry-side): {moved:.2f} s")


def test_a_missing_or_wrong_platform_manifest_is_refused_in_one_line_and_nothing_is_tagged(host):
    repository = f"{host}/astronomer/refusals"
    amd64, _, _ = upload_image(repository, "amd64")
    arm64, _, _ = upload_image(repository, "arm64", variant="v8")
    absent = "sha256:" + hashlib.sha256(b"never pushed").hexdigest()
    index = oci_index.push_index(repository, "2.2.4-1-index", {"linux/amd64": amd64}).digest
    refusals = {
        "wrong": (
            {"linux/amd64": amd64, "linux/arm64": amd64},
            (
                f"{repository}@{amd64} is a linux/amd64 image (its config says so), not linux/arm64: name the "
                f"linux/arm64 image's digest for linux/arm64"
            ),
        ),
        "missing": (
            {"linux/amd64": amd64, "linux/arm64": absent},
            (
                f"{repository}@{absent} (linux/arm64) is not in the registry: push the linux/arm64 image first, then "
                f"assemble the index"
            ),
        ),
        "an-index": (
            {"linux/amd64": index},
            (
                f"{repository}@{index} (linux/amd64) is a {oci_index.INDEX_TYPE}, not one platform's image manifest: "
                f"name the digest `docker push` printed for the linux/amd64 image"
            ),
        ),
        "variant": (
            {"linux/arm64/v7": arm64},
            (
                f"{repository}@{arm64} is a linux/arm64 image (its config says so), not linux/arm64/v7: name the "
                f"linux/arm64/v7 image's digest for linux/arm64/v7"
            ),
        ),
        "twice": (
            {"linux/arm64": arm64, "linux/arm64/v8": arm64},
            ("linux/arm64/v8 and linux/arm64 are one platform: name each platform once in an index"),
        ),
        "platform": ({"linux": amd64}, "platform 'linux' is not os/architecture[/variant] (for example linux/arm64)"),
        "none": ({}, f"no platform's image given for an index in {repository}: name at least one"),
    }
    for tag, (platforms, expected) in refusals.items():
        with pytest.raises(ReleaseError) as error:
            oci_index.push_index(repository, tag, platforms)
        assert str(error.value) == expected
    assert registry.tags(repository) == ["2.2.4-1-index"]  # nothing tagged by a refused index

    # an index without linux/amd64 reads as before for the amd64 comparison: refused in one line
    oci_index.push_index(repository, "arm-only", {"linux/arm64": arm64})
    with pytest.raises(ReleaseError) as error:
        registry.remote_image(repository, "arm-only")
    assert str(error.value) == (
        f"{repository}:arm-only is a multi-arch list without a linux/amd64 image (it holds linux/arm64): "
        f"the release compares linux/amd64 images only"
    )


@contextmanager
def tls_registry(directory: Path, username: str, password_env: str) -> Iterator[str]:
    """docker-registry over TLS (a CA made here) requiring htpasswd credentials, as staging's registries run."""
    ca_dir = directory / "ca"
    ca_dir.mkdir()
    cert, key = directory / "server.crt", directory / "server.key"
    ensure_server_certificate(ca_dir / "ca.crt", cert, key, "127.0.0.1")
    write_htpasswd(directory / "htpasswd", username, os.environ[password_env])
    port = free_port()
    (directory / "config.yml").write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {cert}\n    key: {key}\n"
        f"auth:\n  htpasswd:\n    realm: ac-release\n    path: {directory / 'htpasswd'}\n"
    )
    server = subprocess.Popen(
        ["docker-registry", "serve", str(directory / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:  # any HTTP answer (401) says it serves
            try:
                urllib.request.urlopen(f"https://127.0.0.1:{port}/v2/", timeout=1, context=_insecure()).close()
            except urllib.error.HTTPError:
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "docker-registry did not start"
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


def _insecure():
    import ssl

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def test_an_index_on_a_tls_registry_that_requires_credentials(tmp_path, monkeypatch, registry_server):
    monkeypatch.setenv("AC_TEST_REGISTRY_PASSWORD", "made-up-registry-password")
    with tls_registry(tmp_path, "releaser", "AC_TEST_REGISTRY_PASSWORD") as address:
        access = RegistryAccess(
            tls_verify=True,
            ca_dir=tmp_path / "ca",
            username="releaser",
            password=Secret(env="AC_TEST_REGISTRY_PASSWORD"),
        )
        repository = Registry(f"{address}/astronomer/ap-airflow", access)
        amd64, amd64_config, _ = upload_image(repository, "amd64")
        arm64, _, _ = upload_image(repository, "arm64")
        platforms = {"linux/amd64": amd64, "linux/arm64": arm64}
        pushed = oci_index.push_index(repository, "2.2.4-1", platforms)
        assert oci_index.push_index(repository, "2.2.4-1", platforms).action == "kept"
        assert registry.remote_platforms(repository, "2.2.4-1") == registry.RemotePlatforms(pushed.digest, platforms)
        registry.tag_digest(repository, pushed.digest, "2.2.4")
        assert registry.remote_platforms(repository, "2.2.4") == registry.RemotePlatforms(pushed.digest, platforms)
        assert registry.remote_image(repository, "2.2.4").config == amd64_config

        monkeypatch.setenv("AC_TEST_REGISTRY_PASSWORD", "not-the-password")
        with pytest.raises(ReleaseError) as error:
            oci_index.push_index(repository, "2.2.4-1", platforms)
        assert str(error.value) == (
            f"registry {repository} refused access (401 unauthorized): check $AC_TEST_REGISTRY_PASSWORD (the "
            f"password of 'releaser')"
        )
