"""The base image a release image is built FROM, recorded by the image itself: the OCI labels
org.opencontainers.image.base.name and .base.digest. The build writes them, attest's provenance names the same
digest, and `invoke verify` reads them from the pushed image, on any machine: never the local Docker engine (a
debootstrap base is built on the build machine and never pushed). An official base's label must be its pin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ac_release.building import baseimage
from ac_release.building import image_build as build
from ac_release.building.baseimage import base_digest, labelled_base, official_base
from ac_release.building.dockerfiles import render
from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.model.flavours import AMD64, ARM64, load_matrix
from ac_release.model.records import Artifact, WheelRecord
from ac_release.supply_chain import image_attestations, provenance, verify
from ac_release.supply_chain.image_attestations import ImageCheck
from ac_release.world.context import ReleaseContext, flavours
from ac_release.world.released_images import ReleasedImage
from tests.helpers import REPO, write_config

NAME, DIGEST = "org.opencontainers.image.base.name", "org.opencontainers.image.base.digest"
DEBIAN = "ac-release/debian:bullseye-0123456789ab"
BASE_ID = "sha256:" + "d" * 64
AIRFLOW = "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
META = "astronomer_certified-2.2.4.post1-py3-none-any.whl"
PINNED = "python:3.9-slim-bullseye@sha256:" + "9" * 64


class NoEngine:
    """A Docker engine verify must not ask: it is the build machine's, not the verifier's."""

    def __getattr__(self, name):
        raise AssertionError(f"verify asked the local Docker engine ({name})")

    def __call__(self, *args, **kwargs):
        raise AssertionError(f"verify ran docker {' '.join(args)}")


def _verify_with(monkeypatch, tmp_path, labels: dict[str, str], base_images: str = "debootstrap") -> list:
    """verify's attestation check of one image whose registry labels are `labels`, with cosign's answers faked;
    returns the inputs it expected the provenance to name."""
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('base_images = "debootstrap"', f'base_images = "{base_images}"'))
    ctx = ReleaseContext.create("2.2.4-1", load_settings(config))
    ctx.__dict__["docker"] = NoEngine()
    wheel = WheelRecord("f" * 64, {AIRFLOW: Artifact("a" * 64, 1), META: Artifact("b" * 64, 1)}, {}, "env", 0)
    (flavour,) = flavours(ctx)
    (repository,) = ctx.target.registries
    platforms = {str(AMD64): "sha256:" + "c" * 64}  # the index's one platform: its image manifest
    image = ReleasedImage(repository, flavour, "base", "sha256:" + "e" * 64, platforms, ("2.2.4-1",))
    expected = []

    def check_image(trust, reference, *signer_inputs_package, **tags):
        (inputs,) = [arg for arg in signer_inputs_package if isinstance(arg, list)]
        expected.extend(inputs)
        statement = {"predicate": {"buildDefinition": {"resolvedDependencies": [i.descriptor() for i in inputs]}}}
        return ImageCheck(
            verified=list(image_attestations.KINDS),
            statements={
                "cyclonedx": {"predicate": {}},
                "slsaprovenance1": statement,
            },
        )

    monkeypatch.setattr(verify.cosign, "trust_of", lambda ctx: None)
    monkeypatch.setattr(verify.registry, "labels", lambda repository, digest: labels)
    monkeypatch.setattr(verify.image_attestations, "check_image", check_image)
    monkeypatch.setattr(verify.sbom, "installed_from", lambda bom, name, version: AIRFLOW)
    verify._verify_attestations(ctx, wheel, [image])
    return expected


def _labels(**base: str) -> dict[str, str]:
    return {
        "org.opencontainers.image.revision": "1" * 40,
        "io.astronomer.docker.airflow.wheel.sha256": "a" * 64,
        **{{"name": NAME, "digest": DIGEST}[key]: value for key, value in base.items()},
    }


def test_verify_takes_a_debootstrap_base_from_the_image_labels_not_the_local_engine(monkeypatch, tmp_path):
    inputs = _verify_with(monkeypatch, tmp_path, _labels(name=DEBIAN, digest=BASE_ID))
    (base,) = [i for i in inputs if i.role == "base-image"]
    assert base == provenance.image_input("base-image", DEBIAN, BASE_ID)


def test_verify_refuses_an_official_base_label_that_is_not_the_pin(monkeypatch, tmp_path):
    pinned = official_base("bullseye", "3.9")
    name, _, pin = pinned.partition("@")
    other = "sha256:" + "0" * 64
    with pytest.raises(ReleaseError) as refused:
        _verify_with(monkeypatch, tmp_path, _labels(name=name, digest=other), "official")
    assert "\n" not in str(refused.value)
    assert str(refused.value).endswith(
        f": the image's labels name its base {name}@{other}, the pin of official-images.toml says {pinned}"
    )
    (base,) = [
        i
        for i in _verify_with(monkeypatch, tmp_path, _labels(name=name, digest=pin), "official")
        if i.role == "base-image"
    ]
    assert base == provenance.image_input("base-image", name, pin)


def test_verify_refuses_an_image_without_base_labels_or_with_a_foreign_debootstrap_name(monkeypatch, tmp_path):
    with pytest.raises(ReleaseError, match=r": the image's label org.opencontainers.image.base.name is '', not a "):
        _verify_with(monkeypatch, tmp_path, _labels())
    with pytest.raises(
        ReleaseError, match=r"is 'ac-release/debian:bookworm-0123456789ab', not a ac-release/debian:bullseye-"
    ):
        _verify_with(monkeypatch, tmp_path, _labels(name="ac-release/debian:bookworm-0123456789ab", digest=BASE_ID))
    with pytest.raises(ReleaseError, match=rf"labels name its base {DEBIAN}@\(none\), not {DEBIAN}$"):
        _verify_with(monkeypatch, tmp_path, _labels(name=DEBIAN))


def test_base_digest_the_one_rule_a_label_never_overrides_a_pin():
    name, _, pin = PINNED.partition("@")
    # the build and attest, on the build machine: the pin, or the engine's id of a debootstrap base
    assert base_digest(PINNED, None) == base_digest(PINNED, "sha256:" + "1" * 64) == pin
    assert base_digest(DEBIAN, BASE_ID) == BASE_ID
    with pytest.raises(ReleaseError, match=rf"^base image {DEBIAN} is not in the Docker engine: run `invoke images`"):
        base_digest(DEBIAN, None)
    # a pushed image's labels: an official base's must be its pin, whatever the engine holds
    assert base_digest(PINNED, None, {NAME: name, DIGEST: pin}) == pin
    with pytest.raises(ReleaseError, match=rf"^the image's labels name its base {name}@sha256:1{{64}}, the pin of "):
        base_digest(PINNED, "sha256:" + "1" * 64, {NAME: name, DIGEST: "sha256:" + "1" * 64})
    with pytest.raises(ReleaseError, match=r"^the image's labels name its base other:1@sha256:9{64}, not python:"):
        base_digest(PINNED, None, {NAME: "other:1", DIGEST: pin})
    # a debootstrap base: the label's id, which must be the engine's where the engine has the base (attest)
    assert base_digest(DEBIAN, None, {NAME: DEBIAN, DIGEST: BASE_ID}) == BASE_ID
    assert base_digest(DEBIAN, BASE_ID, {NAME: DEBIAN, DIGEST: BASE_ID}) == BASE_ID
    with pytest.raises(ReleaseError, match=rf"^the image's labels name its base {DEBIAN}@{BASE_ID}, the Docker engine"):
        base_digest(DEBIAN, "sha256:" + "2" * 64, {NAME: DEBIAN, DIGEST: BASE_ID})


def test_labelled_base_needs_no_keyring_for_a_debootstrap_base(monkeypatch):
    monkeypatch.setattr(baseimage, "KEYRING", Path("/nonexistent/keyring.gpg"))  # another machine's Debian
    assert labelled_base("debootstrap", "bullseye", "3.9", {NAME: DEBIAN, DIGEST: BASE_ID}) == (DEBIAN, BASE_ID)
    pinned = official_base("bullseye", "3.9")
    name, _, pin = pinned.partition("@")
    assert labelled_base("official", "bullseye", "3.9", {NAME: name, DIGEST: pin}) == (pinned, pin)


def test_the_template_labels_the_base_and_the_build_passes_the_decided_digest(tmp_path):
    (flavour, *_) = load_matrix(REPO / "images")["2.2.4"]
    dockerfile = render(REPO / "images", flavour, "base")
    block = dockerfile[dockerfile.index("\nLABEL maintainer=") :].split("\nUSER ", 1)[0]
    labels = dict(re.findall(r'([\w.]+)="([^"]*)"', block))
    assert labels[NAME] == "${OCI_BASE_NAME}" and labels[DIGEST] == "${OCI_BASE_DIGEST}"
    assert "\nARG OCI_BASE_NAME\nARG OCI_BASE_DIGEST\n" in dockerfile

    class Engine:
        def image_id(self, ref):
            return {DEBIAN: BASE_ID}.get(ref, "sha256:" + "3" * 64)  # an official base's local id is not its digest

    ctx = ReleaseContext.create("2.2.4-1", load_settings(write_config(tmp_path)))
    ctx.__dict__["docker"] = Engine()
    assert build.base_labels(ctx, DEBIAN) == {"OCI_BASE_NAME": DEBIAN, "OCI_BASE_DIGEST": BASE_ID}
    name, _, pin = PINNED.partition("@")
    assert build.base_labels(ctx, PINNED) == {"OCI_BASE_NAME": name, "OCI_BASE_DIGEST": pin}


def test_labelled_base_takes_a_debootstrap_base_of_each_platform_and_the_tags_before_recipe_4():
    arm64 = "ac-release/debian:bullseye-arm64-0123456789ab"
    amd64 = "ac-release/debian:bullseye-amd64-0123456789ab"
    for name in (DEBIAN, amd64, arm64):  # DEBIAN: recipe 3's tag, amd64 and no arch named (images released before)
        assert labelled_base("debootstrap", "bullseye", "3.9", {NAME: name, DIGEST: BASE_ID}) == (name, BASE_ID)
    assert labelled_base("debootstrap", "bullseye", "3.9", {NAME: arm64, DIGEST: BASE_ID}, ARM64) == (arm64, BASE_ID)
    for name in (DEBIAN, amd64):
        assert labelled_base("debootstrap", "bullseye", "3.9", {NAME: name, DIGEST: BASE_ID}, AMD64) == (name, BASE_ID)
    for name in (DEBIAN, amd64):  # an arm64 image built FROM an amd64 base, or a base of unknown arch
        with pytest.raises(ReleaseError) as refused:
            labelled_base("debootstrap", "bullseye", "3.9", {NAME: name, DIGEST: BASE_ID}, ARM64)
        assert str(refused.value) == (
            f"the image's label {NAME} is {name!r}, not a ac-release/debian:bullseye-arm64-<hash> base"
        )
    with pytest.raises(ReleaseError, match=r"is 'ac-release/debian:bullseye-s390x-0123456789ab', not a "):
        labelled_base("debootstrap", "bullseye", "3.9", {NAME: "ac-release/debian:bullseye-s390x-0123456789ab"})
