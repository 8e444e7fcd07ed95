"""The unit suite's summary line for the hostile-input suite: how many cases ran and how long they took.

`nox -s unit` runs the suite on two pytest-xdist workers, each test file on one worker (`--dist loadfile`: the
hostile-input cases run once, together); the worker that ran them hands its figures to the controller, which prints
the line."""

import pytest

HOSTILE_SUMMARY = pytest.StashKey[tuple[int, float]]()  # (cases run, seconds), set by test_hostile_inputs.py
WORKER_OUTPUT = "hostile_summary"


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)  # set on an xdist worker only
    if workeroutput is not None and HOSTILE_SUMMARY in session.config.stash:
        workeroutput[WORKER_OUTPUT] = list(session.config.stash[HOSTILE_SUMMARY])


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    if summary := getattr(node, "workeroutput", {}).get(WORKER_OUTPUT):
        node.config.stash[HOSTILE_SUMMARY] = (summary[0], summary[1])


def pytest_terminal_summary(terminalreporter, config):
    if HOSTILE_SUMMARY not in config.stash:
        return
    ran, seconds = config.stash[HOSTILE_SUMMARY]
    failed = [
        report
        for report in terminalreporter.stats.get("failed", [])
        if "test_hostile_inputs.py::test_refused_in_one_line_nothing_changed" in report.nodeid
    ]
    verdict = "all refused in one line" if not failed else f"{len(failed)} NOT refused as expected"
    terminalreporter.write_line(f"hostile inputs: {ran} cases, {verdict}, nothing changed ({seconds:.1f} s)")
