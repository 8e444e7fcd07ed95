"""`nox -s bench`, the whole release: `invoke release` from cold on a scratch target of its own, in the same run as
the baseline image build, so that the release reads as a ratio of it.

Cold means what the image benchmark means: an empty Docker build cache, with the images the machine keeps by the
hash of their inputs present (the Debian bases, the wheel stage's build environment, the test PostgreSQL). The
scratch target also gets an empty cache directory of its own: the sdist is downloaded and the build's uv cache
filled again, as on a new machine.

The scratch target is a configuration of its own in a temporary directory: a target name no release.toml uses,
its own dist/, cache and services directories, and its own index, registry, git remote and Sigstore on free ports.
It releases a clone of the repository's HEAD, so that the release's git tag lands in the clone.
Nothing of a real target's names, records or stores is read or written, and its services, directories and images
are removed at the end. Before that, the floors of its slowest stages are measured on its outputs
(ac_release/bench/floors.py).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ac_release.bench.floors import Floor, above_floors, measure_floors
from ac_release.clients.docker import Docker
from ac_release.core.errors import ReleaseError
from ac_release.model.config import Settings, load_settings
from ac_release.model.names import local_repository
from ac_release.pipeline.stage_times import parse_time_line
from ac_release.services.manager import free_port

SCRATCH_PREFIX = "bench-"


@dataclass(frozen=True)
class ReleaseRun:
    seconds: float  # the whole command, as the release engineer waits for it
    stages: dict[str, float]  # the summary's `time:` line
    peak_rss: int  # bytes: the largest process of the run (the pipeline, or a tool it ran)


@dataclass(frozen=True)
class ReleaseFigures:
    version: str
    baseline_seconds: float  # the baseline image build of this run (every flavour the release builds)
    cold: ReleaseRun
    warm: ReleaseRun  # the same command again: everything is done
    uploaded_bytes: int  # what the scratch index holds: wheels, sdist, attestations
    pushed_bytes: int  # what the scratch registry stores: every layer, config and manifest it was sent
    floors: tuple[Floor, ...] = ()  # ac_release/bench/floors.py

    @property
    def ratio(self) -> float:
        return self.cold.seconds / self.baseline_seconds

    def as_json(self) -> dict:
        return asdict(self) | {"ratio": round(self.ratio, 3)}


def scratch_config(settings: Settings, directory: Path, name: str, base_images: str) -> Path:
    """A release.toml for the scratch target `name`: this repository's lines and images, everything else its own."""
    services = directory / "services"
    extra_ca = f'extra_ca_bundle = "{settings.extra_ca_bundle}"\n' if settings.extra_ca_bundle else ""
    path = directory / "release.toml"
    path.write_text(
        f'root = "{settings.root}"\n'
        f'default_target = "{name}"\n'
        f'dist_dir = "{directory / "dist"}"\n'
        f'cache_dir = "{directory / "cache"}"\n'
        f"{extra_ca}"
        f'docker = "{settings.docker}"\n'
        "\n[services]\n"
        f'dir = "{services}"\n'
        'host = "127.0.0.1"\n'
        f"pypi_port = {free_port()}\n"
        f"sigstore_port = {free_port()}\n"
        f"registry_port = {free_port()}\n"
        f"\n[targets.{name}]\n"
        "local_services = true\n"
        f'base_images = "{base_images}"\n'
        f"\n[targets.{name}.signing]\n"
        'instance = "local"\n'
        'identity = "release@ac-release.local"\n'
        'issuer = "https://oidc.ac-release.local"\n'
    )
    return path


