"""The images stage builds a flavour's platforms side by side (an emulated platform's build is minutes of qemu while
the native one waits on downloads), records every build that succeeded, then raises the first failure."""

from __future__ import annotations

import threading

import pytest
from rich.console import Console

from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.model.flavours import AMD64, ARM64, VARIANTS
from ac_release.model.records import FlavourImages, ImagesRecord, VariantImage
from ac_release.stages import images
from ac_release.stages.steps import Step
from ac_release.world.context import ReleaseContext, flavours
from tests.helpers import write_config


def test_a_flavours_platforms_are_built_at_once_and_each_success_is_recorded_before_the_failure(tmp_path, monkeypatch):
    ctx = ReleaseContext.create("2.2.4-1", load_settings(write_config(tmp_path)), console=Console(quiet=True))
    (flavour,) = flavours(ctx)
    both = threading.Barrier(2, timeout=10)  # a build that waits for the other platform's: sequential builds time out

    def build(ctx, flavour, platform, wheels):
        both.wait()
        if platform == ARM64:
            raise ReleaseError("the linux/arm64 build failed: see its log")
        return FlavourImages("f", "base", {v: VariantImage(f"sha256:{v}", f"ref-{v}", 1, 1.0) for v in VARIANTS})

    monkeypatch.setattr(images, "_build", build)
    monkeypatch.setattr(images, "require_buildable", lambda platforms: None)
    monkeypatch.setattr(images, "fetch_verified", lambda *args: {})
    monkeypatch.setattr(images, "platforms", lambda ctx: (AMD64, ARM64))
    steps = [
        Step(
            images.NAME,
            "build",
            f"{flavour.name}/{variant}/{platform}",
            "new",
            images.FlavourImage(flavour.name, variant, platform),
        )
        for platform in (AMD64, ARM64)
        for variant in VARIANTS
    ]
    with pytest.raises(ReleaseError, match="^the linux/arm64 build failed: see its log$"):
        images.act(ctx, steps)
    record = ctx.record(ImagesRecord)
    assert list(record.flavours[flavour.name]) == [str(AMD64)]
    assert record.of(flavour.name, AMD64).ids() == {v: f"sha256:{v}" for v in VARIANTS}
