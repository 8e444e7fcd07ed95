"""The long release scenarios, built on a full `invoke release 2.2.4-1` (the reference, as the gate's), each as a
release engineer meets it: kill -9 at every stage boundary and in the middle of uploads and pushes, each resumed to
the reference's final state (a second release, in a clone with services of its own, beside the first); on the
resumed release's services, `invoke nightly 2.2.4` builds this tree as the line's next build (a dev build on the dev
index and the dev repository) and upgrade-tests it from 2.2.4-1; once the reference release is done, in a clone and
on its services, the backport workflow ships 2.2.4-2 on top of 2.2.4-1, and Astro Runtime 4.2.0 -> 4.2.1 -> 5.0.0
ship on the same line build and across to the next line. `builds_beside` starts each as early as it can."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ac_release.clients import registry
from ac_release.model.config import docker_command, load_settings
from ac_release.model.names import artifact_names
from ac_release.model.version import ACVersion
from ac_release.pipeline.stage_times import parse_time_line
from ac_release.services.manager import LocalServices
from tests.helpers import REPO, Background, own_cache, write_config
from tests.helpers import git as _git
from tests.release_run import (
    VERSION,
    command,
    invoke,
    planned,
    state,
    steps_in,
)

AMD64, ARM64 = "linux/amd64", "linux/arm64"  # the keys of a release record's images and tests

pytestmark = pytest.mark.e2e

RUNTIME = "runtime-4.2.0"  # Astro Runtime on the line build of VERSION
LINE_BUILD = ("apache-airflow-2.2.4+astro.1.tar.gz", "apache_airflow-2.2.4+astro.1-py3-none-any.whl")  # VERSION's
RUNTIMES = (RUNTIME, "runtime-4.2.1", "runtime-5.0.0")  # then a patch on the same build, then a new line
BACKPORT = REPO / "tests" / "data" / "backport"  # a real upstream fix 2.2.4 lacks, and its check
FAULTS = [
    "after:preflight",
    "after:wheel",
    "after:sign",
    "during:upload-2",
    "after:publish",
    "after:images",
    "after:test",
    "during:push-3",
    "after:push",
    "after:attest",
    "after:promote",
]


@pytest.fixture(scope="module", autouse=True)
def builds_beside(request):
    """The kill-and-resume release and the nightlies on its services (`killed`, in a clone with services and a cache
    of its own) start with the module, beside the reference release in the foreground, so that CI's two cores always
    have work (the staging workflow's run, when selected, started with the session: conftest.staging_workflow_beside).
    The builds on the reference's services (`backport`, `runtime`) start together when a test first asks for them,
    after the tests that hold the reference's services to its final state (a re-run moves nothing, verify, status)."""
    selected = [item for item in request.session.items if item.path.name == Path(__file__).name]
    for name in ("killed", "reference"):
        if any(name in item.fixturenames for item in selected):
            request.getfixturevalue(name)


def _clone(release_repo: Path, directory: Path) -> Path:
    """A clone of the repository at its current commit, in `directory`/repo."""
    clone = directory / "repo"
    subprocess.run(["git", "clone", "--quiet", str(release_repo), str(clone)], check=True)
    return clone


def _clone_on_reference(release_repo: Path, reference, directory: Path) -> tuple[Path, Path]:
    """A clone of the repository the reference release was made from, and a config giving it the reference's dist/
    and services: a build beside the others that shares what the reference released (and a cache of its own: builds
    beside each other never write one cache)."""
    config, _, _, _ = reference
    clone = _clone(release_repo, directory)
    clone_config = directory / "release.toml"
    settings = load_settings(config)
    text = config.read_text().replace(f'root = "{release_repo}"', f'root = "{clone}"', 1)
    cache = own_cache(directory)
    clone_config.write_text(text.replace(f'cache_dir = "{settings.cache_dir}"', f'cache_dir = "{cache}"', 1))
    assert load_settings(clone_config).cache_dir != settings.cache_dir
    return clone, clone_config


@pytest.fixture(scope="module")
def backport(release_repo, reference, tmp_path_factory):
    """The README's backport workflow on the released 2.2.4-1, in a clone of the repository it was released from
    (the reference's tests commit and reset in that one), on the reference release's services:
    `invoke backport 2.2.4 <upstream fix>`, the check filled in, the entry dated, committed, then
    `invoke release 2.2.4-2` started in the background. It runs beside the kill-and-resume and nightly builds, which
    use services of their own; its test waits for it."""
    directory = tmp_path_factory.mktemp("backport")
    clone, clone_config = _clone_on_reference(release_repo, reference, directory)
    scaffolded = invoke(
        clone, clone_config, "backport", "2.2.4", str(BACKPORT / "0001-Fix-Resources-__eq__-check-21442.patch")
    )
    assert scaffolded.returncode == 0, scaffolded.stderr
    assert scaffolded.stdout.splitlines()[-1] == "  invoke release 2.2.4-2"
    check = "0002-fix-resources-eq-check.check.py"
    shutil.copyfile(BACKPORT / "fix-resources-eq-check.check.py", clone / "wheel" / "2.2.4" / "patches" / check)
    changelog = clone / "changelog" / "2.2.4.md"
    changelog.write_text(changelog.read_text().replace("## 2.2.4-2, TBD", "## 2.2.4-2, 2026-11-23", 1))
    _git(clone, "add", "-A")
    _git(clone, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "2.2.4-2")
    run = Background.start(command(clone, clone_config, ("release", "2.2.4-2")), directory / "release-2.2.4-2")
    try:
        yield {"clone": clone, "config": clone_config, "run": run, "check": check}
    finally:
        run.stop()


@pytest.fixture(scope="module")
def runtime(release_repo, reference, tmp_path_factory):
    """Astro Runtime on the reference release's dist/ and services, in a clone at the commit 2.2.4-1 was released
    from (the reference's tests commit in release_repo), one release after the other, each after its dry run: 4.2.0
    (the second product on AC's line build), 4.2.1 (a patch on the same build) and 5.0.0 (a new line, Airflow 2.3.0).
    Started in a thread beside the backport build and the nightlies (test_killed_… asks for it); its tests wait."""
    directory = tmp_path_factory.mktemp("runtime")
    clone, clone_config = _clone_on_reference(release_repo, reference, directory)

    def release_each() -> dict[str, tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]]:
        runs = {}
        for version in RUNTIMES:
            plan = invoke(clone, clone_config, "release", version, "--dry-run")
            runs[version] = (plan, invoke(clone, clone_config, "release", version))
            if runs[version][1].returncode != 0:
                break
        return runs

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="runtime") as pool:
        yield {"clone": clone, "config": clone_config, "runs": pool.submit(release_each)}


