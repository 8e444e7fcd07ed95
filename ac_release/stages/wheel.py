"""Stage `wheel`: the patched `apache-airflow` wheel and sdist (the line build) and the product's meta wheel
(`astronomer-certified`, `astro-runtime`).

Built in the line's hermetic build environment from the hash-pinned upstream sdist plus the patch series, with the
line's SOURCE_DATE_EPOCH, so a rebuild gives the same bytes. A line build another product version already made
(AC 2.2.4-1's `2.2.4+astro.1`, for Runtime 4.2.0) is taken from its dist/ with its recorded sha256, never built
again (ac_release/world/line_builds.py). Outputs land in dist/<version>/ only once complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from ac_release.building.buildenv import DOCKERFILE, BuildEnv, ensure_buildenv
from ac_release.building.patches import apply_series
from ac_release.building.reproducible import clamp_tree_mtimes, normalize_sdist
from ac_release.building.sdist import fetch_sdist
from ac_release.building.stamp import stamp_version, write_meta_project
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_bytes, sha256_file
from ac_release.model.names import line_build_names, meta_wheel_name
from ac_release.model.records import Artifact, WheelRecord
from ac_release.stages.steps import Step, open_steps, other_bytes
from ac_release.world.context import ReleaseContext
from ac_release.world.line_builds import line_build_source

NAME = "wheel"
RECIPE = "1"  # bump when this module changes what it builds
WHEEL_CHECK = Path(__file__).parents[1] / "building" / "wheelcheck.sh"


def input_fingerprint(ctx: ReleaseContext) -> str:
    """Everything that decides the bytes of the outputs: same fingerprint, same files."""
    line = ctx.line
    digest = hashlib.sha256()
    parts = [
        RECIPE.encode(),
        str(ctx.version).encode(),
        line.sdist.sha256.encode(),
        line.text.encode(),  # line.toml as the catalog read it
        line.build_requirements_file.read_bytes(),
        DOCKERFILE.read_bytes(),
        (Path(__file__).parents[1] / "building" / "stamp.py").read_bytes(),
        # the meta wheel's own: its project, its title and what it pins (a product version's providers, packages)
        repr((ctx.product.meta_project, ctx.product.title, ctx.line.meta_pins)).encode(),
    ]
    parts += [p.name.encode() + b"\0" + p.read_bytes() for p in line.patches]
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class LineBuildFile:
    """A file of the line build another release made, taken from there with the sha256 it recorded."""

    source: Path
    sha256: str


def decide(ctx: ReleaseContext, earlier: Collection[str] = ()) -> list[Step[LineBuildFile | None]]:
    """keep what dist/ holds for these inputs; build what is missing or was built from other inputs (a rebuild is
    compared byte for byte when promoted); refuse a recorded artifact whose bytes changed in dist/. The line build
    is reused whole or not at all: only when none of its files is in dist/ and another release holds them all."""
    recorded = ctx.manifest.get(WheelRecord)
    fingerprint = input_fingerprint(ctx)
    source = line_build_source(ctx)
    line_build = line_build_names(ctx.version)
    reusable = source is not None and all(n in source.sha256 and not (ctx.dist / n).exists() for n in line_build)
    steps = []
    for name in ctx.artifact_names:
        path, where = ctx.dist / name, f"dist/{ctx.version}/{name}"
        ours = recorded.sha256(name) if recorded else None
        if actual := other_bytes(path, ours):
            reason = (
                f"sha256 {actual} differs from the recorded {ours}: restore it, or delete dist/{ctx.version} and "
                f"rebuild if it was never published"
            )
            steps.append(Step(NAME, "refuse", where, reason))
        elif ours and path.exists() and recorded.inputs == fingerprint:
            steps.append(Step(NAME, "keep", where, f"sha256 {ours}, built from these inputs"))
        elif ours and path.exists():
            steps.append(Step(NAME, "build", where, "inputs changed since it was built: rebuilt, other bytes refused"))
        elif path.exists():
            steps.append(Step(NAME, "build", where, "present but not recorded: rebuilt and compared byte for byte"))
        elif reusable and name in line_build:
            reason = f"the line build {ctx.version.wheel_version}, made by {source.where}: sha256 {source.sha256[name]}"
            steps.append(Step(NAME, "reuse", where, reason, LineBuildFile(source.dist / name, source.sha256[name])))
        else:
            steps.append(Step(NAME, "build", where, "not built yet"))
    return steps


def act(ctx: ReleaseContext, steps: list[Step[LineBuildFile | None]]) -> WheelRecord | None:
    if not open_steps(steps):
        ctx.log(f"wheel: dist/{ctx.version} already holds the build of these inputs, skipping")
        return ctx.manifest.get(WheelRecord)
    # The build is reproducible: inputs that changed without changing the artifacts (a reformatted recipe) pass,
    # and different artifacts are refused when promoted.
    buildenv = ensure_buildenv(
        ctx.docker,
        ctx.line,
        ctx.target.base_images,
        ctx.settings.extra_ca_bundle,
        ctx.cache,
        ctx.log,
        ctx.catalog.build_packages(ctx.line.build_distro),
    )
    (ctx.cache / "work").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{ctx.version}-wheel-", dir=ctx.cache / "work"))  # one per run
    out = work / "out"
    out.mkdir()
    if reused := [step.payload for step in steps if step.action == "reuse"]:  # decide reuses the line build whole
        airflow_files = _reuse(ctx, reused, out)
    else:
        airflow_files = _build_airflow(ctx, buildenv, work, out)
    meta_wheel = _build_meta(ctx, buildenv, work, out, airflow_files["wheel"])
    files = [airflow_files["wheel"], airflow_files["sdist"], meta_wheel]
    _twine_check(files)
    checks = _install_check(ctx, buildenv, out, airflow_files["wheel"].name, meta_wheel.name)
    record = WheelRecord(
        inputs=input_fingerprint(ctx),
        artifacts=_promote(ctx, files),
        checks=checks,
        buildenv=buildenv.image,
        source_date_epoch=ctx.line.source_date_epoch,
    )
    ctx.manifest.put(record)
    shutil.rmtree(work, ignore_errors=True)
    return record


def _docker_run(
    ctx: ReleaseContext,
    buildenv: BuildEnv,
    mounts: dict[Path, str],
    argv: list[str],
    *,
    network: bool,
    workdir: str | None = None,
) -> str:
    args = [
        "run",
        "--rm",
        f"--user={os.getuid()}:{os.getgid()}",
        "--env=HOME=/tmp",
        f"--env=SOURCE_DATE_EPOCH={ctx.line.source_date_epoch}",
        "--env=PYTHONHASHSEED=0",
    ]
    args += ["--network=bridge", *buildenv.tls_env()] if network else ["--network=none"]
    for host, container in mounts.items():
        args.append(f"--volume={host}:{container}")
    if workdir:
        args.append(f"--workdir={workdir}")
    result = ctx.docker(*args, buildenv.image, *argv, capture=True, check=False)
    if result.returncode != 0:
        log = ctx.cache / "logs" / f"{ctx.version}-{NAME}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(result.stdout + result.stderr)
        raise ReleaseError(
            f"{' '.join(argv[:4])} failed in the build environment (exit {result.returncode}); full output in {log}"
        )
    return result.stdout.decode()


def _build_airflow(ctx: ReleaseContext, buildenv: BuildEnv, work: Path, out: Path) -> dict[str, Path]:
    sdist = fetch_sdist(ctx.line.sdist, ctx.cache)
    with tarfile.open(sdist) as archive:
        archive.extractall(work / "extract", filter="data")
    (tree,) = (work / "extract").iterdir()
    apply_series(ctx.line.patches, tree)
    stamp_version(tree, ctx.line.airflow, ctx.version.wheel_version)
    clamp_tree_mtimes(tree, ctx.line.source_date_epoch)
    ctx.log(f"wheel: building apache-airflow {ctx.version.wheel_version} in {buildenv.image}")
    _docker_run(
        ctx,
        buildenv,
        {tree: "/src", out: "/out"},
        [
            "python",
            "-m",
            "build",
            "--no-isolation",
            "--skip-dependency-check",
            "--sdist",
            "--wheel",
            "--outdir",
            "/out",
            ".",
        ],
        network=False,
        workdir="/src",
    )
    wheel = _one(out, "apache_airflow-*.whl")
    sdist_out = _one(out, "apache-airflow-*.tar.gz")
    sdist_out.write_bytes(normalize_sdist(sdist_out, ctx.line.source_date_epoch))
    return {"wheel": wheel, "sdist": sdist_out}


def _reuse(ctx: ReleaseContext, files: list[LineBuildFile], out: Path) -> dict[str, Path]:
    """The line build as the release that made it recorded it: copied, and refused if its bytes changed since the
    decision (another process wrote there)."""
    for file in files:
        shutil.copy(file.source, out / file.source.name)
        if actual := other_bytes(out / file.source.name, file.sha256):
            raise ReleaseError(
                f"{file.source} has sha256 {actual}, its release recorded {file.sha256}: restore it, or rebuild"
            )
    made_by = sorted(file.source for file in files)[0].parent.name
    ctx.log(f"wheel: apache-airflow {ctx.version.wheel_version} is the line build {made_by} made")
    return {"wheel": _one(out, "apache_airflow-*.whl"), "sdist": _one(out, "apache-airflow-*.tar.gz")}


def _build_meta(ctx: ReleaseContext, buildenv: BuildEnv, work: Path, out: Path, airflow_wheel: Path) -> Path:
    metadata = _wheel_metadata(airflow_wheel)
    project = work / "meta"
    write_meta_project(
        project,
        project=ctx.product.meta_project,
        title=ctx.product.title,
        product_version=str(ctx.version),
        airflow=ctx.line.airflow,
        wheel_version=ctx.version.wheel_version,
        meta_version=ctx.version.meta_version,
        pins=list(ctx.line.meta_pins),
        extras=metadata.get_all("Provides-Extra") or [],
        requires_python=metadata["Requires-Python"] or "",
    )
    clamp_tree_mtimes(project, ctx.line.source_date_epoch)
    _docker_run(
        ctx,
        buildenv,
        {project: "/src", out: "/out"},
        ["python", "-m", "build", "--no-isolation", "--skip-dependency-check", "--wheel", "--outdir", "/out", "."],
        network=False,
        workdir="/src",
    )
    return _one(out, meta_wheel_name(ctx.version, ctx.product.meta_project))


def _wheel_metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(name).decode())


def _one(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        raise ReleaseError(f"expected one {pattern} in the build output, found {[p.name for p in found]}")
    return found[0]


def _twine_check(files: list[Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, files)], capture_output=True, text=True
    )
    if result.returncode != 0:
        problems = [line for line in result.stdout.splitlines() if "ERROR" in line or "WARNING" in line]
        raise ReleaseError(f"twine check --strict failed: {problems[0] if problems else result.stdout.strip()}")


def _install_check(ctx: ReleaseContext, buildenv: BuildEnv, out: Path, wheel: str, meta: str) -> dict:
    """Install each wheel into a fresh venv of the line's Python; `airflow version` and every patch check must pass."""
    ctx.log("wheel: installing the wheels into fresh venvs and running the patch checks")
    (ctx.cache / "uv").mkdir(parents=True, exist_ok=True)
    output = _docker_run(
        ctx,
        buildenv,
        {
            ctx.line.directory: "/line:ro",
            ctx.line.lock_file: "/lock/constraints.txt:ro",
            ctx.cache: "/cache",
            WHEEL_CHECK: "/wheelcheck.sh:ro",
        },
        [
            "sh",
            "-c",
            'UV_CACHE_DIR=/cache/uv UV_PYTHON_DOWNLOADS=never exec sh /wheelcheck.sh "$@"',
            "check",
            buildenv.python,
            f"/cache/{out.relative_to(ctx.cache)}",
            wheel,
            f"{ctx.product.meta_project}=={ctx.version.meta_version}",
            meta,
        ],
        network=True,
    )
    versions, patches = {}, {}
    for record in output.splitlines():
        kind, _, rest = record.partition(" ")
        if kind == "airflow-version":
            venv, _, value = rest.partition(" ")
            versions[venv] = value
        elif kind == "patch-check":
            venv, name, status, message = (rest.split(" ", 3) + [""])[:4]
            if status != "0":
                raise ReleaseError(
                    f"patch check {name} failed in the {venv} venv: {message}; the patch is not in the built wheel"
                )
            patches.setdefault(name, message)
    expected = {"wheel": ctx.version.wheel_version, "meta": ctx.version.wheel_version}
    if versions != expected:
        raise ReleaseError(f"`airflow version` in fresh venvs printed {versions}, expected {expected}")
    missing = {p.name.replace(".patch", ".check.py") for p in ctx.line.patches} - set(patches)
    if missing:
        raise ReleaseError(f"patches without a check that ran: {sorted(missing)}; add patches/<name>.check.py")
    return {"airflow_version": versions, "patches": patches}


def _promote(ctx: ReleaseContext, files: list[Path]) -> dict:
    """Move outputs into dist/: identical bytes already there are kept, different bytes refuse the whole set."""
    digests = {path: sha256_file(path) for path in files}
    for path, digest in digests.items():
        if existing := other_bytes(ctx.dist / path.name, digest):
            raise ReleaseError(
                f"dist/{ctx.version}/{path.name} exists with other bytes than this build ({existing}, "
                f"rebuilt {digest}): the inputs changed since {ctx.version} was built, and a version's bytes never "
                f"change; release the change as the next build number, or delete dist/{ctx.version} if it was never "
                f"published"
            )
    for path in files:
        if not (ctx.dist / path.name).exists():
            atomic_write_bytes(ctx.dist / path.name, path.read_bytes())
    return {path.name: Artifact(digest, path.stat().st_size) for path, digest in digests.items()}
