"""The unit suite's summary line for the hostile-input suite: how many cases ran and how long they took."""

import pytest

HOSTILE_SUMMARY = pytest.StashKey[tuple[int, float]]()  # (cases run, seconds), set by test_hostile_inputs.py


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


@pytest.fixture(autouse=True)
def no_services_started(monkeypatch):
    """A unit test starts no service: a stage run in one (its decision functions' fakes around it) that reaches for
    the local services fails here instead of leaving an index, a Sigstore and a registry running after the suite."""
    from ac_release.services.manager import LocalServices

    def refuse(self, *args, **kwargs):
        raise AssertionError("a unit test started the local services: fake ensure_local_services in the test")

    monkeypatch.setattr(LocalServices, "up", refuse)