def _runtime_release(runtime, version: str) -> tuple[subprocess.CompletedProcess, Path, dict]:
    """The release of `version` (its dry run said what it then did), its config and its record."""
    runs = runtime["runs"].result(timeout=3600)
    assert version in runs, f"{version} was not released: an earlier Runtime release failed"
    plan, run = runs[version]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert steps_in(plan.stdout) == steps_in(run.stderr)
    settings = load_settings(runtime["config"])
    return run, runtime["config"], json.loads((settings.dist_dir / version / "release.json").read_text())


def _runtime_images(config: Path) -> dict[str, str]:
    """{tag: image id} of the Runtime repository of the reference's registry (an index's: its linux/amd64 image),
    the platforms' own tags aside (`4.2.0-arm64`, `4.2.0-base-amd64`: _runtime_platform_images)."""
    (repository,) = load_settings(config).target(None).for_repository("ap-airflow", "astro-runtime").registries
    tags = [tag for tag in registry.tags(repository) if not tag.startswith("sha256-")]  # cosign's aside, as _images
    return {tag: registry.remote_image(repository, tag).config for tag in tags if not tag.endswith(PLATFORM_TAGS)}


PLATFORM_TAGS = ("-amd64", "-arm64")


def _runtime_platform_images(config: Path, version: str, manifest: dict) -> None:
    """Each platform's own tags of a Runtime version hold that platform's images the release recorded."""
    (repository,) = load_settings(config).target(None).for_repository("ap-airflow", "astro-runtime").registries
    built = manifest["targets"]["local"]["images"]["flavours"]["bullseye"]
    for platform, arch in ((AMD64, "amd64"), (ARM64, "arm64")):
        for variant, tag in (("onbuild", version), ("base", f"{version}-base")):
            held = registry.remote_image(repository, f"{tag}-{arch}").config
            assert held == built[platform]["variants"][variant]["image"], (tag, platform)


