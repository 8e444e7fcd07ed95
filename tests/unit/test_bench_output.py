"""The benchmark's figures in a log are whole (issue 10, item 19): rich cuts a table to 80 columns when it cannot
know the width, so a log gets plain lines; a terminal keeps the table."""

from __future__ import annotations

import ast
import io
from types import SimpleNamespace

from rich.console import Console

from ac_release.bench import main as bench
from tests.helpers import REPO

FLAVOURS = [SimpleNamespace(name="bullseye"), SimpleNamespace(name="bookworm-python3.11-with-a-long-name")]
FIGURES = {
    "baseline": {"bullseye": (431.46, 1_071_234_567), "bookworm-python3.11-with-a-long-name": (447.0, 1_234_567_890)},
    "cold": {
        name: {"base": {"seconds": 203.4, "size": 905_123_456}, "onbuild": {"seconds": 1.7, "size": 905_123_999}}
        for name in ("bullseye", "bookworm-python3.11-with-a-long-name")
    },
    "warm": {
        name: {"base": {"seconds": 2.3, "size": 905_123_456}, "onbuild": {"seconds": 0.4, "size": 905_123_999}}
        for name in ("bullseye", "bookworm-python3.11-with-a-long-name")
    },
}
TITLE = "image build benchmark, AC 2.2.4-1 (ratios against the baseline of this run)"


def _output(terminal: bool) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=80, color_system=None)
    bench._print(console, TITLE, FLAVOURS, FIGURES)
    return out.getvalue()


def test_a_log_gets_every_figure_whole_on_its_own_line():
    lines = _output(terminal=False).splitlines()
    expected = bench.figure_lines(FLAVOURS, FIGURES)
    assert len(expected) == 3 and any(len(line) > 80 for line in expected)
    assert lines == [TITLE, *expected]
    assert "…" not in "".join(lines)
    assert (
        "figure bookworm-python3.11-with-a-long-name: baseline cold 447 s 1235 MB; ours cold 203 s (0.46x)" in lines[2]
    )


def test_a_terminal_keeps_the_table_and_the_lines():
    out = _output(terminal=True)
    assert out.splitlines()[1].startswith("┏━")  # the table, fitted to the terminal
    for line in bench.figure_lines(FLAVOURS, FIGURES):
        assert line in out.splitlines()


def test_the_benchmark_never_imports_a_stage():
    """Its builds go through the shared ac_release.building.image_build, under its own names, never through a stage."""
    tree = ast.parse((REPO / "ac_release" / "bench" / "main.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in imported if m and m.startswith("ac_release.stages")]
    assert "ac_release.building" in imported


def test_every_other_platform_is_a_row_and_a_line_with_its_ratio_to_the_first_platform():
    """Issue 30: the arm64 build (emulated here) as a ratio to amd64's cold build of the same run."""
    arm64 = {
        "bullseye": {"base": {"seconds": 610.2, "size": 899_000_000}, "onbuild": {"seconds": 3.4, "size": 899_000_100}}
    }
    figures = FIGURES | {"first_platform": "linux/amd64", "platforms": {"linux/arm64": arm64}}
    flavours = FLAVOURS[:1]
    assert bench.figure_lines(flavours, figures)[-1] == (
        "platform linux/arm64 bullseye: cold 610 s = 3.00x the linux/amd64 cold build of this run (1.41x the "
        "baseline), 899 MB"
    )
    out = io.StringIO()
    bench._print(Console(file=out, force_terminal=True, width=250, color_system=None), TITLE, flavours, figures)
    (row,) = [line for line in out.getvalue().splitlines() if "linux/arm64 =" in line and "│" in line]
    assert "bullseye linux/arm64 = 3.00x linux/amd64" in row and " 610 " in row and " 1.41 " in row
