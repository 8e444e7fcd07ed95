"""The whole-release benchmark (issue 15): its scratch target shares nothing with a real one, its figures print whole
in a log and on a terminal, and the `time:` line it reads is the one every run writes."""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path

from rich.console import Console

from ac_release.bench import release as bench_release
from ac_release.bench.release import ReleaseFigures, ReleaseRun
from ac_release.model.config import load_settings
from ac_release.pipeline.stage_times import parse_time_line, time_line
from tests.helpers import REPO

STAGES = {"preflight": 2.1, "wheel": 98.4, "sign": 4.0, "publish": 3.2, "images": 80.5, "test": 120.0, "push": 30.2}
FIGURES = ReleaseFigures(
    version="2.2.4-1",
    baseline_seconds=263.4,
    cold=ReleaseRun(seconds=345.6, stages=STAGES, peak_rss=412_345_678),
    warm=ReleaseRun(seconds=17.2, stages={"preflight": 2.0}, peak_rss=98_000_000),
    uploaded_bytes=23_456_789,
    pushed_bytes=456_789_012,
)


def test_the_time_line_a_run_writes_is_the_one_the_benchmark_reads():
    output = f"artifact x sha256 y\n{time_line(STAGES)}\nmanifest: dist/2.2.4-1/release.json\n"
    assert parse_time_line(output) == STAGES


def test_a_run_without_a_time_line_is_an_error_not_zero_seconds():
    try:
        parse_time_line("error: refused\n")
    except ValueError as exc:
        assert "no `time:` line" in str(exc)
    else:
        raise AssertionError("parsed a run that printed no summary")


def test_the_scratch_target_shares_no_name_port_or_directory_with_the_repository_config(tmp_path):
    real = load_settings(REPO / "release.toml")
    name = f"{bench_release.SCRATCH_PREFIX}0123abcd"
    config = bench_release.scratch_config(real, tmp_path, name, "debootstrap")
    scratch = load_settings(config)
    assert list(scratch.targets) == [name] and name not in tomllib.loads((REPO / "release.toml").read_text())["targets"]
    assert scratch.root == real.root  # this repository's lines and images
    own = (scratch.dist_dir, scratch.cache_dir, scratch.services.dir)
    assert all(path.is_relative_to(tmp_path) for path in own)
    real_ports = {real.services.pypi_port, real.services.sigstore_port, real.services.registry_port}
    scratch_ports = {scratch.services.pypi_port, scratch.services.sigstore_port, scratch.services.registry_port}
    assert len(scratch_ports) == 3 and not scratch_ports & real_ports
    target = scratch.target(None)
    assert target.registries[0].startswith(f"127.0.0.1:{scratch.services.registry_port}/")
    assert Path(target.git_remote).is_relative_to(tmp_path)


def test_a_finished_command_reports_its_own_peak_memory(tmp_path):
    """os.wait4 of the child: a real `invoke` run, measured alone."""
    config = bench_release.scratch_config(load_settings(REPO / "release.toml"), tmp_path, "bench-x", "debootstrap")
    run = bench_release._invoke(REPO, config, tmp_path / "log", "lines")
    assert run is not None and run.seconds > 0 and 10e6 < run.peak_rss < 2e9
    assert bench_release._invoke(REPO, config, tmp_path / "log", "release", "9.9.9-1") is None  # refused: failed


def _output(terminal: bool) -> str:
    out = io.StringIO()
    bench_release.print_release(
        Console(file=out, force_terminal=terminal, width=80, color_system=None), FIGURES, REPO / "x.json"
    )
    return out.getvalue()


def test_a_log_gets_every_figure_whole():
    lines = _output(terminal=False).splitlines()
    assert lines[0].startswith("whole release 2.2.4-1, cold, on a scratch target")
    assert "release stage wheel: 98.4 s" in lines
    assert "release total: 345.6 s = 1.31x the baseline image build of this run (263.4 s)" in lines
    assert "release re-run (everything done): 17.2 s = 0.065x" in lines
    assert "uploaded to the index: 23.5 MB (23456789 bytes)" in lines
    assert "pushed to the registry: 456.8 MB (456789012 bytes)" in lines
    assert "peak memory (largest process of the release, the pipeline or a tool it ran): 412.3 MB" in lines
    assert lines[-1] == f"figures as JSON: {REPO / 'x.json'}"


def test_a_terminal_gets_the_table_and_the_same_lines():
    out = _output(terminal=True)
    assert "┏━" in out and "release total" in out
    for line in bench_release.release_lines(FIGURES):
        assert line in out.splitlines()


def test_the_json_holds_every_figure_of_the_table():
    data = json.loads(json.dumps(FIGURES.as_json()))
    assert data["cold"]["stages"] == STAGES and data["cold"]["seconds"] == 345.6
    assert data["ratio"] == 1.312 and data["baseline_seconds"] == 263.4
    assert data["warm"]["seconds"] == 17.2
    assert (data["uploaded_bytes"], data["pushed_bytes"], data["cold"]["peak_rss"]) == (23456789, 456789012, 412345678)