@pytest.fixture(scope="module")
def killed(release_repo, tmp_path_factory, figure):
    """A second, independent release of 2.2.4-1 on services of its own, killed with SIGKILL at every stage boundary
    and in the middle of uploads and pushes, then run once more; then, on its services (with a dev index), the
    line's nightlies. Started in a thread when the module starts (builds_beside), beside the reference release, in a
    clone made before any test commits in release_repo: `resumed` and `nightly` wait for their part."""
    directory = tmp_path_factory.mktemp("killed")
    clone = _clone(release_repo, directory)
    config = write_config(directory, root=clone, dev_index=True)  # its own cache: write_config gives one
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="killed")
    resumed = pool.submit(_kill_and_resume, clone, config, figure)
    nightly = pool.submit(_nightlies, clone, config, resumed, figure)  # one worker: after the resumed release
    try:
        yield {"repo": clone, "config": config, "resumed": resumed, "nightly": nightly}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        LocalServices(load_settings(config).services).down(log=lambda _: None)


def _kill_and_resume(repo: Path, config: Path, figure) -> tuple[Path, list, subprocess.CompletedProcess]:
    killed = []
    for fault in FAULTS:
        run = invoke(repo, config, "release", VERSION, fault=fault)
        killed.append((fault, run.returncode, run.stderr[-2000:]))
        figure(f"kill -9 at {fault}: exit {run.returncode}, {run.stderr.count('✓ ')} stage(s) completed in that run")
    return config, killed, invoke(repo, config, "release", VERSION)


@pytest.fixture(scope="module")
def resumed(killed):
    return killed["resumed"].result(timeout=3600)


def test_killed_anywhere_the_next_run_resumes_to_the_same_state(reference, backport, runtime, resumed, figure):
    """(It asks for `backport` and `runtime` first: those builds start here, beside the nightlies still running, once
    the tests above have read the reference release's services as it left them.)"""
    _, _, final, _ = reference
    config, killed, run = resumed
    for fault, returncode, stderr in killed:
        assert returncode == -9, (fault, returncode, stderr)
    assert run.returncode == 0, run.stderr[-3000:]
    after = state(config)
    assert after["wheels"] == final["wheels"]
    assert after["index"] == final["index"]  # nothing duplicated, nothing else
    assert after["registry"] == final["registry"]  # same digests, same tags
    assert after["signed"] == final["signed"]  # every digest signed and attested
    assert after["stages"] == final["stages"]
    assert "refs/tags/v2.2.4-1^{}" in after["git"]
    figure(f"after {len(FAULTS)} kills, one more run ended in the uninterrupted run's state")


def _tested_on_every_platform(manifest: dict) -> dict:
    """The bullseye flavour's tests on linux/amd64, once the linux/arm64 ones are known to agree: the same earlier
    release, and every session that ran passed with nothing skipped."""
    tested = manifest["targets"]["local"]["test"]["flavours"]["bullseye"]
    assert set(tested) == {AMD64, ARM64}, tested
    for entry in tested.values():
        assert entry["upgrade_from"] == tested[AMD64]["upgrade_from"], tested
        assert entry["smoke"]["result"] == "passed" and entry["smoke"]["counts"]["skipped"] == 0, entry
        assert entry["upgrade"]["result"] in ("passed", "no earlier release"), entry
    return tested[AMD64]


def test_every_smoke_test_passes_on_the_emulated_arm64_images(reference, tmp_path, figure):
    """The release's test stage leaves the `full` smoke tests out on an emulated platform (minutes under qemu); here
    they all run against the reference release's linux/arm64 images, as `nox -s smoke` runs them, nothing skipped."""
    import xml.etree.ElementTree as ElementTree

    config = reference[0]
    report = tmp_path / "smoke-arm64.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AC_SMOKE_")}
    env |= {"AC_RELEASE_CONFIG": str(config), "AC_SMOKE_VERSION": VERSION, "AC_SMOKE_FLAVOUR": "bullseye"}
    env |= {"AC_SMOKE_PLATFORM": ARM64}
    root = load_settings(config).root
    argv = [sys.executable, "-m", "pytest", "tests/smoke", "-m", "smoke", "-p", "no:cacheprovider", "-q"]
    started = time.monotonic()
    run = subprocess.run([*argv, f"--junitxml={report}"], cwd=root, env=env, capture_output=True, text=True)
    figure(f"every smoke test on the emulated linux/arm64 images of {VERSION}: {time.monotonic() - started:.0f} s")
    assert run.returncode == 0, run.stdout[-4000:]
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert int(suite.get("skipped")) == 0 and int(suite.get("failures")) == int(suite.get("errors")) == 0
    names = {case.get("name") for case in suite.iter("testcase")}
    assert {"test_webserver_health_and_login_page", "test_pip_show_and_pip_check_are_clean"} <= names  # `full` ran
    manifest = json.loads((load_settings(config).dist_dir / VERSION / "release.json").read_text())
    in_release = manifest["targets"]["local"]["test"]["flavours"]["bullseye"][ARM64]["smoke"]["counts"]["tests"]
    assert int(suite.get("tests")) > in_release  # more than the test stage ran there


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


