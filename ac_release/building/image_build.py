"""Build one flavour's images (base, then onbuild FROM it) from the generated Dockerfiles, the image scripts, the
lock and the release's wheels, under image references the caller chooses.

Shared by the images stage (the release's names) and the benchmark (names of its own). `fingerprint` covers every
input of the build without needing the wheel files: they are pinned by their sha256 in the build arguments.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from ac_release.building.baseimage import base_digest, base_reference, ensure_base
from ac_release.clients.git import git
from ac_release.clients.platforms import emulated, native_platform
from ac_release.core.fsutil import sha256_file
from ac_release.model.flavours import AMD64, ONBUILD, VARIANTS, Flavour, Platform
from ac_release.model.names import run_log_stem
from ac_release.world.context import ReleaseContext

INCLUDE = ("entrypoint", "clean-airflow-logs", "install-packages", "install-requirements")
# org.opencontainers.image.source: where the images' recipe lives (AC's image repository). A constant, not read from
# the checkout's remote, so that the same commit gives the same image on every machine.
SOURCE = "https://github.com/astronomer/ap-airflow"
# The Dockerfile's stages that take nothing of a release's own (no wheel, version or label): they can be built into
# the build cache before the wheels exist, and the release's build then finds them there (prepare_flavour).
PREPARED_STAGES = ("runtime", "toolchain")


def inputs(ctx: ReleaseContext, flavour: Flavour) -> dict[str, Path]:
    """Every file of the build context but the wheels, by its name in the context."""
    files = {
        "Dockerfile": flavour.dockerfile(ctx.images_dir),
        "Dockerfile.onbuild": flavour.dockerfile(ctx.images_dir, ONBUILD),
        "constraints.txt": ctx.line.lock_file,  # the product version's lock (AC's is the line's)
        "line-constraints.txt": ctx.line.line_lock_file,  # the line's: what every product of the line starts from
        "build-requirements.txt": ctx.line.build_requirements_file,
    }
    files |= {f"include/{script}": ctx.images_dir / "include" / script for script in INCLUDE}
    return files


def build_args(ctx: ReleaseContext, flavour: Flavour, base: str, pins: dict[str, str]) -> dict[str, str]:
    """The build arguments: the base image (and the base of this machine's own platform, where the venv's bytecode
    is compiled) and the wheels pinned by the sha256 the wheel stage recorded."""
    (airflow,) = [name for name in pins if name.startswith("apache_airflow-") and name.endswith(".whl")]
    (meta,) = [name for name in pins if name.startswith(f"{ctx.product.meta_distribution}-")]
    native = base_reference(ctx.target.base_images, flavour.distro, flavour.python, native_platform())
    return {
        "BASE_IMAGE": base,
        "BUILD_BASE_IMAGE": native,
        "AC_VERSION": str(ctx.version),
        "AIRFLOW_VERSION": ctx.version.wheel_version,
        "AIRFLOW_WHEEL": airflow,
        "AIRFLOW_WHEEL_SHA256": pins[airflow],
        "META_PROJECT": ctx.product.meta_project,
        "META_WHEEL": meta,
        "META_WHEEL_SHA256": pins[meta],
        # OCI labels: the commit built from, and the line's SOURCE_DATE_EPOCH rather than the time of the build
        "OCI_SOURCE": SOURCE,
        "OCI_REVISION": revision(ctx.settings.root),
        "OCI_CREATED": created(ctx.line.source_date_epoch),
        "IMAGE_TITLE": f"{ctx.product.title} {ctx.line.airflow} ({flavour.distro}, Python {flavour.python})",
        "UI_FOOTER": ctx.product.footer(ctx.version),
    }


def base_labels(ctx: ReleaseContext, base: str) -> dict[str, str]:
    """The build arguments of the OCI base-image labels, read once the base exists: the image records its base,
    so that `invoke verify` needs nothing of this machine (a debootstrap base is never pushed). Not in `build_args`:
    the fingerprint already covers the base (its reference and image id)."""
    return {"OCI_BASE_NAME": base.split("@")[0], "OCI_BASE_DIGEST": base_digest(base, ctx.world.image_id(base))}


def revision(root: Path) -> str:
    """The commit the images are built from; empty for a tree outside git (a release always runs in a checkout:
    its preflight demands a clean one)."""
    return git(root, "rev-parse", "--verify", "--quiet", "HEAD", check=False)


def created(source_date_epoch: int) -> str:
    """RFC 3339 in UTC, as org.opencontainers.image.created wants it."""
    return dt.datetime.fromtimestamp(source_date_epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Not an input of what the image holds: a later commit that changes none of the inputs keeps the images built
# before it (their revision label names the commit that built them).
NOT_INPUTS = ("OCI_REVISION",)


def fingerprint(ctx: ReleaseContext, flavour: Flavour, base_id: str, args: dict[str, str], platform: Platform) -> str:
    digest = hashlib.sha256(f"{platform}\0{base_id}".encode())
    for name, path in sorted(inputs(ctx, flavour).items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    digest.update(repr(sorted((k, v) for k, v in args.items() if k not in NOT_INPUTS)).encode())
    return digest.hexdigest()


@contextmanager
def _context(ctx: ReleaseContext, flavour: Flavour, wheels: list[Path]) -> Iterator[Path]:
    """A build context of the flavour's inputs and `wheels`, removed afterwards."""
    (ctx.cache / "work").mkdir(parents=True, exist_ok=True)
    context = Path(tempfile.mkdtemp(prefix=f"{ctx.version}-{flavour.name}-", dir=ctx.cache / "work"))
    try:
        for name, path in inputs(ctx, flavour).items():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, context / name)
        (context / "wheels").mkdir()
        for wheel in wheels:
            shutil.copy(wheel, context / "wheels" / wheel.name)
        yield context
    finally:
        shutil.rmtree(context, ignore_errors=True)


