"""Stage `images`: every flavour of the release, built FROM the wheels the publish stage put on the index.

The wheels are downloaded from the target's index, must carry the manifest's sha256 and pass the verification
gate against their bundles, and are then handed to the build, which checks their sha256 again before installing.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from ac_release.baseimage import ensure_base
from ac_release.context import ReleaseContext, ensure_local_services
from ac_release.errors import ReleaseError
from ac_release.fsutil import atomic_write_bytes, sha256_file
from ac_release.images.generate import drift
from ac_release.images.matrix import ONBUILD, Flavour, flavours_of
from ac_release.index import download
from ac_release.signing import bundle_name, verify_all
from ac_release.stages.publish import index_state

NAME = "images"
INCLUDE = ("entrypoint", "clean-airflow-logs", "install-packages", "install-requirements")


def images_dir(ctx: ReleaseContext) -> Path:
    return ctx.settings.root / "images"


def fetch_published_wheels(ctx: ReleaseContext) -> dict[str, Path]:
    """The release's wheels as the index serves them, checked against the manifest and their bundles."""
    built = ctx.manifest.stage("wheel")
    published = (ctx.manifest.stage("publish") or {}).get(ctx.target.name)
    if not built or not published:
        raise ReleaseError(f"{ctx.version} is not published to {ctx.target.name}: run `invoke publish {ctx.version}`")
    password = ctx.target.index.password.read()
    on_index = index_state(ctx, password)
    directory = ctx.cache / "images" / str(ctx.version) / "wheels"
    directory.mkdir(parents=True, exist_ok=True)
    wheels = {}
    for name, meta in built["artifacts"].items():
        if not name.endswith(".whl"):
            continue
        if name not in on_index:
            raise ReleaseError(f"{ctx.target.index.url} does not serve {name}: run `invoke publish {ctx.version}`")
        path = directory / name
        if not path.exists() or sha256_file(path) != on_index[name].sha256:
            atomic_write_bytes(path, download(ctx.target.index, password, on_index[name]))
        if (actual := sha256_file(path)) != meta["sha256"]:
            raise ReleaseError(
                f"{ctx.target.index.url} serves {name} with sha256 {actual}, the release built {meta['sha256']}: "
                f"refusing to build images from other bytes"
            )
        shutil.copy(ctx.dist / bundle_name(name), directory / bundle_name(name))
        wheels[name] = path
    verify_all(ctx, list(wheels.values()), directory)
    return wheels


def _wheel(wheels: dict[str, Path], prefix: str) -> Path:
    (path,) = [p for name, p in wheels.items() if name.startswith(prefix)]
    return path


def _context(ctx: ReleaseContext, flavour: Flavour, wheels: dict[str, Path]) -> Path:
    """The build context of a flavour: its generated Dockerfiles, the image scripts, the lock, the wheels."""
    (ctx.cache / "work").mkdir(parents=True, exist_ok=True)
    context = Path(tempfile.mkdtemp(prefix=f"{ctx.version}-{flavour.name}-", dir=ctx.cache / "work"))
    (context / "include").mkdir()
    (context / "wheels").mkdir()
    shutil.copy(flavour.dockerfile(images_dir(ctx)), context / "Dockerfile")
    shutil.copy(flavour.dockerfile(images_dir(ctx), ONBUILD), context / "Dockerfile.onbuild")
    for script in INCLUDE:
        shutil.copy2(images_dir(ctx) / "include" / script, context / "include" / script)
    shutil.copy(ctx.line.lock_file, context / "constraints.txt")
    shutil.copy(ctx.line.build_requirements_file, context / "build-requirements.txt")
    for path in wheels.values():
        shutil.copy(path, context / "wheels" / path.name)
    return context