def _on_day(day: dt.date) -> tuple[str, str]:
    """The nightly's day, given: a run that crosses midnight UTC still builds and compares one day's nightlies."""
    return ("--date", day.isoformat())


def _nightlies(repo: Path, config: Path, resumed, figure) -> dict:
    """`invoke nightly 2.2.4` on the services of the resumed 2.2.4-1 release: the line's next build (N = 2) from
    this tree, upgrade-tested from the newest release (N-1). Then once more, with the same inputs."""
    _, _, run = resumed.result()
    assert run.returncode == 0, run.stderr[-3000:]
    settings = load_settings(config)
    services = LocalServices(settings.services)
    target = settings.target("local")
    (release_repository,) = target.registries
    before = _images(release_repository)

    today = dt.datetime.now(dt.UTC).date()  # every nightly below is of this day, even past midnight (--date)
    dry = invoke(repo, config, "nightly", "2.2.4", "--target", "local", *_on_day(today), "--dry-run")
    started = time.monotonic()
    first = invoke(repo, config, "nightly", "2.2.4", "--target", "local", *_on_day(today))
    figure(
        f"first nightly of 2.2.4 (wheels, images, smoke and upgrade tests, push; other builds beside it): "
        f"{time.monotonic() - started:.0f} s"
    )
    started = time.monotonic()
    again = invoke(repo, config, "nightly", "2.2.4", "--target", "local", *_on_day(today))
    seconds_again = time.monotonic() - started
    figure(f"second nightly, same inputs (a no-op): {seconds_again:.1f} s")
    return {
        "repo": repo,
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
    }


@pytest.fixture(scope="module")
def nightly(killed):
    found = killed["nightly"].result(timeout=3600)
    for name in ("dry", "first", "again"):
        _ok(found[name])
    return found


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
        *(f"2.2.4-nightly-{day}-bullseye{v}-{arch}" for v in ("", "-onbuild") for arch in ("amd64", "arm64")),
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
    assert on_dev == artifact_names(version, "astronomer-certified")
    assert on_release == artifact_names(ACVersion.parse(VERSION), "astronomer-certified")


def test_the_nightly_is_upgrade_tested_from_the_release(nightly):
    settings, version = nightly["settings"], nightly["version"]
    manifest = json.loads((settings.dist_dir / str(version) / "release.json").read_text())
    tests = manifest["targets"]["local"]["test"]["flavours"]
    upgraded_from = {(name, p): entry["upgrade_from"] for name, by in tests.items() for p, entry in by.items()}
    assert upgraded_from == {("bullseye", AMD64): VERSION, ("bullseye", ARM64): VERSION}
    assert all(entry["upgrade"]["result"] == "passed" for platforms in tests.values() for entry in platforms.values())
    assert "push" in manifest["targets"]["local"] and "tag" not in manifest["targets"]["local"]


def test_a_second_nightly_with_the_same_inputs_does_nothing(nightly):
    version, again = nightly["version"], nightly["again"]
    assert again.stdout.splitlines() == [f"{version}: same inputs as {version}, verified: nothing to do"]
    assert not steps_in(again.stdout + again.stderr), again.stderr  # no stage ran


def test_a_second_nightly_on_a_machine_that_did_not_build_the_first_does_nothing(nightly, tmp_path):
    """As the nightly workflow's next run on a fresh runner: no dist/, no record of the first build. It failed before
    the decision verified what the dev locations hold: the pipeline ran again and its push refused the nightly's own
    immutable tags (`an image not built yet`)."""
    config = tmp_path / "release.toml"
    config.write_text(nightly["config"].read_text().replace(str(nightly["settings"].dist_dir), str(tmp_path / "dist")))
    version, day = nightly["version"], _on_day(nightly["today"])
    elsewhere = _ok(invoke(nightly["repo"], config, "nightly", "2.2.4", "--target", "local", *day))
    assert elsewhere.stdout.splitlines() == [f"{version}: same inputs as {version}, verified: nothing to do"]
    assert not (tmp_path / "dist").exists()


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


