"""Skips are never silent: a run that skipped tests ends with one loud line saying how many and why, and with
CI=true any skip fails the run (a CI machine that lacks a prerequisite is a broken CI machine, not a green one)."""

from __future__ import annotations

import os
from collections import Counter

import pytest

SKIPPED: Counter[str] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _, _, reason = report.longrepr if isinstance(report.longrepr, tuple) else ("", 0, str(report.longrepr))
        SKIPPED[reason.removeprefix("Skipped: ")] += 1


def skipped_line() -> str:
    reasons = "; ".join(f"{count} because {reason}" for reason, count in SKIPPED.most_common())
    consequence = "CI=true: a skip fails the run" if _in_ci() else "they did not run"
    return f"SKIPPED {SKIPPED.total()} test(s): {reasons} ({consequence})"


def _in_ci() -> bool:
    return os.environ.get("CI") == "true"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if SKIPPED and _in_ci() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    if SKIPPED:
        terminalreporter.write_line(skipped_line(), red=True, bold=True)