def _secrets(ctx: ReleaseContext) -> list[str]:
    secret = ctx.settings.extra_ca_bundle
    return [f"id=build-ca,src={secret}"] if secret and secret.is_file() else []


def _log(ctx: ReleaseContext, flavour: Flavour, part: str, platform: Platform) -> Path:
    stem = run_log_stem(ctx.version, ctx.target.name, "images", flavour.name, platform.architecture, part)
    return ctx.cache / "logs" / f"{stem}.log"


def ensure_bases(ctx: ReleaseContext, flavour: Flavour, platform: Platform) -> str:
    """The flavour's base of `platform`, and where that platform is emulated the base of this machine's own platform
    too (the build compiles the venv's bytecode there, natively): built or pulled when missing."""
    if emulated(platform):
        ensure_base(ctx.docker, ctx.target.base_images, flavour.distro, flavour.python, ctx.log, native_platform())
    return ensure_base(ctx.docker, ctx.target.base_images, flavour.distro, flavour.python, ctx.log, platform)


def prepare_flavour(ctx: ReleaseContext, flavour: Flavour, base: str, platform: Platform) -> None:
    """Build the flavour's PREPARED_STAGES of `platform` FROM `base` into the build cache, side by side; nothing is
    named."""
    with _context(ctx, flavour, []) as context, ThreadPoolExecutor(max_workers=len(PREPARED_STAGES)) as pool:
        jobs = [
            pool.submit(
                ctx.docker.build_stage,
                context,
                stage,
                build_args={"BASE_IMAGE": base},
                secrets=_secrets(ctx),
                platform=str(platform),
                log=_log(ctx, flavour, stage, platform),
            )
            for stage in PREPARED_STAGES
        ]
        for job in jobs:
            job.result()


def build_flavour(
    ctx: ReleaseContext,
    flavour: Flavour,
    wheels: list[Path],
    args: dict[str, str],
    refs: dict[str, str],
    platform: Platform,
) -> dict[str, tuple[str, float]]:
    """Build `refs["base"]` and `refs["onbuild"]` for `platform`; returns {variant: (image id, seconds)}."""
    built = {}
    with _context(ctx, flavour, wheels) as context:
        for variant, dockerfile, variant_args, extra in (
            ("base", None, args | base_labels(ctx, args["BASE_IMAGE"]), _secrets(ctx)),
            (ONBUILD, context / "Dockerfile.onbuild", {"BASE_IMAGE": refs["base"]}, []),
        ):
            ctx.log(f"images: building {refs[variant]}")
            started = time.monotonic()
            with ctx.view.row(refs[variant], level=1):
                image = ctx.docker.build(
                    context,
                    refs[variant],
                    dockerfile=dockerfile,
                    build_args=variant_args,
                    secrets=extra,
                    platform=str(platform),
                    log=_log(ctx, flavour, variant, platform),
                )
            built[variant] = (image, round(time.monotonic() - started, 1))
    return built


def build_named(
    ctx: ReleaseContext, flavour: Flavour, wheels: dict[str, Path], prefix: str, platform: Platform = AMD64
) -> dict[str, tuple[float, int]]:
    """Build a flavour's images of `platform` as the images stage does (the shared build, the same arguments, the
    wheels pinned by their sha256) under `<prefix>-<flavour>-<variant>`, names of the benchmark's own:
    {variant: (seconds, size)}."""
    pins = {name: sha256_file(path) for name, path in wheels.items()}
    base = ensure_bases(ctx, flavour, platform)
    refs = {variant: f"{prefix}-{flavour.name}-{variant}" for variant in VARIANTS}
    args = build_args(ctx, flavour, base, pins)
    built = build_flavour(ctx, flavour, list(wheels.values()), args, refs, platform)
    return {variant: (seconds, ctx.docker.image_size(image)) for variant, (image, seconds) in built.items()}