def test_other_inputs_or_a_partial_build_take_the_next_sequence_and_a_dirty_tree_is_refused(nightly):
    """Dry runs only: the decision, without another build. The commit it makes is undone afterwards."""
    config, version, today = nightly["config"], nightly["version"], nightly["today"]
    release_repo = nightly["repo"]  # the clone the nightlies were built from
    released_from = _git(release_repo, "rev-parse", "HEAD").strip()
    try:
        _commit(release_repo, "ac_release/commands/nightly.py", "# an input changed\n")
        second = ACVersion.nightly_of("2.2.4", 2, today, 2)
        dry = _ok(invoke(release_repo, config, "nightly", "2.2.4", "--target", "local", *_on_day(today), "--dry-run"))
        assert dry.stdout.splitlines()[0] == f"{second}: inputs differ from {version}: next sequence"
        assert f"{second.image_tag}-bullseye" in dry.stdout  # the plan is the new sequence's

        # a build of sequence 2 that stopped after pushing an image, before its inputs were published
        dev_repository = nightly["release_repository"] + "-dev"
        published = registry.remote_image(dev_repository, f"{version.image_tag}-bullseye")
        registry.tag_digest(dev_repository, published.digest, f"{second.image_tag}-bullseye")
        third = ACVersion.nightly_of("2.2.4", 2, today, 3)
        dry = _ok(invoke(release_repo, config, "nightly", "2.2.4", "--target", "local", *_on_day(today), "--dry-run"))
        assert (
            dry.stdout.splitlines()[0]
            == f"{third}: {second} was left by a build without an inputs record: next sequence"
        )

        (release_repo / "images" / "stray").write_text("not committed\n")
        dirty = invoke(release_repo, config, "nightly", "2.2.4", "--target", "local", *_on_day(today))
        assert dirty.returncode == 1 and dirty.stdout == ""
        assert dirty.stderr.splitlines() == [
            "error: the git tree has uncommitted changes (?? images/stray): a nightly is made from a commit; "
            "commit or stash them"
        ]
    finally:
        (release_repo / "images" / "stray").unlink(missing_ok=True)
        _git(release_repo, "reset", "-q", "--hard", released_from)