def _invoke(root: Path, config: Path, log: Path, *args: str) -> ReleaseRun | None:
    """`invoke <args>` with the scratch config, its output in `log`; None when it failed. os.wait4 gives the
    child's own resource use: the peak is of this run alone, not of the benchmark's earlier builds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AC_RELEASE_")} | {"AC_RELEASE_CONFIG": str(config)}
    started = time.monotonic()
    with open(log, "wb") as output:
        child = subprocess.Popen(
            [sys.executable, "-m", "invoke", "--search-root", str(root), *args],
            cwd=root,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    if child.returncode != 0:
        return None
    text = log.read_text(errors="replace")
    return ReleaseRun(round(seconds, 1), parse_time_line(text) if args[0] == "release" else {}, usage.ru_maxrss * 1024)


def _bytes_under(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file() and not path.is_symlink())


def measure_release(
    settings: Settings, docker: Docker, version: str, base_images: str, baseline: float, log
) -> ReleaseFigures:
    """The whole release of `version`, cold then again, on a scratch target; removed afterwards."""
    name = f"{SCRATCH_PREFIX}{secrets.token_hex(4)}"
    logs = settings.cache_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cold_log, warm_log = logs / "bench-release.log", logs / "bench-release-again.log"
    with tempfile.TemporaryDirectory(prefix="ac-bench-release-") as tmp:
        directory = Path(tmp)
        # A clone of the repository's HEAD: the release's git tag lands in it, never in the repository itself.
        clone = directory / "repo"
        subprocess.run(["git", "clone", "--quiet", str(settings.root), str(clone)], check=True)
        config = scratch_config(replace(settings, root=clone), directory, name, base_images)
        try:
            log(f"bench: invoke release {version} on the scratch target {name} (log: {cold_log})")
            cold = _invoke(clone, config, cold_log, "release", version)
            warm = cold and _invoke(clone, config, warm_log, "release", version)
            if not warm:
                kept = logs / name  # the scratch directory goes: its test sessions' logs are kept here
                if (directory / "cache" / "logs").is_dir():
                    shutil.copytree(directory / "cache" / "logs", kept, dirs_exist_ok=True)
                log_file = warm_log if cold else cold_log
                raise ReleaseError(f"the benchmark's release of {version} failed: see {log_file} and {kept}")
            release_log = cold_log.read_text(errors="replace")
            floors = tuple(measure_floors(load_settings(config), version, name, release_log))  # its registry still up
            services = directory / "services"
            uploaded = _bytes_under(services / "pypi" / "packages")
            pushed = _bytes_under(services / "registry" / "data")
        finally:
            _invoke(clone, config, logs / "bench-release-down.log", "services.down")
            remove_scratch_images(docker, name)
    return ReleaseFigures(version, round(baseline, 1), cold, warm, uploaded, pushed, floors)


def remove_scratch_images(docker: Docker, name: str) -> None:
    every_product = local_repository(name, "*")  # a reference filter's pattern: the repositories of every product
    listed = docker(
        "image", "ls", "--filter", f"reference={every_product}", "--format", "{{.Repository}}:{{.Tag}}", capture=True
    ).stdout
    for reference in listed.decode().split():
        docker("image", "rm", reference, capture=True, check=False)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def release_lines(figures: ReleaseFigures) -> list[str]:
    """Every figure as a plain line: whole values, whatever the width of the terminal or log."""
    cold, warm = figures.cold, figures.warm
    lines = [f"release stage {stage}: {seconds:.1f} s" for stage, seconds in cold.stages.items()]
    lines += [
        f"release total: {cold.seconds:.1f} s = {figures.ratio:.2f}x the baseline image build of this run "
        f"({figures.baseline_seconds:.1f} s)",
        f"release re-run (everything done): {warm.seconds:.1f} s = {warm.seconds / figures.baseline_seconds:.3f}x",
        f"uploaded to the index: {_mb(figures.uploaded_bytes)} ({figures.uploaded_bytes} bytes)",
        f"pushed to the registry: {_mb(figures.pushed_bytes)} ({figures.pushed_bytes} bytes)",
        f"peak memory (largest process of the release, the pipeline or a tool it ran): {_mb(cold.peak_rss)}",
    ]
    lines += [
        f"floor of stage {f.stage}: {f.seconds:.1f} s of its {cold.stages.get(f.stage, 0):.1f} s: {f.what}"
        for f in figures.floors
    ]
    if figures.floors:
        floor, above = above_floors(cold.stages, list(figures.floors))
        lines.append(
            f"sum of the floors (stages without one counted whole): {floor:.1f} s = "
            f"{floor / figures.baseline_seconds:.2f}x the baseline; the stages are {above:.1f} s above it"
        )
    return lines


def _table(title: str, figures: ReleaseFigures) -> Table:
    table = Table(title=title)
    table.add_column("what")
    table.add_column("seconds", justify="right")
    table.add_column("x baseline", justify="right")
    base = figures.baseline_seconds
    for stage, seconds in figures.cold.stages.items():
        table.add_row(f"stage {stage}", f"{seconds:.1f}", f"{seconds / base:.3f}")
    table.add_row("[bold]release total[/bold]", f"{figures.cold.seconds:.1f}", f"[bold]{figures.ratio:.2f}[/bold]")
    table.add_row("baseline image build", f"{base:.1f}", "1.00")
    table.add_row("re-run", f"{figures.warm.seconds:.1f}", f"{figures.warm.seconds / base:.3f}")
    table.add_row("uploaded", _mb(figures.uploaded_bytes), "")
    table.add_row("pushed", _mb(figures.pushed_bytes), "")
    table.add_row("peak memory", _mb(figures.cold.peak_rss), "")
    for floor in figures.floors:
        table.add_row(f"floor of {floor.stage}: {floor.what}", f"{floor.seconds:.1f}", f"{floor.seconds / base:.3f}")
    if figures.floors:
        floor, above = above_floors(figures.cold.stages, list(figures.floors))
        table.add_row("sum of the floors (other stages whole)", f"{floor:.1f}", f"{floor / base:.2f}")
        table.add_row("stages above the floors", f"{above:.1f}", "")
    return table


def print_release(console: Console, figures: ReleaseFigures, json_path: Path) -> None:
    """The table on a terminal, then the plain lines (on a terminal too: what a pasted run shows)."""
    title = f"whole release {figures.version}, cold, on a scratch target (ratios against the baseline of this run)"
    if console.is_terminal:
        console.print(_table(title, figures))
    else:
        console.print(title, soft_wrap=True, highlight=False)
    for line in release_lines(figures):
        console.print(line, soft_wrap=True, highlight=False)
    console.print(f"figures as JSON: {json_path}", soft_wrap=True, highlight=False)
