"""The flavour matrix, computed tags, and the drift gate over the generated Dockerfiles."""

import shutil

import pytest

from ac_release.building.dockerfiles import drift, generate, render
from ac_release.core.errors import ReleaseError
from ac_release.model.flavours import AMD64, ARM64, flavours_of, line_platforms, load_matrix
from ac_release.model.nox_sessions import session_name, session_params
from ac_release.model.version import ACVersion
from tests.helpers import REPO

IMAGES = REPO / "images"


def test_checked_in_dockerfiles_match_the_template():
    assert drift(IMAGES) == []


def test_224_ships_bullseye_python39_in_base_and_onbuild():
    (flavour,) = flavours_of(IMAGES, "2.2.4")
    assert (flavour.name, flavour.distro, flavour.python, flavour.default) == ("bullseye", "bullseye", "3.9", True)
    assert flavour.dockerfile(IMAGES).relative_to(REPO).as_posix() == "images/2.2.4/bullseye/Dockerfile"
    assert (
        flavour.dockerfile(IMAGES, "onbuild").relative_to(REPO).as_posix() == "images/2.2.4/bullseye/onbuild/Dockerfile"
    )


def test_tags_are_computed_from_the_version():
    (flavour,) = flavours_of(IMAGES, "2.2.4")
    version = ACVersion.parse("2.2.4-1")
    assert flavour.tags(version) == ["2.2.4-1", "2.2.4-1-bullseye"]
    assert flavour.tags(version, "onbuild") == ["2.2.4-1-onbuild", "2.2.4-1-bullseye-onbuild"]
    assert flavour.floating_tags(version) == ["2.2.4", "2.2.4-bullseye"]
    assert flavour.floating_tags(version, "onbuild") == ["2.2.4-onbuild", "2.2.4-bullseye-onbuild"]


def test_dev_builds_get_immutable_tags_only():
    (flavour,) = flavours_of(IMAGES, "2.2.4")
    version = ACVersion.parse("2.2.4-2-dev")
    assert flavour.tags(version) == ["2.2.4-2-dev", "2.2.4-2-dev-bullseye"]
    assert flavour.floating_tags(version) == []


MULTI = """
[distros.bullseye]
runtime = ["libpq5", "tini"]
build = ["libpq-dev"]

[distros.bookworm]
runtime = ["libpq5", "tini", "libssl3"]
build = ["libpq-dev"]

[lines."9.8.7"]
pip = "24.0"
flavours = [
    { distro = "bookworm", python = "3.11" },
    { distro = "bookworm", python = "3.12", name = "bookworm-python3.12" },
    { distro = "bullseye", python = "3.9" },
]
"""

# The generated Dockerfiles default their base to these pins (images/official-images.toml).
PINNED = {"3.11-slim-bookworm": "1" * 64, "3.12-slim-bookworm": "2" * 64, "3.9-slim-bullseye": "3" * 64}
PINS = "[images]\n" + "".join(f'"python:{tag}" = "sha256:{digest}"\n' for tag, digest in PINNED.items())


@pytest.fixture
def multi(tmp_path):
    shutil.copy(IMAGES / "Dockerfile.j2", tmp_path / "Dockerfile.j2")
    (tmp_path / "matrix.toml").write_text(MULTI)
    (tmp_path / "official-images.toml").write_text(PINS)
    return tmp_path


def test_several_distros_and_pythons_per_line(multi):
    flavours = load_matrix(multi)["9.8.7"]
    assert [(f.name, f.python, f.default) for f in flavours] == [
        ("bookworm", "3.11", True),
        ("bookworm-python3.12", "3.12", False),
        ("bullseye", "3.9", False),
    ]
    version = ACVersion.parse("9.8.7-3")
    assert [f.tags(version) for f in flavours] == [
        ["9.8.7-3", "9.8.7-3-bookworm"],
        ["9.8.7-3-bookworm-python3.12"],
        ["9.8.7-3-bullseye"],
    ]
    assert flavours[1].floating_tags(version, "onbuild") == ["9.8.7-bookworm-python3.12-onbuild"]


def test_generate_renders_every_flavour_and_variant_then_reports_no_drift(multi):
    written = generate(multi)
    assert sorted(p.relative_to(multi).as_posix() for p in written) == [
        "9.8.7/bookworm-python3.12/Dockerfile",
        "9.8.7/bookworm-python3.12/onbuild/Dockerfile",
        "9.8.7/bookworm/Dockerfile",
        "9.8.7/bookworm/onbuild/Dockerfile",
        "9.8.7/bullseye/Dockerfile",
        "9.8.7/bullseye/onbuild/Dockerfile",
    ]
    assert drift(multi) == []
    py312 = (multi / "9.8.7/bookworm-python3.12/Dockerfile").read_text()
    assert f"ARG BASE_IMAGE=python:3.12-slim-bookworm@sha256:{PINNED['3.12-slim-bookworm']}\n" in py312
    assert "    PYTHON_MAJOR_MINOR_VERSION=3.12 \\\n" in py312
    assert "        libssl3 \\\n" in py312
    assert "libssl3" not in (multi / "9.8.7/bullseye/Dockerfile").read_text()


