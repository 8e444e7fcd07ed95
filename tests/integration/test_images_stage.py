"""Stage `images`: only the published, signed bytes go into an image. (Building and testing a whole image is
the work of the `smoke` nox sessions; these tests prove the refusals.)"""

from __future__ import annotations

import shutil

import pytest

from ac_release.errors import ReleaseError
from ac_release.fsutil import sha256_file
from ac_release.images.matrix import flavours_of
from ac_release.stages import images, publish
from tests.integration.conftest import context_like, own_bundle_mismatch

pytestmark = pytest.mark.integration

WHEEL = "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
META = "astronomer_certified-2.2.4.post1-py3-none-any.whl"


def test_published_wheels_are_fetched_from_the_index_and_verified(published):
    ctx, _ = published
    wheels = images.fetch_published_wheels(ctx)
    assert sorted(wheels) == sorted([WHEEL, META])
    built = ctx.manifest.stage("wheel")["artifacts"]
    assert {name: sha256_file(path) for name, path in wheels.items()} == {n: built[n]["sha256"] for n in wheels}


def test_not_published_is_refused(other_index):
    ctx, _ = other_index  # a copy of the release's dist/, next to an empty index
    ctx.manifest.data["stages"].pop("publish", None)
    with pytest.raises(ReleaseError, match=r"^2.2.4-1 is not published to local: run `invoke publish 2.2.4-1`$"):
        images.fetch_published_wheels(ctx)
    ctx.manifest.data["stages"]["publish"] = {"local": {"index": ctx.target.index.url, "files": {}}}
    with pytest.raises(ReleaseError) as error:
        images.fetch_published_wheels(ctx)
    assert str(error.value) == f"{ctx.target.index.url} does not serve {WHEEL}: run `invoke publish 2.2.4-1`"


def test_index_serving_other_bytes_is_refused_before_any_build(other_index):
    ctx, local = other_index
    publish.run(ctx)
    served = local.pypi_dir / "packages" / META
    served.write_bytes(b"other bytes under the same name")
    with pytest.raises(ReleaseError) as error:
        images.fetch_published_wheels(ctx)
    assert str(error.value) == (
        f"{ctx.target.index.url} serves {META} with sha256 {sha256_file(served)}, the release built "
        f"{ctx.manifest.stage('wheel')['artifacts'][META]['sha256']}: refusing to build images from other bytes"
    )


def test_swapped_bundle_is_refused_before_any_build(other_index):
    ctx, _ = other_index
    publish.run(ctx)
    shutil.copy(ctx.dist / f"{META}.sigstore.json", ctx.dist / f"{WHEEL}.sigstore.json")
    with pytest.raises(ReleaseError, match=own_bundle_mismatch(WHEEL)):
        images.fetch_published_wheels(ctx)


def test_a_wheel_that_does_not_match_its_pinned_sha256_fails_the_image_build(published, tmp_path):
    """The Dockerfile checks the wheel against the manifest's sha256 before installing: no stale or swapped wheel
    can reach an image, whatever the build cache holds."""
    ctx, _ = published
    wheels = images.fetch_published_wheels(ctx)
    tampered = tmp_path / WHEEL
    data = bytearray(wheels[WHEEL].read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    (flavour, *_) = flavours_of(images.images_dir(ctx), ctx.line.airflow)
    with pytest.raises(ReleaseError, match=r"^docker build of ac-release/ap-airflow:2.2.4-1-bullseye failed"):
        images._build_flavour(ctx, flavour, {**wheels, WHEEL: tampered})
    log = (ctx.cache / "logs" / "2.2.4-1-images-bullseye.log").read_text()
    assert f"/build/wheels/{WHEEL}: FAILED" in log


def test_a_wrong_signer_identity_is_refused_before_any_build(published, tmp_path):
    ctx, _ = published
    other = context_like(ctx, tmp_path, identity="someone-else@ac-release.local")
    shutil.copytree(ctx.dist, other.dist)
    with pytest.raises(
        ReleaseError,
        match=r"^signature check failed for apache_airflow-2\.2\.4\+astro\.1-py3-none-any"
        r"\.whl with .*: Certificate's SANs do not match someone-else@ac-release.local",
    ):
        images.fetch_published_wheels(other)
