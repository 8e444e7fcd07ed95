"""Which platforms this machine can build and run images for: its own, and those the kernel runs through an emulator
registered with binfmt_misc (`.ci/enable-arm64-emulation`, called by `.ci/bootstrap`, registers qemu-aarch64).

Read at run time from /proc, never remembered: the registration is the kernel's and may change between runs. What a
release should build (the line's platforms narrowed by the target) is the model's (`Catalog.release_platforms`);
this says only whether the machine can.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ac_release.core.errors import ReleaseError
from ac_release.model.flavours import PLATFORMS, Platform

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
ENABLE_SCRIPT = ".ci/enable-arm64-emulation"
_NATIVE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def host_machine() -> str:
    """The kernel's architecture, as `uname -m` says it (x86_64, aarch64)."""
    return os.uname().machine


def unavailable(platform: Platform, binfmt_dir: Path = BINFMT_DIR, machine: str | None = None) -> str | None:
    """Why this machine cannot build `platform`'s images, or None when it can: natively, or through an emulator
    the kernel runs for every process (binfmt_misc entry `qemu-<machine>`, enabled, with the F flag that makes it
    work inside containers and chroots)."""
    machine = _NATIVE.get(machine or host_machine(), machine or host_machine())
    if platform.machine == machine:
        return None
    entry = binfmt_dir / f"qemu-{platform.machine}"
    try:
        lines = entry.read_text().splitlines()
    except FileNotFoundError:
        return f"no {platform.architecture} emulation ({entry} is absent)"
    except OSError as exc:
        return f"no {platform.architecture} emulation ({entry} unreadable: {exc.strerror})"
    if not lines or lines[0].strip() != "enabled":
        return f"no {platform.architecture} emulation ({entry} is not enabled)"
    flags = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("flags:")), "")
    if "F" not in flags:
        return f"{entry} lacks the F flag (containers cannot find its interpreter)"
    return None


def buildable_platforms(
    binfmt_dir: Path = BINFMT_DIR, machine: str | None = None, known: Iterable[Platform] = PLATFORMS
) -> tuple[Platform, ...]:
    """The known platforms this machine can build images for, in the order of preference."""
    return tuple(p for p in known if unavailable(p, binfmt_dir, machine) is None)


def require_buildable(platforms: Iterable[Platform], binfmt_dir: Path = BINFMT_DIR, machine: str | None = None) -> None:
    """Refuse, in one line, the first of `platforms` this machine cannot build."""
    for platform in platforms:
        reason = unavailable(platform, binfmt_dir, machine)
        if reason is not None:
            raise ReleaseError(
                f"cannot build {platform} images on this machine: {reason}; run {ENABLE_SCRIPT} (exit 3: this "
                f"kernel refuses it), or build the others only with platforms = [...] in the target of release.toml"
            )


def emulated(platform: Platform, machine: str | None = None) -> bool:
    """Does this machine run `platform`'s binaries through an emulator (not natively)?"""
    machine = machine or host_machine()
    return platform.machine != _NATIVE.get(machine, machine)


def native_platform(machine: str | None = None) -> Platform:
    """The known platform this machine runs natively (linux/amd64 on x86_64)."""
    machine = machine or host_machine()
    for platform in PLATFORMS:
        if not emulated(platform, machine):
            return platform
    raise ReleaseError(f"this machine ({machine}) is none of the known platforms: {', '.join(map(str, PLATFORMS))}")
