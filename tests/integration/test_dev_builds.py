"""Dev builds end to end: release 2.2.4-1, then `invoke nightly 2.2.4` on the same committed tree, with a release.toml
whose local services also run the dev index. The nightly goes to the dev index and `<repository>-dev` only, moves
nothing of the release, is upgrade-tested from 2.2.4-1; a second nightly is a no-op; and pip asked for the release
version against both indexes never takes the dev build."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ac_release import registry
from ac_release.config import load_settings
from ac_release.names import artifact_names
from ac_release.pipeline import RELEASE
from ac_release.services.manager import LocalServices
from ac_release.steps import parse_line
from ac_release.version import ACVersion
from tests.helpers import write_config

pytestmark = pytest.mark.integration

RELEASED = "2.2.4-1"


def invoke(repo: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AC_RELEASE_FAULT"}
    env |= {"AC_RELEASE_CONFIG": str(config), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(repo), *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=3600,
    )


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def _images(repository: str) -> dict[str, str]:
    """{tag: manifest digest} of a repository, cosign's signature tags aside."""
    return {
        tag: registry.remote_image(repository, tag).digest
        for tag in registry.tags(repository)
        if not tag.startswith("sha256-")
    }


def _steps(output: str) -> list[tuple[str, str, str]]:
    found = [parse_line(line.strip(), RELEASE) for line in output.splitlines()]
    return [step for step in found if step and step[0] != "preflight"]


@pytest.fixture(scope="module")
def nightly(release_repo, tmp_path_factory, figure):
    directory = tmp_path_factory.mktemp("dev-builds")
    config = write_config(directory, root=release_repo, dev_index=True)
    settings = load_settings(config)
    services = LocalServices(settings.services)
    try:
        started = time.monotonic()
        _ok(invoke(release_repo, config, "release", RELEASED))
        figure(f"release {RELEASED} before the nightly: {time.monotonic() - started:.0f} s")
        target = settings.target("local")
        (release_repository,) = target.registries
        before = _images(release_repository)

        today = dt.datetime.now(dt.UTC).date()
        dry = _ok(invoke(release_repo, config, "nightly", "2.2.4", "--target", "local", "--dry-run"))
        started = time.monotonic()
        first = _ok(invoke(release_repo, config, "nightly", "2.2.4", "--target", "local"))
        figure(f"first nightly of 2.2.4 (wheels, images, tests, push): {time.monotonic() - started:.0f} s")
        started = time.monotonic()
        again = _ok(invoke(release_repo, config, "nightly", "2.2.4", "--target", "local"))
        seconds_again = time.monotonic() - started
        figure(f"second nightly, same inputs (a no-op): {seconds_again:.1f} s")
        yield {
            "config": config,
            "settings": settings,
            "services": services,
            "version": ACVersion.nightly_of("2.2.4", 2, today, 1),
            "today": today,
            "release_repository": release_repository,
            "before": before,
            "dry": dry,
            "first": first,
            "again": again,
            "seconds_again": seconds_again,
        }
    finally:
        services.down(log=lambda _: None)


def test_the_dry_run_names_the_version_and_why(nightly):
    version, today = nightly["version"], nightly["today"]
    assert str(version) == f"2.2.4-2-dev{today:%Y%m%d}01"
    assert nightly["dry"].stdout.splitlines()[0] == f"{version}: first nightly of {today}"
    assert nightly["first"].stdout.splitlines()[0] == f"{version}: first nightly of {today}"


def test_images_go_to_the_dev_repository_under_nightly_tags(nightly):
    day = f"{nightly['today']:%Y%m%d}"
    dev_repository = nightly["release_repository"] + "-dev"
    tags = set(_images(dev_repository))
    assert {
        f"2.2.4-nightly-{day}",
        f"2.2.4-nightly-{day}-bullseye",
        f"2.2.4-nightly-{day}-onbuild",
        f"2.2.4-nightly-{day}-bullseye-onbuild",
    } == tags
    assert not [tag for tag in registry.tags(dev_repository) if "+" in tag]


def test_the_release_repository_and_the_git_remote_are_untouched(nightly):
    assert _images(nightly["release_repository"]) == nightly["before"]  # no tag added, none moved
    remote = nightly["services"].git_remote
    tags = subprocess.run(["git", "ls-remote", "--tags", str(remote)], capture_output=True, text=True, check=True)
    assert "v2.2.4-1" in tags.stdout
    assert "dev" not in tags.stdout


def test_wheels_are_on_the_dev_index_only(nightly):
    services, version = nightly["services"], nightly["version"]
    on_dev = sorted(p.name for p in (services.dev_pypi_dir / "packages").iterdir())
    on_release = sorted(p.name for p in (services.pypi_dir / "packages").iterdir())
    assert on_dev == artifact_names(version)
    assert on_release == artifact_names(ACVersion.parse(RELEASED))