def test_a_backport_build_is_upgrade_tested_from_the_previous_release_and_moves_the_floating_tags(
    reference, backport, figure
):
    """The backport build started beside the kill-and-resume and nightly builds (fixture `backport`): the fix is in
    the built wheel (its check passed in the wheel stage), and the test stage upgraded a database of 2.2.4-1 (pulled
    from the registry by digest)."""
    _, _, final, _ = reference
    clone, config, check = backport["clone"], backport["config"], backport["check"]
    run, _ = backport["run"].wait()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    seconds = sum(parse_time_line(run.stderr).values())
    figure(f"release 2.2.4-2 on 2.2.4-1 (upgrade test included), beside the kill-and-resume runs: {seconds:.0f} s")

    settings = load_settings(config)
    manifest = json.loads((settings.dist_dir / "2.2.4-2" / "release.json").read_text())
    assert manifest["wheel"]["checks"]["patches"][check].startswith("ok: Resources.__eq__ answers False")
    with zipfile.ZipFile(settings.dist_dir / "2.2.4-2" / "apache_airflow-2.2.4+astro.2-py3-none-any.whl") as wheel:
        assert wheel.read("airflow/utils/operator_resources.py").decode().count("return NotImplemented") == 2
    tested = _tested_on_every_platform(manifest)
    assert tested["upgrade_from"] == "2.2.4-1"
    assert tested["smoke"]["result"] == "passed"
    assert tested["smoke"]["counts"]["passed"] == tested["smoke"]["counts"]["tests"] > 0  # none failed or skipped
    assert tested["upgrade"]["result"] == "passed", tested["upgrade"]
    assert tested["upgrade"]["counts"] == {"tests": 5, "passed": 5, "failures": 0, "errors": 0, "skipped": 0}
    (repository,) = settings.target(None).registries
    images = manifest["targets"]["local"]["images"]["flavours"]["bullseye"][AMD64]["variants"]
    after = state(config)
    for variant, suffix in (("base", ""), ("onbuild", "-onbuild")):
        for tag in (f"2.2.4{suffix}", f"2.2.4-bullseye{suffix}", f"2.2.4-2{suffix}", f"2.2.4-2-bullseye{suffix}"):
            assert after["registry"][tag][1] == images[variant]["image"], tag
    for tag in [t for t in final["registry"] if t.startswith("2.2.4-1")]:
        assert after["registry"][tag] == final["registry"][tag], tag  # 2.2.4-1 itself never moves
    floating = {f"{repository}:2.2.4{suffix}" for suffix in ("", "-bullseye", "-onbuild", "-bullseye-onbuild")}
    older = planned(invoke(clone, config, "release", VERSION, "--dry-run").stdout)
    assert {older[target] for target in floating} == {"keep"}  # 2.2.4-1 again would not take them back
    status = invoke(clone, config, "status", VERSION)  # 2.2.4-1 stays released, though HEAD moved on
    assert status.returncode == 0 and "present" in status.stdout and "CONFLICT" not in status.stdout
    assert "refs/tags/v2.2.4-1^{}" in after["git"] and "refs/tags/v2.2.4-2^{}" in after["git"]

    # A finished release whose floating tags moved on, from its own commit: the dry run keeps them, and so does the
    # release, which does nothing else either.
    _git(clone, "checkout", "-q", "HEAD~1")
    try:
        plan = invoke(clone, config, "release", VERSION, "--dry-run")
        again = invoke(clone, config, "release", VERSION)
        assert again.returncode == 0, again.stderr[-3000:]
        assert steps_in(plan.stdout) == steps_in(again.stderr)
        assert {planned(plan.stdout)[target] for target in floating} == {"keep"}
        assert {action for _, action, _ in steps_in(again.stderr)} == {"keep", "skip"}
    finally:
        _git(clone, "checkout", "-q", "-")
    assert state(config)["registry"] == after["registry"]


@pytest.mark.runtime
def test_runtime_installs_the_line_build_ac_made_and_keeps_to_its_own_repository(reference, runtime, figure):
    """Runtime 4.2.0: the Airflow wheel and its signatures are 2.2.4-1's, reused and never made again; its own meta
    wheel, images and tags; its upgrade test started from AC 2.2.4-1; AC's tags never moved."""
    _, _, final, _ = reference
    run, config, manifest = _runtime_release(runtime, RUNTIME)
    figure(f"release {RUNTIME} on the line build of {VERSION}: {sum(parse_time_line(run.stderr).values()):.0f} s")
    settings = load_settings(config)
    wheels = {name: meta["sha256"] for name, meta in manifest["wheel"]["artifacts"].items()}
    line_build = {name: sha for name, sha in final["wheels"].items() if name.startswith("apache")}
    assert {name: wheels[name] for name in line_build} == line_build  # the same bytes AC 2.2.4-1 installs
    assert sorted(set(wheels) - set(line_build)) == ["astro_runtime-4.2.0-py3-none-any.whl"]
    actions = {(stage, target.rsplit("/", 1)[-1]): action for stage, action, target in steps_in(run.stderr)}
    for name in line_build:
        assert actions[("wheel", name)] == "reuse"
        for suffix in (".sigstore.json", ".publish.attestation", ".slsa.attestation"):
            assert actions[("sign", name + suffix)] == "reuse"
            made = settings.dist_dir / VERSION / "sigstore" / "local" / (name + suffix)
            kept = settings.dist_dir / RUNTIME / "sigstore" / "local" / (name + suffix)
            assert kept.read_bytes() == made.read_bytes()
    index = {p.name for p in (LocalServices(settings.services).pypi_dir / "packages").iterdir()}
    assert "astro_runtime-4.2.0-py3-none-any.whl" in index

    tested = _tested_on_every_platform(manifest)
    assert tested["upgrade_from"] == VERSION  # Runtime's first release, from the AC release of its line build
    assert tested["upgrade"]["result"] == tested["smoke"]["result"] == "passed", tested
    images = manifest["targets"]["local"]["images"]["flavours"]["bullseye"][AMD64]["variants"]
    _runtime_platform_images(config, "4.2.0", manifest)
    pushed = _runtime_images(config)
    assert {tag: pushed[tag] for tag in ("4.2.0", "4.2.0-base")} == {
        "4.2.0": images["onbuild"]["image"],
        "4.2.0-base": images["base"]["image"],
    }
    # Runtime's image is FROM the line's: every layer of AC's image up to the line's venv is one of its own too, and
    # only the product's difference (its lock over the line's, its meta wheel, its footer) is a layer of its own.
    made_by_ac = json.loads((settings.dist_dir / VERSION / "release.json").read_text())
    ac_image = made_by_ac["targets"]["local"]["images"]["flavours"]["bullseye"][AMD64]["variants"]["base"]["image"]
    ac_layers, runtime_layers = (_layers(image) for image in (ac_image, images["base"]["image"]))
    assert len(ac_layers) == len(runtime_layers), (ac_layers, runtime_layers)
    differing = [i for i, (made, own) in enumerate(zip(ac_layers, runtime_layers, strict=True)) if made != own]
    assert differing == [len(ac_layers) - 2], (ac_layers, runtime_layers)  # the last: WORKDIR's, empty in both
    after = state(config)
    for tag in [t for t in final["registry"] if t.startswith("2.2.4-1")]:
        assert after["registry"][tag] == final["registry"][tag], tag  # AC's own tags never move for Runtime
    assert "refs/tags/runtime-v4.2.0^{}" in after["git"]
    notes = (settings.dist_dir / RUNTIME / "RELEASE_NOTES.md").read_text()
    assert notes.startswith("# Astro Runtime 4.2.0 (2026-12-02)\n")
    _ok(invoke(runtime["clone"], config, "verify", RUNTIME))


