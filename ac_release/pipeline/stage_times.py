"""The `time:` line of a run's summary, seconds per stage: written by every run, read by the benchmark and tests."""

from __future__ import annotations

PREFIX = "time: "


def time_line(timings: dict[str, float]) -> str:
    return PREFIX + "  ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items())


def parse_time_line(output: str) -> dict[str, float]:
    """{stage: seconds} from a run's output: the last `time:` line (a run prints one, at its end)."""
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith(PREFIX)]
    if not lines:
        raise ValueError("no `time:` line in the run's output: did the run finish?")
    words = lines[-1][len(PREFIX) :].split()
    return {name: float(value.removesuffix("s")) for name, value in zip(words[::2], words[1::2], strict=True)}