def _fingerprint(context: Path, base_id: str, build_args: dict[str, str]) -> str:
    digest = hashlib.sha256(base_id.encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    digest.update(repr(sorted(build_args.items())).encode())
    return digest.hexdigest()


def _build_flavour(ctx: ReleaseContext, flavour: Flavour, wheels: dict[str, Path]) -> dict:
    base = ensure_base(ctx.docker, ctx.target.base_images, flavour.distro, flavour.python, ctx.log)
    airflow_wheel, meta_wheel = _wheel(wheels, "apache_airflow-"), _wheel(wheels, "astronomer_certified-")
    built = ctx.manifest.stage("wheel")["artifacts"]  # the pins come from the manifest, never from the files
    build_args = {
        "BASE_IMAGE": base,
        "AC_VERSION": str(ctx.version),
        "AIRFLOW_VERSION": ctx.version.wheel_version,
        "AIRFLOW_WHEEL": airflow_wheel.name,
        "AIRFLOW_WHEEL_SHA256": built[airflow_wheel.name]["sha256"],
        "META_WHEEL": meta_wheel.name,
        "META_WHEEL_SHA256": built[meta_wheel.name]["sha256"],
        "EXTRAS": ",".join(ctx.line.all_extras),
    }
    context = _context(ctx, flavour, wheels)
    try:
        return _build_in(ctx, flavour, context, base, build_args)
    finally:
        shutil.rmtree(context, ignore_errors=True)


def _build_in(ctx: ReleaseContext, flavour: Flavour, context: Path, base: str, build_args: dict[str, str]) -> dict:
    fingerprint = _fingerprint(context, ctx.docker.image_id(base) or base, build_args)
    recorded = (ctx.manifest.stage(NAME) or {}).get(flavour.name)
    refs = {variant: flavour.local_ref(ctx.version, variant) for variant in ("base", ONBUILD)}
    if (
        recorded
        and recorded["fingerprint"] == fingerprint
        and all(ctx.docker.image_id(refs[v]) == recorded[v]["image"] for v in refs)
    ):
        ctx.log(f"images: {flavour.name} already built from these inputs, skipping")
        return recorded
    secret = ctx.settings.extra_ca_bundle
    secrets = [f"id=build-ca,src={secret}"] if secret and secret.is_file() else []
    ctx.log(f"images: building {refs['base']}")
    started = time.monotonic()
    with ctx.view.row(refs["base"], level=1):
        base_image = ctx.docker.build(
            context,
            refs["base"],
            build_args=build_args,
            secrets=secrets,
            log=ctx.cache / "logs" / f"{ctx.version}-images-{flavour.name}.log",
        )
    base_seconds = time.monotonic() - started
    ctx.log(f"images: building {refs[ONBUILD]}")
    started = time.monotonic()
    with ctx.view.row(refs[ONBUILD], level=1):
        onbuild_image = ctx.docker.build(
            context,
            refs[ONBUILD],
            dockerfile=context / "Dockerfile.onbuild",
            build_args={"BASE_IMAGE": refs["base"]},
            log=ctx.cache / "logs" / f"{ctx.version}-images-{flavour.name}-onbuild.log",
        )
    onbuild_seconds = time.monotonic() - started
    return {
        "fingerprint": fingerprint,
        "base_image": base,
        "base": {
            "image": base_image,
            "ref": refs["base"],
            "tags": flavour.tags(ctx.version),
            "floating_tags": flavour.floating_tags(ctx.version),
            "size": ctx.docker.image_size(base_image),
            "seconds": round(base_seconds, 1),
        },
        ONBUILD: {
            "image": onbuild_image,
            "ref": refs[ONBUILD],
            "tags": flavour.tags(ctx.version, ONBUILD),
            "floating_tags": flavour.floating_tags(ctx.version, ONBUILD),
            "size": ctx.docker.image_size(onbuild_image),
            "seconds": round(onbuild_seconds, 1),
        },
    }


def run(ctx: ReleaseContext) -> dict:
    if problems := drift(images_dir(ctx)):
        raise ReleaseError(f"generated Dockerfiles are out of date ({problems[0]}): run `invoke images.generate`")
    ensure_local_services(ctx)
    wheels = fetch_published_wheels(ctx)
    results = dict(ctx.manifest.stage(NAME) or {})
    for flavour in flavours_of(images_dir(ctx), ctx.line.airflow):
        results[flavour.name] = _build_flavour(ctx, flavour, wheels)
        ctx.manifest.record(NAME, results)
    return results
