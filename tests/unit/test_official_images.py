"""Official images are pulled by digest, never by a tag that moves: the data says so for every one of them."""

from __future__ import annotations

import re
import shutil

import pytest

from ac_release.building.baseimage import OFFICIAL_IMAGES, official_base, official_image, official_images
from ac_release.building.dockerfiles import render
from ac_release.building.postgres import OFFICIAL as POSTGRES
from ac_release.core.errors import ReleaseError
from ac_release.model.flavours import load_matrix
from tests.helpers import REPO

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def test_every_official_reference_carries_a_sha256_digest():
    refs = official_images()
    assert refs
    for name, ref in refs.items():
        assert ref.startswith(f"{name}@sha256:") and DIGEST.search(ref), ref


def test_every_flavour_base_and_postgres_are_pinned():
    for flavours in load_matrix(REPO / "images").values():
        for flavour in flavours:
            assert DIGEST.search(official_base(flavour.distro, flavour.python))
    assert official_image(POSTGRES) == f"postgres:13@{official_images()['postgres:13'].split('@')[1]}"


@pytest.mark.parametrize(
    "digest",
    ["", "sha256:abc", "sha256:" + "A" * 64, "sha512:" + "0" * 64, "sha256:" + "0" * 63, "sha256:" + "0" * 65],
)
def test_a_pin_that_is_not_a_sha256_digest_is_refused(tmp_path, digest):
    data = tmp_path / "official-images.toml"
    data.write_text(f'[images]\n"python:3.9-slim-bullseye" = "{digest}"\n')
    with pytest.raises(ReleaseError, match=r"is not pinned as name:tag@sha256:<64 hex digits>$"):
        official_images(data)


def test_an_image_without_a_pin_is_refused(tmp_path):
    data = tmp_path / "official-images.toml"
    data.write_text("[images]\n")
    with pytest.raises(ReleaseError) as error:
        official_image("postgres:13", data)
    assert str(error.value) == f'postgres:13 has no pinned digest: add it to {data} (name = "sha256:<digest>")'


def test_the_data_file_is_the_repository_one():
    assert OFFICIAL_IMAGES == REPO / "images" / "official-images.toml"


def test_a_generated_dockerfile_defaults_its_base_to_the_declared_pin():
    """Second audit, item 16: a hand build (`docker build` without BASE_IMAGE) starts from the digest the pipeline
    pulls, never from the floating tag."""
    images = REPO / "images"
    for flavours in load_matrix(images).values():
        for flavour in flavours:
            dockerfile = flavour.dockerfile(images).read_text()
            pinned = official_base(flavour.distro, flavour.python)
            assert f"\nARG BASE_IMAGE={pinned}\n" in dockerfile, flavour.dockerfile(images)
            assert DIGEST.search(pinned)


def test_the_default_base_is_read_from_the_images_own_pins_and_an_unpinned_one_is_refused(tmp_path):
    shutil.copy(REPO / "images" / "Dockerfile.j2", tmp_path / "Dockerfile.j2")
    (tmp_path / "matrix.toml").write_text((REPO / "images" / "matrix.toml").read_text())
    (flavour, *_) = load_matrix(tmp_path)["2.2.4"]
    digest = "sha256:" + "0" * 64
    (tmp_path / "official-images.toml").write_text(f'[images]\n"python:3.9-slim-bullseye" = "{digest}"\n')
    assert f"\nARG BASE_IMAGE=python:3.9-slim-bullseye@{digest}\n" in render(tmp_path, flavour, "base")
    (tmp_path / "official-images.toml").write_text("[images]\n")
    with pytest.raises(ReleaseError, match=r"^python:3.9-slim-bullseye has no pinned digest: add it to "):
        render(tmp_path, flavour, "base")
