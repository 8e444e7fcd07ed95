"""The platforms a release builds (the line's, narrowed by the target: the model) and those this machine can build
(its own, and what binfmt_misc emulates: clients/platforms.py, read from /proc at run time)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ac_release.clients.platforms import BINFMT_DIR, buildable_platforms, require_buildable, unavailable
from ac_release.core.errors import ReleaseError
from ac_release.model.catalog import catalog_of
from ac_release.model.config import load_settings
from ac_release.model.flavours import AMD64, ARM64, release_platforms
from tests.helpers import PRODUCTION, REPO, write_config

# -- what a release builds: the line's platforms, narrowed by the target ------------------------------------------


def test_without_narrowing_a_release_builds_every_platform_of_the_line():
    assert release_platforms((AMD64, ARM64), None, "2.2.4", "local") == (AMD64, ARM64)


def test_the_target_narrows_in_the_line_order():
    assert release_platforms((AMD64, ARM64), (ARM64,), "2.2.4", "t") == (ARM64,)
    assert release_platforms((AMD64, ARM64), (ARM64, AMD64), "2.2.4", "t") == (AMD64, ARM64)
    assert release_platforms((AMD64,), (AMD64, ARM64), "9.8.7", "t") == (AMD64,)  # an amd64-only line stays so


def test_an_empty_intersection_is_refused_in_one_line():
    with pytest.raises(ReleaseError) as error:
        release_platforms((AMD64,), (ARM64,), "9.8.7", "arm")
    assert str(error.value) == (
        "target arm builds linux/arm64 but Airflow 9.8.7's images are linux/amd64 (images/matrix.toml): add one of "
        "the line's to targets.arm.platforms in release.toml"
    )


def test_the_catalog_combines_the_matrix_and_release_toml(tmp_path):
    path = write_config(tmp_path, pypi_port=8765, sigstore_port=8766, registry_port=5000, cache_dir="cache")
    path.write_text(path.read_text() + PRODUCTION.replace('base_images = "official"', 'platforms = ["linux/arm64"]'))
    catalog = catalog_of(load_settings(path))
    assert catalog.platforms_of("2.2.4") == (AMD64, ARM64)
    assert catalog.release_platforms("2.2.4") == (AMD64, ARM64)  # the default target (local) names none
    assert catalog.release_platforms("2.3.0", "production") == (ARM64,)


# -- what this machine can build -----------------------------------------------------------------------------------


def _binfmt_state() -> str | None:
    """What the kernel says of qemu-aarch64 here, read the way the check reads it."""
    entry = BINFMT_DIR / "qemu-aarch64"
    return entry.read_text() if entry.is_file() else None


def test_the_machine_builds_its_own_platform():
    own = {"x86_64": AMD64, "aarch64": ARM64}[os.uname().machine]
    assert own in buildable_platforms()
    assert unavailable(own) is None


def test_arm64_is_buildable_here_exactly_when_the_kernel_emulates_it():
    """The real /proc: bootstrap registers qemu-aarch64 (F flag) where the kernel allows; elsewhere amd64 only."""
    state = _binfmt_state()
    registered = state is not None and state.startswith("enabled\n") and "F" in state.split("flags:")[1].split()[0]
    native = os.uname().machine == "aarch64"
    assert (ARM64 in buildable_platforms()) == (native or registered)
    assert buildable_platforms() == tuple(p for p in (AMD64, ARM64) if p in buildable_platforms())  # amd64 first


def test_a_native_arm64_machine_needs_no_emulator(tmp_path):
    assert buildable_platforms(binfmt_dir=tmp_path, machine="aarch64") == (ARM64,)


def _entry(directory: Path, text: str) -> Path:
    (directory / "qemu-aarch64").write_text(text)
    return directory


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (None, "no arm64 emulation ({dir}/qemu-aarch64 is absent)"),
        ("disabled\ninterpreter /x\nflags: OCF\n", "no arm64 emulation ({dir}/qemu-aarch64 is not enabled)"),
        ("enabled\ninterpreter /x\nflags: OC\n", "{dir}/qemu-aarch64 lacks the F flag"),
    ],
    ids=["absent", "disabled", "no-F-flag"],
)
def test_arm64_without_emulation_is_refused_in_one_line(tmp_path, entry, reason):
    if entry is not None:
        _entry(tmp_path, entry)
    assert buildable_platforms(binfmt_dir=tmp_path, machine="x86_64") == (AMD64,)
    require_buildable((AMD64,), binfmt_dir=tmp_path, machine="x86_64")  # amd64 alone: nothing to refuse
    with pytest.raises(ReleaseError) as error:
        require_buildable((AMD64, ARM64), binfmt_dir=tmp_path, machine="x86_64")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"cannot build linux/arm64 images on this machine: {reason.format(dir=tmp_path)}")
    assert message.endswith(
        "run .ci/enable-arm64-emulation (exit 3: this kernel refuses it), or build the others only with "
        "platforms = [...] in the target of release.toml"
    )


def test_an_enabled_entry_with_the_f_flag_is_enough(tmp_path):
    _entry(tmp_path, "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\n")
    assert buildable_platforms(binfmt_dir=tmp_path, machine="x86_64") == (AMD64, ARM64)


def test_the_repository_release_toml_narrows_nothing():
    settings = load_settings(REPO / "release.toml")
    assert all(target.platforms is None for target in settings.targets.values())


def test_a_platform_is_emulated_where_the_machine_is_of_another_architecture():
    from ac_release.clients.platforms import emulated

    assert emulated(ARM64, "x86_64") and emulated(AMD64, "aarch64")
    assert not emulated(AMD64, "x86_64") and not emulated(ARM64, "aarch64") and not emulated(ARM64, "arm64")


def test_an_emulated_platform_leaves_the_full_smoke_tests_to_the_end_to_end_tier(monkeypatch):
    """arm64 under qemu: the image checks and a DAG run against PostgreSQL (and the upgrade) in the release's test
    stage; on its own architecture (GitHub's arm64 runners) every smoke test."""
    from ac_release.clients import platforms
    from ac_release.stages import test

    monkeypatch.setattr(platforms, "host_machine", lambda: "x86_64")
    assert test.expression("smoke and database", ARM64) == "smoke and database and not full"
    assert test.expression("smoke and not database", AMD64) == "smoke and not database"
    assert test.expression("upgrade", ARM64) == "upgrade"
    monkeypatch.setattr(platforms, "host_machine", lambda: "aarch64")
    assert test.expression("smoke and database", ARM64) == "smoke and database"
    assert test.expression("smoke and database", AMD64) == "smoke and database and not full"


def test_the_native_platform_is_the_machines_own():
    from ac_release.clients.platforms import native_platform

    assert native_platform("x86_64") == AMD64 and native_platform("amd64") == AMD64
    assert native_platform("aarch64") == ARM64 and native_platform("arm64") == ARM64
    with pytest.raises(ReleaseError, match=r"^this machine \(riscv64\) is none of the known platforms: linux/amd64"):
        native_platform("riscv64")


def test_an_emulated_build_compiles_its_bytecode_on_the_native_base(tmp_path, monkeypatch):
    """The arm64 build on an amd64 machine names the amd64 base for its bytecode stage; a native build its own."""
    from ac_release.building import image_build
    from ac_release.building.baseimage import base_reference
    from ac_release.world.context import ReleaseContext

    monkeypatch.setattr(image_build, "native_platform", lambda: AMD64)
    ctx = ReleaseContext.create("2.2.4-1", load_settings(write_config(tmp_path, platforms=None)))
    (flavour,) = ctx.catalog.flavours_of("2.2.4")
    pins = {"apache_airflow-2.2.4+astro.1-py3-none-any.whl": "a" * 64, "astronomer_certified-x.whl": "b" * 64}
    mode = ctx.target.base_images
    arm64_base = base_reference(mode, flavour.distro, flavour.python, ARM64)
    args = image_build.build_args(ctx, flavour, arm64_base, pins)
    assert args["BUILD_BASE_IMAGE"] == base_reference(mode, flavour.distro, flavour.python, AMD64)
    assert args["BASE_IMAGE"] == arm64_base
    if mode == "debootstrap":
        assert args["BUILD_BASE_IMAGE"] != args["BASE_IMAGE"]