def test_the_nightly_is_upgrade_tested_from_the_release(nightly):
    settings, version = nightly["settings"], nightly["version"]
    manifest = json.loads((settings.dist_dir / str(version) / "release.json").read_text())
    tests = manifest["targets"]["local"]["test"]["flavours"]
    assert {name: entry["upgrade_from"] for name, entry in tests.items()} == {"bullseye": RELEASED}
    assert all(entry["upgrade"]["result"] == "passed" for entry in tests.values())
    assert "push" in manifest["targets"]["local"] and "tag" not in manifest["targets"]["local"]


def test_a_second_nightly_with_the_same_inputs_does_nothing(nightly):
    version, again = nightly["version"], nightly["again"]
    assert again.stdout.splitlines()[0] == f"{version}: same inputs as {version}: nothing to do"
    steps = _steps(again.stdout + again.stderr)
    assert steps, again.stdout + again.stderr
    assert {action for _, action, _ in steps} <= {"skip", "keep"}, [s for s in steps if s[1] not in ("skip", "keep")]
    assert nightly["seconds_again"] < 120


def _pip(tmp_path: Path, nightly, *requirement: str) -> subprocess.CompletedProcess:
    target = nightly["settings"].target("local")
    dev = target.for_dev_build()
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--dest",
            str(tmp_path),
            "--index-url",
            target.index.simple_url,
            "--extra-index-url",
            dev.index.simple_url,
            *requirement,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_pip_never_resolves_a_release_requirement_to_the_dev_build(nightly, tmp_path):
    version = nightly["version"]
    pinned = _pip(tmp_path / "pinned", nightly, "astronomer-certified==2.2.4.post2")
    assert pinned.returncode != 0, pinned.stdout
    assert "No matching distribution found for astronomer-certified==2.2.4.post2" in pinned.stderr
    newest = _ok(_pip(tmp_path / "newest", nightly, "astronomer-certified"))
    assert sorted(p.name for p in (tmp_path / "newest").iterdir()) == [
        "astronomer_certified-2.2.4.post1-py3-none-any.whl"
    ], newest.stdout
    exact = _ok(_pip(tmp_path / "pre", nightly, "--pre", f"astronomer-certified=={version.meta_version}"))
    assert sorted(p.name for p in (tmp_path / "pre").iterdir()) == [
        f"astronomer_certified-{version.meta_version}-py3-none-any.whl"
    ], exact.stdout


def _commit(repo: Path, path: str, text: str) -> None:
    (repo / path).write_text((repo / path).read_text() + text)
    subprocess.run(["git", "-C", str(repo), "commit", "--quiet", "-am", "change an input"], check=True)


def test_other_inputs_or_a_partial_build_take_the_next_sequence_and_a_dirty_tree_is_refused(nightly, release_repo):
    """Runs last: it commits to the module's repository. Dry runs only: the decision, without another build."""
    config, version, today = nightly["config"], nightly["version"], nightly["today"]
    _commit(release_repo, "ac_release/nightly.py", "# an input changed\n")
    second = ACVersion.nightly_of("2.2.4", 2, today, 2)
    dry = _ok(invoke(release_repo, config, "nightly", "2.2.4", "--target", "local", "--dry-run"))
    assert dry.stdout.splitlines()[0] == f"{second}: inputs differ from {version}: next sequence"
    assert f"{second.image_tag}-bullseye" in dry.stdout  # the plan is the new sequence's

    # a build of sequence 2 that stopped after pushing an image, before its inputs were published
    dev_repository = nightly["release_repository"] + "-dev"
    published = registry.remote_image(dev_repository, f"{version.image_tag}-bullseye")
    registry.tag_digest(dev_repository, published.digest, f"{second.image_tag}-bullseye")
    third = ACVersion.nightly_of("2.2.4", 2, today, 3)
    dry = _ok(invoke(release_repo, config, "nightly", "2.2.4", "--target", "local", "--dry-run"))
    assert (
        dry.stdout.splitlines()[0] == f"{third}: {second} was left by a build without an inputs record: next sequence"
    )

    (release_repo / "images" / "stray").write_text("not committed\n")
    dirty = invoke(release_repo, config, "nightly", "2.2.4", "--target", "local")
    assert dirty.returncode == 1 and dirty.stdout == ""
    assert dirty.stderr.splitlines() == [
        "error: the git tree has uncommitted changes (?? images/stray): a nightly is made from a commit; "
        "commit or stash them"
    ]
