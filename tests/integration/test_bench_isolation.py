"""A benchmark never touches a release (issue 10, item 21): its builds go through the shared image build under
names of its own, which it removes, while the release's image references and manifest stay as they were.

A scratch repository with a one-line flavour Dockerfile (FROM the platform's base, a label: no RUN, so no emulator
runs) stands in for the real one, so the test builds every platform of the line in seconds through the very
functions `nox -s bench` runs (bench._ours, first platform and the others, bench.remove_bench_images)."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from rich.console import Console

from ac_release.bench import main as bench
from ac_release.building.baseimage import ensure_debian_base
from ac_release.building.image_state import local_ref
from ac_release.model.config import load_settings
from ac_release.model.flavours import ONBUILD, VARIANTS
from ac_release.world.context import ReleaseContext, flavours, release_platforms
from tests.helpers import REPO, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch(docker_ready, tmp_path, monkeypatch):
    # A target and a benchmark repository of this fixture's own: no other run (nor a real benchmark) names its images.
    own = uuid.uuid4().hex[:12]
    target = f"benchiso-{own}"
    monkeypatch.setattr(bench, "BENCH_REPOSITORY", f"ac-release/bench-test-{own}")
    root = tmp_path / "repo"
    shutil.copytree(REPO / "wheel", root / "wheel")
    shutil.copytree(REPO / "products", root / "products")
    shutil.copytree(REPO / "images" / "include", root / "images" / "include")
    shutil.copy(REPO / "images" / "matrix.toml", root / "images" / "matrix.toml")
    config = write_config(tmp_path, root=root)
    config.write_text(
        config.read_text()
        .replace('default_target = "local"', f'default_target = "{target}"')
        .replace("[targets.local", f"[targets.{target}")
    )
    ctx = ReleaseContext.create("2.2.4-1", load_settings(config), console=Console(stderr=True, quiet=True))
    bases = {
        p: ensure_debian_base(ctx.docker, "bullseye", log=lambda _: None, platform=p) for p in release_platforms(ctx)
    }
    for flavour in flavours(ctx):
        flavour.dockerfile(ctx.images_dir).parent.mkdir(parents=True, exist_ok=True)
        flavour.dockerfile(ctx.images_dir).write_text(
            "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG AC_VERSION\nLABEL bench.scratch=$AC_VERSION\n"
        )
        flavour.dockerfile(ctx.images_dir, ONBUILD).parent.mkdir(parents=True, exist_ok=True)
        flavour.dockerfile(ctx.images_dir, ONBUILD).write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "scratch"], check=True)
    wheels = {}
    for name in ("apache_airflow-2.2.4+astro.1-py3-none-any.whl", "astronomer_certified-2.2.4.post1-py3-none-any.whl"):
        wheels[name] = tmp_path / name
        wheels[name].write_bytes(name.encode())
    # The release as it stands: its images of every platform under its references (here: the platform's base image),
    # its manifest.
    planted = []
    for platform, base in bases.items():
        for ref in (local_ref(ctx, flavour, variant, platform) for flavour in flavours(ctx) for variant in VARIANTS):
            ctx.docker("tag", base, ref, capture=True)
            planted.append(ref)
    ctx.dist.mkdir(parents=True)
    (ctx.dist / "release.json").write_text('{"version": "2.2.4-1", "stages": {}}\n')
    yield ctx, wheels, planted
    for ref in planted:
        ctx.docker("image", "rm", ref, capture=True, check=False)
    bench.remove_bench_images(ctx)


def _platform(ctx: ReleaseContext, image: str) -> str:
    inspected = ctx.docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image, capture=True)
    return inspected.stdout.decode().strip()


def _state(ctx: ReleaseContext, refs: list[str]) -> dict[str, str | None]:
    return {ref: ctx.docker.image_id(ref) for ref in refs} | {"manifest": (ctx.dist / "release.json").read_text()}


def test_the_benchmark_builds_under_its_own_names_and_leaves_the_release_alone(scratch):
    ctx, wheels, planted = scratch
    before = _state(ctx, planted)
    assert all(before.values())
    first, *others = release_platforms(ctx)
    assert others, "the line builds one platform: the benchmark's other platforms go untested"
    labels = {"cold": first} | {f"cold-{platform.architecture}": platform for platform in others}  # as run_bench
    figures = {label: bench._ours(ctx, flavours(ctx), wheels, label, platform) for label, platform in labels.items()}
    expected = {  # each image of the platform it was built for
        f"{bench.BENCH_REPOSITORY}:{label}-{flavour.name}-{variant}": str(platform)
        for label, platform in labels.items()
        for flavour in flavours(ctx)
        for variant in VARIANTS
    }
    made = bench.bench_images(ctx)
    assert sorted(made) == sorted(expected)
    assert {name: _platform(ctx, name) for name in made} == expected
    assert all(figures[label][f.name][v]["size"] > 0 for label in labels for f in flavours(ctx) for v in VARIANTS)
    bench.remove_bench_images(ctx)
    assert bench.bench_images(ctx) == []
    assert _state(ctx, planted) == before
    assert sorted(p.name for p in ctx.dist.iterdir()) == ["release.json"]