def test_drift_names_each_changed_missing_or_stale_file(multi):
    generate(multi)
    (multi / "9.8.7/bullseye/Dockerfile").write_text((multi / "9.8.7/bullseye/Dockerfile").read_text() + "RUN true\n")
    (multi / "9.8.7/bookworm-python3.12/onbuild/Dockerfile").unlink()
    (multi / "matrix.toml").write_text(MULTI.replace('    { distro = "bookworm", python = "3.11" },\n', ""))
    assert drift(multi) == [
        "9.8.7/bookworm-python3.12/onbuild/Dockerfile: missing",
        "9.8.7/bookworm/Dockerfile: no longer in the matrix",
        "9.8.7/bookworm/onbuild/Dockerfile: no longer in the matrix",
        "9.8.7/bullseye/Dockerfile: differs from the template",
    ]
    generate(multi)
    assert drift(multi) == []
    assert not (multi / "9.8.7/bookworm/Dockerfile").exists()


def test_onbuild_variant_builds_from_the_base_flavour(multi):
    (flavour, *_) = load_matrix(multi)["9.8.7"]
    text = render(multi, flavour, "onbuild")
    assert "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n" in text
    assert 'LABEL io.astronomer.docker.airflow.onbuild="true"\n' in text
    assert "ONBUILD COPY --chown=astro:astro . .\n" in text


def test_two_flavours_with_one_name_are_refused(multi):
    (multi / "matrix.toml").write_text(MULTI.replace(', name = "bookworm-python3.12"', ""))
    with pytest.raises(ReleaseError, match=r"line 9.8.7 has several flavours named 'bookworm': give all but one"):
        load_matrix(multi)


def test_a_line_without_flavours_is_refused():
    with pytest.raises(ReleaseError, match=r'^no image flavours for Airflow 9.9.9: add \[lines."9.9.9"\]'):
        flavours_of(IMAGES, "9.9.9")


def test_image_sessions_cover_every_build_and_mark_each_lines_newest(multi, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(multi, root / "images")
    (root / "changelog").mkdir()
    (root / "changelog" / "9.8.7.md").write_text(
        "# Astronomer Certified 9.8.7\n\n## 9.8.7-2, TBD\n\n### Security\n- b\n\n## 9.8.7-1, 2026-01-01\n\n"
        "### Security\n- a\n"
    )
    assert session_params(root) == [
        ("9.8.7-2", "bookworm", True),
        ("9.8.7-2", "bookworm-python3.12", True),
        ("9.8.7-2", "bullseye", True),
        ("9.8.7-1", "bookworm", False),
        ("9.8.7-1", "bookworm-python3.12", False),
        ("9.8.7-1", "bullseye", False),
    ]
    assert session_name("9.8.7-1", "bullseye", "upgrade") == "upgrade(version='9.8.7-1', flavour='bullseye')"


# -- platforms ----------------------------------------------------------------------------------------------------


def test_every_line_declares_amd64_then_arm64():
    matrix = load_matrix(IMAGES)
    assert {"2.2.0", "2.2.1", "2.2.2", "2.2.3", "2.2.4", "2.3.0"} <= set(matrix)
    for airflow in matrix:
        assert [str(p) for p in line_platforms(matrix, airflow)] == ["linux/amd64", "linux/arm64"]
        assert all(flavour.platforms == (AMD64, ARM64) for flavour in matrix[airflow])


def test_the_platform_value_names_itself_for_each_tool():
    assert (str(ARM64), ARM64.os, ARM64.architecture) == ("linux/arm64", "linux", "arm64")
    assert (ARM64.uv_platform, AMD64.uv_platform) == ("aarch64-manylinux_2_31", "x86_64-manylinux_2_31")
    assert (ARM64.debian_arch, AMD64.debian_arch, ARM64.machine) == ("arm64", "amd64", "aarch64")


def test_a_line_without_platforms_is_amd64_only_and_keeps_the_declared_order(multi):
    assert line_platforms(load_matrix(multi), "9.8.7") == (AMD64,)
    (multi / "matrix.toml").write_text(
        MULTI.replace('pip = "24.0"', 'pip = "24.0"\nplatforms = ["linux/arm64", "linux/amd64"]')
    )
    assert line_platforms(load_matrix(multi), "9.8.7") == (ARM64, AMD64)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"linux/arm64"', 'expected a list of platforms from "linux/amd64", "linux/arm64", got a string'),
        ("[]", 'expected a list of platforms from "linux/amd64", "linux/arm64", got an empty list: name at least one'),
        ('["linux/amd64", "linux/riscv64"]', "unknown platform 'linux/riscv64': expected a list of platforms from"),
        ('["amd64"]', "unknown platform 'amd64': expected a list of platforms from"),
        ('["linux/amd64", 1]', "got an integer in the list"),
        ('["linux/amd64", "linux/amd64"]', "'linux/amd64' is listed twice: list each platform once"),
    ],
    ids=["not-a-list", "empty", "unknown", "no-os", "not-a-string", "twice"],
)
def test_bad_platforms_of_a_line_are_refused_in_one_line_naming_the_key(multi, value, message):
    (multi / "matrix.toml").write_text(MULTI.replace('pip = "24.0"', f'pip = "24.0"\nplatforms = {value}'))
    with pytest.raises(ReleaseError) as error:
        load_matrix(multi)
    text = str(error.value)
    assert "\n" not in text and text.startswith(f'{multi / "matrix.toml"}: lines."9.8.7".platforms: ')
    assert message in text
