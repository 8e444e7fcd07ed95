"""Stage `images`: only the published, signed bytes go into an image. (Building and testing a whole image is the
work of the release's test stage and the `smoke` nox sessions; these tests prove the refusals.) The builds here are
linux/amd64's, natively: every platform's image is built from the one Dockerfile, whose checks are the same on each
(linux/arm64's would run them under emulation, minutes longer)."""

from __future__ import annotations

import re
import shutil
import uuid

import pytest

from ac_release.building import image_build as build
from ac_release.building.baseimage import ensure_base
from ac_release.building.image_build import PREPARED_STAGES
from ac_release.building.image_state import flavour_state
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.flavours import AMD64
from ac_release.model.records import WheelRecord
from ac_release.pipeline.run import run_stage
from ac_release.stages import images
from ac_release.supply_chain.fetch import fetch_verified
from ac_release.world.context import flavours
from tests.integration.conftest import context_like, make_context, own_bundle_mismatch

pytestmark = pytest.mark.integration

WHEEL = "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
LOGS = "2.2.4-1-local-images-bullseye-amd64"  # the stem of the linux/amd64 build's logs, then `-<stage>.log`
META = "astronomer_certified-2.2.4.post1-py3-none-any.whl"


def _fetch(ctx, tmp_path):
    return fetch_verified(ctx, [WHEEL, META], tmp_path / "wheels", ctx.bundles)


def _own_refs(name: str) -> dict[str, str]:
    """Image references of one test's own (a fresh repository each call): no other run names an image so."""
    repository = f"ac-release/test-{name}-{uuid.uuid4().hex[:12]}"
    return {"base": f"{repository}:base", "onbuild": f"{repository}:onbuild"}


def test_published_wheels_are_fetched_from_the_index_and_verified(published, tmp_path):
    ctx, _ = published
    wheels = _fetch(ctx, tmp_path)
    assert sorted(wheels) == sorted([WHEEL, META])
    wheel = ctx.manifest.get(WheelRecord)
    assert {name: sha256_file(path) for name, path in wheels.items()} == {n: wheel.sha256(n) for n in wheels}


def test_not_published_is_refused(other_index, tmp_path):
    ctx, _ = other_index  # a copy of the release's dist/, next to an empty index
    with pytest.raises(ReleaseError) as error:
        run_stage(ctx, "images")
    assert str(error.value) == f"{ctx.target.index.url} does not serve {WHEEL}: run `invoke publish 2.2.4-1`"


def test_index_serving_other_bytes_is_refused_before_any_build(other_index, tmp_path):
    ctx, local = other_index
    run_stage(ctx, "publish")
    served = local.pypi_dir / "packages" / META
    served.write_bytes(b"other bytes under the same name")
    with pytest.raises(ReleaseError) as error:
        _fetch(ctx, tmp_path)
    assert str(error.value) == (
        f"{ctx.target.index.url} serves {META} with sha256 {sha256_file(served)}, the release built "
        f"{ctx.manifest.get(WheelRecord).sha256(META)}: refusing other bytes"
    )


def test_swapped_bundle_is_refused_before_any_build(other_index, tmp_path):
    ctx, _ = other_index
    run_stage(ctx, "publish")
    shutil.copy(ctx.bundles / f"{META}.sigstore.json", ctx.bundles / f"{WHEEL}.sigstore.json")
    with pytest.raises(ReleaseError, match=own_bundle_mismatch(WHEEL)):
        _fetch(ctx, tmp_path)