@pytest.mark.runtime
def test_a_runtime_job_on_a_fresh_machine_reuses_the_line_build_ac_published(reference, runtime, tmp_path):
    """As release.yml's wheel job for Runtime 4.2.0 on a fresh runner: no dist/. The line build is read back as AC
    2.2.4-1 published it (its wheel record and the line build's bundles and attestations from its release files, the
    files from the index) and reused: the Airflow wheel is never built or signed again; its dry run says so. Before,
    dist/ was the only place the wheel stage looked, and a fresh runner built the line build a second time."""
    runtime["runs"].result(timeout=3600)
    settings = load_settings(runtime["config"])
    config = tmp_path / "release.toml"
    config.write_text(runtime["config"].read_text().replace(str(settings.dist_dir), str(tmp_path / "dist")))
    plan = _ok(invoke(runtime["clone"], config, "release", RUNTIME, "--dry-run"))
    assert not (tmp_path / "dist" / VERSION).exists()  # the dry run reads what is published, writes nothing
    run = _ok(invoke(runtime["clone"], config, "release", RUNTIME, "--stages", "wheel,sign"))
    assert "restored the line build 2.2.4+astro.1 from " in run.stderr
    assert f"/release-files:{VERSION}: {', '.join(LINE_BUILD)}\n" in run.stderr
    planned_actions = {(stage, target.rsplit("/", 1)[-1]): action for stage, action, target in steps_in(plan.stdout)}
    actions = {(stage, target.rsplit("/", 1)[-1]): action for stage, action, target in steps_in(run.stderr)}
    for name in LINE_BUILD:
        assert actions[("wheel", name)] == planned_actions[("wheel", name)] == "reuse", (planned_actions, actions)
        restored = tmp_path / "dist" / VERSION / name
        assert restored.read_bytes() == (settings.dist_dir / VERSION / name).read_bytes()
        made = tmp_path / "dist" / RUNTIME / name
        assert made.read_bytes() == restored.read_bytes()
        for suffix in (".sigstore.json", ".publish.attestation", ".slsa.attestation"):
            kept = tmp_path / "dist" / RUNTIME / "sigstore" / "local" / (name + suffix)
            signed = settings.dist_dir / VERSION / "sigstore" / "local" / (name + suffix)
            assert kept.read_bytes() == signed.read_bytes()
    assert {action for (stage, _), action in actions.items() if stage == "sign"} <= {"reuse", "keep"}, actions


