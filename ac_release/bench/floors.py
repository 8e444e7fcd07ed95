"""The floors of the whole-release benchmark: for the slowest stages, the one piece of work the stage cannot do
without, measured in the same run on the same outputs, so that the table shows how far the release is above what
its work costs at least.

- images: the image build's dependency step (every locked dependency downloaded and unpacked once, bytecode
  compiled), as BuildKit timed it in the cold release's own build log;
- test: the slowest single test of the test stage (its JUnit reports): the stage ends after it, however the others
  are spread over the cores;
- push: the slowest single `docker push` of the stage, from the release's own log: the one that compressed and sent
  the image's layers (the Docker engine gzips each layer once, on one core; every other tag finds its layers there);
- attest: one syft scan of the pushed image (the stage scans each digest once, two side by side).

Stages without a floor here count with their own time in the sum.
"""

from __future__ import annotations

import re
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ac_release.model.config import Settings
from ac_release.model.manifest import Manifest
from ac_release.model.names import run_log_stem
from ac_release.model.records import PushRecord
from ac_release.stages.push import pushed_seconds
from ac_release.stages.test import KINDS
from ac_release.supply_chain import cosign, sbom

# The Dockerfile's one step that installs every locked dependency of the line (its `line` stage)
DEPENDENCY_STEP = "--requirement /build/line-requirements.txt"


@dataclass(frozen=True)
class Floor:
    stage: str
    seconds: float
    what: str


def buildkit_step_seconds(log: str, marker: str) -> float | None:
    """Seconds of the BuildKit step whose command holds `marker`, from `--progress=plain` output; None when that
    step did not run (CACHED) or is not in the log."""
    step = next((m[1] for m in re.finditer(r"^#(\d+) \[[^\]]+\] (.*)$", log, re.M) if marker in m[2]), None)
    if step is None:
        return None
    done = re.search(rf"^#{step} DONE (\d+(?:\.\d+)?)s$", log, re.M)
    return float(done[1]) if done else None


def slowest_test(reports: list[Path]) -> tuple[str, float] | None:
    """(test id, seconds) of the slowest test case in JUnit reports."""
    cases = [
        (f"{case.get('classname')}::{case.get('name')}", float(case.get("time") or 0))
        for report in reports
        for case in ET.parse(report).getroot().iter("testcase")
    ]
    return max(cases, key=lambda case: case[1]) if cases else None


def scan_seconds(reference: cosign.ImageReference) -> float:
    """One syft scan of `reference`, both SBOM formats, as the attest stage makes them."""
    with tempfile.TemporaryDirectory(prefix="ac-bench-sbom-") as tmp:
        started = time.monotonic()
        sbom.scan_image(reference, Path(tmp) / "sbom.cdx.json", Path(tmp) / "sbom.spdx.json")
        return round(time.monotonic() - started, 1)


def measure_floors(settings: Settings, version: str, target: str, release_log: str = "") -> list[Floor]:
    """The floors of a release of `version` to the scratch `target`, read from its logs (`release_log`: the output
    of the cold run) and records, the scan run now (its registry must be up)."""
    logs, floors = settings.cache_dir / "logs", []
    image_logs = sorted(logs.glob(f"{run_log_stem(version, target, 'images', '*')}.log"))
    builds = [log.read_text(errors="replace") for log in image_logs]
    if steps := [seconds for log in builds if (seconds := buildkit_step_seconds(log, DEPENDENCY_STEP))]:
        floors.append(Floor("images", sum(steps), "the image build's dependency step (download, unpack, compile)"))
    patterns = [f"{run_log_stem(version, target, kind, '*')}.xml" for kind in KINDS]
    reports = [report for pattern in patterns for report in sorted(logs.glob(pattern))]
    if slowest := slowest_test(reports):
        floors.append(Floor("test", round(slowest[1], 1), f"its slowest test, {slowest[0]}"))
    if pushes := pushed_seconds(release_log):
        tag, seconds = max(pushes.items(), key=lambda push: push[1])
        floors.append(Floor("push", seconds, f"the push that sent the image's layers, {tag}"))
    pushed = Manifest.load(settings.dist_dir / version, version).get(PushRecord, target)
    if pushed and pushed.tags:
        first = pushed.tags[0]
        reference = cosign.ImageReference.of(settings.target(target).registry(first.repository), first.digest)
        floors.append(Floor("attest", scan_seconds(reference), f"one syft scan of {reference}"))
    return floors


def above_floors(stages: dict[str, float], floors: list[Floor]) -> tuple[float, float]:
    """(sum of the floors, the stages without one counted whole; the release's stages above it)."""
    floor_of = {floor.stage: floor.seconds for floor in floors}
    total = sum(floor_of.get(stage, seconds) for stage, seconds in stages.items())
    return round(total, 1), round(sum(stages.values()) - total, 1)