def test_a_wheel_that_does_not_match_its_pinned_sha256_fails_the_image_build(published, tmp_path):
    """The Dockerfile checks the wheel against the manifest's sha256 before installing: no stale or swapped wheel
    can reach an image, whatever the build cache holds."""
    ctx, _ = published
    wheels = _fetch(ctx, tmp_path)
    tampered = tmp_path / WHEEL
    data = bytearray(wheels[WHEEL].read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    (flavour, *_) = flavours(ctx)
    state = flavour_state(ctx, flavour, AMD64)
    refs = _own_refs("tampered")
    with pytest.raises(ReleaseError, match=rf"^docker build of {re.escape(refs['base'])} failed"):
        build.build_flavour(ctx, flavour, [tampered, wheels[META]], state.args, refs, AMD64)
    log = (ctx.cache / "logs" / f"{LOGS}-base.log").read_text()
    assert f"/build/wheels/{WHEEL}: FAILED" in log


def test_a_lock_that_misses_a_dependency_fails_the_image_build_in_its_check(published, tmp_path, monkeypatch):
    """The image installs its lock as it is (`--no-deps`: the lock is the resolution) and `uv pip check` then proves
    the venv whole: a lock without a package another one needs fails the build, never ships a broken image."""
    ctx, _ = published
    wheels = _fetch(ctx, tmp_path)
    lock = ctx.line.lock_file.read_text()
    block = re.search(r"^idna==.*?\n(?=[a-z])", lock, re.M | re.S).group(0)
    without_idna = tmp_path / "constraints.txt"
    without_idna.write_text(lock.replace(block, ""))
    inputs = build.inputs
    monkeypatch.setattr(build, "inputs", lambda ctx, flavour: inputs(ctx, flavour) | {"constraints.txt": without_idna})
    (flavour, *_) = flavours(ctx)
    state = flavour_state(ctx, flavour, AMD64)
    refs = _own_refs("lock-gap")
    with pytest.raises(ReleaseError, match=rf"^docker build of {re.escape(refs['base'])} failed"):
        build.build_flavour(ctx, flavour, list(wheels.values()), state.args, refs, AMD64)
    log = (ctx.cache / "logs" / f"{LOGS}-base.log").read_text()
    assert re.search(r"The package `requests` requires `idna.*`, but it's not installed", log), log[-3000:]


def test_the_stages_prepared_ahead_are_what_the_build_then_finds_in_its_cache(published, tmp_path):
    """The release prepares the stages that need no wheel while its wheel stage runs (images.prepare, started by
    pipeline.run_stages) and the images stage waits for that work (pipeline._settle) before it builds: the build,
    started once the prepare has returned, must take every RUN step of those stages from the build cache (CACHED,
    never run again), and as the very steps the prepare built (the same BuildKit vertex digests). A run of linux/amd64
    alone (a workflow's images job of that platform: `--platform`), so that the prepare builds that platform's."""
    released, _ = published
    ctx = make_context(released.settings, platform="linux/amd64")
    (flavour, *_) = flavours(ctx)
    ensure_base(ctx.docker, ctx.target.base_images, flavour.distro, flavour.python, ctx.log, AMD64)  # as the stage
    logs = ctx.cache / "logs"
    paths = {stage: logs / f"{LOGS}-{stage}.log" for stage in PREPARED_STAGES}
    for path in paths.values():
        path.unlink(missing_ok=True)  # every log read below is this test's own
    images.prepare(ctx)  # returns once each prepared stage's build has ended
    prepared = {stage: _run_steps(path.read_text(), stage) for stage, path in paths.items()}
    # each prepared stage runs its packages' step, known by its vertex digest
    assert all(prepared.values()) and all(d for steps in prepared.values() for d, _ in steps.values()), prepared
    state = flavour_state(ctx, flavour, AMD64)
    wheels = _fetch(ctx, tmp_path)
    refs = _own_refs("prepared")
    try:
        build.build_flavour(ctx, flavour, list(wheels.values()), state.args, refs, AMD64)
        log = (logs / f"{LOGS}-base.log").read_text()
        for stage, steps in prepared.items():
            # CACHED, or the very execution the prepare waited for: BuildKit shares one run of a vertex among the
            # builds that want it while it is active (the gate's reference release builds the same stage beside
            # this test), and each of them logs that run's `DONE <seconds>`
            built = _run_steps(log, stage)
            assert {command: digest for command, (digest, _) in built.items()} == {
                command: digest for command, (digest, _) in steps.items()
            }
            assert all(built[command][1] in ("CACHED", end) for command, (_, end) in steps.items()), (steps, built)
    finally:
        for ref in refs.values():
            ctx.docker("image", "rm", ref, capture=True, check=False)


def _run_steps(log: str, stage: str) -> dict[str, tuple[str | None, str | None]]:
    """The RUN steps of `stage` in a `--progress=plain` log: {command: (BuildKit vertex digest, how it ended)}, the
    end being `CACHED`, `DONE <seconds>s` (it ran) or `ERROR ...`."""
    steps = {}
    for number, command in re.findall(rf"^#(\d+) \[{stage} \d+/\d+\] (RUN .*)$", log, re.M):
        digest = re.search(rf"^#{number} (sha256:[0-9a-f]{{64}})$", log, re.M)
        end = re.search(rf"^#{number} (CACHED|DONE [0-9.]+s|ERROR.*)$", log, re.M)
        steps[command] = (digest and digest[1], end and end[1])
    return steps


def test_a_wrong_signer_identity_is_refused_before_any_build(published, tmp_path):
    ctx, _ = published
    other = context_like(ctx, tmp_path, identity="someone-else@ac-release.local")
    shutil.copytree(ctx.dist, other.dist)
    with pytest.raises(
        ReleaseError,
        match=r"^signature check failed for apache_airflow-2\.2\.4\+astro\.1-py3-none-any"
        r"\.whl with .*: Certificate's SANs do not match someone-else@ac-release.local",
    ):
        _fetch(other, tmp_path)