def _layers(image: str) -> list[str]:
    inspected = subprocess.run(
        [*docker_command("auto"), "image", "inspect", "--format", "{{json .RootFS.Layers}}", image],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(inspected.stdout)


@pytest.mark.runtime
def test_a_runtime_patch_installs_the_same_airflow_build_and_takes_its_minors_floating_tags(reference, runtime, figure):
    """Runtime 4.2.1 changes only its own packages: the Airflow wheel is 2.2.4-1's again (same sha256, reused), its
    upgrade test starts from 4.2.0, and `4.2`, `4.2-base` move to it."""
    _, _, final, _ = reference
    run, config, manifest = _runtime_release(runtime, "runtime-4.2.1")
    figure(f"release runtime-4.2.1 on the same line build: {sum(parse_time_line(run.stderr).values()):.0f} s")
    wheels = {name: meta["sha256"] for name, meta in manifest["wheel"]["artifacts"].items()}
    line_build = {name: sha for name, sha in final["wheels"].items() if name.startswith("apache")}
    assert {name: wheels[name] for name in line_build} == line_build
    assert {a for s, a, target in steps_in(run.stderr) if s == "wheel" and "apache" in target} == {"reuse"}
    tested = _tested_on_every_platform(manifest)
    assert tested["upgrade_from"] == RUNTIME
    assert tested["upgrade"]["result"] == tested["smoke"]["result"] == "passed", tested
    images = manifest["targets"]["local"]["images"]["flavours"]["bullseye"][AMD64]["variants"]
    _runtime_platform_images(config, "4.2.1", manifest)
    pushed = _runtime_images(config)
    assert {tag: pushed[tag] for tag in ("4.2.1", "4.2", "4.2.1-base", "4.2-base")} == {
        "4.2.1": images["onbuild"]["image"],
        "4.2": images["onbuild"]["image"],
        "4.2.1-base": images["base"]["image"],
        "4.2-base": images["base"]["image"],
    }
    _ok(invoke(runtime["clone"], config, "verify", "runtime-4.2.1"))


@pytest.mark.runtime
def test_a_runtime_on_a_new_line_builds_that_line_upgrades_across_it_and_moves_no_other_tag(reference, runtime, figure):
    """Runtime 5.0.0 on Airflow 2.3.0: the line's own wheel, with its backported fix checked in the wheel stage;
    the upgrade test migrates a database of Runtime 4.2.1 (Airflow 2.2.4) to 2.3.0; `5.0`, `5.0-base` are its own
    and every 4.2 and AC tag stays where it was."""
    _, _, final, _ = reference
    run, config, manifest = _runtime_release(runtime, "runtime-5.0.0")
    seconds = sum(parse_time_line(run.stderr).values())
    figure(f"release runtime-5.0.0, the first build of the 2.3.0 line: {seconds:.0f} s")
    wheels = manifest["wheel"]["artifacts"]
    assert sorted(wheels) == [
        "apache-airflow-2.3.0+astro.1.tar.gz",
        "apache_airflow-2.3.0+astro.1-py3-none-any.whl",
        "astro_runtime-5.0.0-py3-none-any.whl",
    ]
    assert manifest["wheel"]["checks"]["patches"]["0001-mapped-literal-cross-product.check.py"].startswith("ok: ")
    tested = _tested_on_every_platform(manifest)
    assert tested["upgrade_from"] == "runtime-4.2.1"
    assert tested["upgrade"]["result"] == tested["smoke"]["result"] == "passed", tested
    settings = load_settings(config)

    def images_of(version: str) -> dict[str, str]:
        record = json.loads((settings.dist_dir / version / "release.json").read_text())
        variants = record["targets"]["local"]["images"]["flavours"]["bullseye"][AMD64]["variants"]
        return {variant: image["image"] for variant, image in variants.items()}

    _runtime_platform_images(config, "5.0.0", manifest)
    first, patch, new = images_of(RUNTIME), images_of("runtime-4.2.1"), images_of("runtime-5.0.0")
    assert _runtime_images(config) == {
        "4.2.0": first["onbuild"],
        "4.2.0-base": first["base"],
        "4.2.1": patch["onbuild"],
        "4.2": patch["onbuild"],  # 4.2 stays on 4.2.1
        "4.2.1-base": patch["base"],
        "4.2-base": patch["base"],
        "5.0.0": new["onbuild"],
        "5.0": new["onbuild"],
        "5.0.0-base": new["base"],
        "5.0-base": new["base"],
    }
    after = state(config)
    for tag in [t for t in final["registry"] if t.startswith("2.2.4-1")]:
        assert after["registry"][tag] == final["registry"][tag], tag
    _ok(invoke(runtime["clone"], config, "verify", "runtime-5.0.0"))
