"""`invoke release` run as a release engineer runs it, on a committed copy of this repository with its own local
services, and what a release leaves behind: shared by the gate's one full release (tests/integration/test_release.py)
and the end-to-end tier's scenarios built on it (tests/e2e/test_release_scenarios.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from ac_release.clients import registry
from ac_release.model.config import load_settings
from ac_release.pipeline.run import RELEASE
from ac_release.pipeline.stage_times import parse_time_line
from ac_release.services.manager import LocalServices
from ac_release.stages.steps import parse_line

VERSION = "2.2.4-1"


def command(repo: Path, config: Path, args: tuple[str, ...], fault: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "AC_RELEASE_FAULT"}
    env |= {"AC_RELEASE_CONFIG": str(config), "COLUMNS": "200"} | ({"AC_RELEASE_FAULT": fault} if fault else {})
    # A session of its own: a failpoint kills its whole process group, never pytest.
    argv = [sys.executable, "-m", "invoke", "--search-root", str(repo), *args]
    return {"args": argv, "cwd": repo, "env": env, "text": True, "start_new_session": True}


def invoke(repo: Path, config: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(**command(repo, config, args, fault), capture_output=True, timeout=3600)


def state(config: Path) -> dict:
    """Everything a release leaves behind, outside its own dist/."""
    settings = load_settings(config)
    services = LocalServices(settings.services)
    manifest = json.loads((settings.dist_dir / VERSION / "release.json").read_text())
    (repository,) = settings.target(None).registries
    tags = sorted(registry.tags(repository))
    # cosign's signature and attestation tags: named by the image digest; their manifests hold fresh certificates
    images = {tag: registry.remote_image(repository, tag) for tag in tags if not tag.startswith("sha256-")}
    return {
        "wheels": {n: m["sha256"] for n, m in manifest["wheel"]["artifacts"].items()},
        "index": {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((services.pypi_dir / "packages").iterdir())
        },
        "registry": {tag: (image.digest, image.config) for tag, image in images.items()},
        "signed": [tag for tag in tags if tag.startswith("sha256-")],
        "git": subprocess.run(
            ["git", "ls-remote", "--tags", str(services.git_remote)], capture_output=True, text=True
        ).stdout,
        "stages": sorted(["wheel", *manifest["targets"]["local"]]),
    }


def steps_in(output: str) -> list[tuple[str, str, str]]:
    """(stage, action, target) of every step line in a dry run's plan or a run's log, preflight aside."""
    found = [parse_line(line.strip(), RELEASE) for line in output.splitlines()]
    return [step for step in found if step and step[0] != "preflight"]


def planned(output: str) -> dict[str, str]:
    """What the dry run says each stage after preflight (which only checks) would do with each target,
    e.g. {"127.0.0.1:…/ap-airflow:2.2.4": "skip"}."""
    return {target: action for _, action, target in steps_in(output)}


def files(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def signing_share(summary: str) -> str:
    """The signing and attestation work as a share of the release, from the summary's `time:` line: the attest
    stage and the sign stage (bundles and PEP 740 attestations of the wheels and the sdist)."""
    times = parse_time_line(summary)
    signing = times["sign"] + times["attest"]
    return (
        f"signing and attestation: sign {times['sign']:.1f} s + attest {times['attest']:.1f} s = {signing:.1f} s, "
        f"{100 * signing / sum(times.values()):.1f}% of the release's {sum(times.values()):.0f} s of stages"
    )
