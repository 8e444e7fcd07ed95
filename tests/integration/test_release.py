"""`invoke release 2.2.4-1` end to end, once, uninterrupted, with its smoke tests, on a committed copy of this
repository with its own local services (the gate's one full release): every stage recorded, the dry run said what the
run then did, refusals of a finished release made as the dry run says, a re-run that moves nothing, verify, status,
and no secret in anything it left. The long scenarios built on the same release (kill -9 anywhere and resume, the
nightlies, the backport release, the Runtime chain) are the end-to-end tier's: tests/e2e/test_release_scenarios.py."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ac_release.model.config import load_settings
from ac_release.pipeline.run import RELEASE
from ac_release.services.manager import LocalServices
from tests.helpers import git as _git
from tests.helpers import write_config
from tests.release_run import VERSION, files, invoke, planned, state, steps_in

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def release_repo(reference_started):
    """The repository the reference release runs from (conftest's reference_started, begun with the session)."""
    return reference_started.repo


@pytest.fixture(scope="module")
def reference(reference_started):
    return reference_started.result()


def test_release_does_every_stage_and_records_it(reference):
    config, result, final, _ = reference
    assert final["stages"] == sorted(set(RELEASE) - {"preflight"})  # preflight checks, it produces nothing
    assert set(final["index"]) == set(final["wheels"]) and final["index"] == final["wheels"]
    platform_tags = {f"2.2.4-1-bullseye{v}-{arch}" for v in ("", "-onbuild") for arch in ("amd64", "arm64")}
    assert {
        "2.2.4-1",
        "2.2.4-1-bullseye",
        "2.2.4",
        "2.2.4-bullseye",
        "2.2.4-1-onbuild",
        "2.2.4-onbuild",
        "2.2.4-1-bullseye-onbuild",
        "2.2.4-bullseye-onbuild",
        *platform_tags,
    } == set(final["registry"])
    assert "refs/tags/v2.2.4-1^{}" in final["git"]
    # each platform's image signed and attested, each index signed
    indexes = {final["registry"][tag][0].split(":")[1] for tag in ("2.2.4-1", "2.2.4-1-onbuild")}
    platforms = {final["registry"][tag][0].split(":")[1] for tag in platform_tags}
    assert len(platforms) == 4 and not platforms & indexes
    expected = [f"sha256-{d}.sig" for d in indexes] + [f"sha256-{d}.{s}" for d in platforms for s in ("att", "sig")]
    assert final["signed"] == sorted(expected)
    notes = (load_settings(config).dist_dir / VERSION / "RELEASE_NOTES.md").read_text()
    assert notes.startswith("# Astronomer Certified 2.2.4-1 (2026-11-22)\n")
    assert final["registry"]["2.2.4-1"][0] in notes
    summary = result.stderr + result.stdout
    for stage in RELEASE:
        assert f"✓ {stage} (" in summary
    for platform in ("linux/amd64", "linux/arm64"):
        assert f"smoke/bullseye/{platform}" in summary and f"upgrade/bullseye/{platform}" in summary
    assert "(linux/amd64) id" in summary and "(linux/arm64) id" in summary
    # counted, nothing skipped; arm64, emulated here, without the 5 `full` tests (the end-to-end tier runs them)
    assert summary.count("(linux/amd64) id sha256:") == summary.count("(linux/arm64) id sha256:") == 2
    assert summary.count("(smoke passed: 24 passed; upgrade: no earlier release)") == 2
    assert summary.count("(smoke passed: 19 passed; upgrade: no earlier release)") == 2


def test_the_dry_run_said_what_the_release_then_did(reference):
    """Nothing done: every step the dry run printed is a step the release took, and no other."""
    _, result, _, plan = reference
    planned_steps, taken = steps_in(plan.stdout), steps_in(result.stderr)
    assert planned_steps == taken
    assert {action for _, action, _ in taken} == {"build", "sign", "upload", "run", "skip", "push", "move", "tag"}
    indexed = [(action, target.rsplit(":", 1)[1]) for stage, action, target in taken if stage == "index"]
    immutable = ("2.2.4-1", "2.2.4-1-bullseye", "2.2.4-1-onbuild", "2.2.4-1-bullseye-onbuild")
    # each index, and its signature: decided with it, named by its tag (the dry run knows no digest yet)
    assert indexed == [step for tag in immutable for step in (("push", tag), ("sign", f"{tag}.sig"))]


def refused_as_planned(repo: Path, config: Path, watched: list[Path]) -> tuple[str, str, str]:
    """The dry run refuses; the release then refuses with the dry run's first refusal, before any stage acts,
    and nothing under `watched` changes. Returns that refusal."""
    plan = invoke(repo, config, "release", VERSION, "--dry-run")
    assert plan.returncode == 0, plan.stderr[-3000:]
    refused = [step for step in steps_in(plan.stdout) if step[1] == "refuse"]
    assert refused, plan.stdout
    before = {path: files(path) for path in watched}
    run = invoke(repo, config, "release", VERSION)
    assert run.returncode == 1, run.stderr[-3000:]
    assert run.stderr.strip().splitlines()[-1].startswith(f"error: refused: {refused[0][2]}: "), run.stderr[-2000:]
    assert steps_in(run.stderr) == []  # refused in the preflight: no stage decided or acted
    assert {path: files(path) for path in watched} == before
    return refused[0]


def test_changed_image_inputs_are_refused_as_the_dry_run_says(release_repo, reference):
    """A finished release whose image scripts changed: the dry run says build, then refuse at push (the new image
    could never take the immutable tags); the release refuses the same before rebuilding anything."""
    config, _, final, _ = reference
    settings = load_settings(config)
    script = release_repo / "images" / "include" / "clean-airflow-logs"
    script.write_text(script.read_text() + "# changed after the release\n")
    _git(release_repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "change")
    try:
        plan = planned(invoke(release_repo, config, "release", VERSION, "--dry-run").stdout)
        assert {action for target, action in plan.items() if target.startswith("ac-release/")} == {"build"}
        services = LocalServices(settings.services)
        stage, _, target = refused_as_planned(
            release_repo, config, [settings.dist_dir, services.pypi_dir, services.registry_dir]
        )
        assert stage == "push" and target.endswith(":2.2.4-1-bullseye-amd64")  # the platform's own tag comes first
    finally:
        _git(release_repo, "reset", "-q", "--hard", "HEAD~1")
    assert state(config) == final


def test_a_bundle_that_no_longer_verifies_is_refused_as_the_dry_run_says(reference):
    config, _, final, _ = reference
    settings = load_settings(config)
    bundles = settings.dist_dir / VERSION / "sigstore" / "local"
    wheel, meta = "apache_airflow-2.2.4+astro.1-py3-none-any.whl", "astronomer_certified-2.2.4.post1-py3-none-any.whl"
    kept = (bundles / f"{wheel}.sigstore.json").read_bytes()
    shutil.copy(bundles / f"{meta}.sigstore.json", bundles / f"{wheel}.sigstore.json")
    try:
        services = LocalServices(settings.services)
        stage, _, target = refused_as_planned(settings.root, config, [services.pypi_dir, services.registry_dir])
        assert (stage, target) == ("sign", f"{VERSION}/sigstore/local/{wheel}.sigstore.json")
    finally:
        (bundles / f"{wheel}.sigstore.json").write_bytes(kept)
    assert state(config) == final


def test_conflicting_immutable_and_git_tags_are_refused_before_anything_is_built(release_repo, reference, tmp_path):
    """Nothing done here yet, but the registry already holds 2.2.4-1-bullseye with another image and the remote
    has v2.2.4-1 at another commit: both are refusals of the dry run, and the release stops before the first
    build or upload."""
    config = write_config(tmp_path, root=release_repo)
    assert invoke(release_repo, config, "services.up").returncode == 0
    settings = load_settings(config)
    services = LocalServices(settings.services)
    try:
        (repository,) = settings.target(None).registries
        from ac_release.building.baseimage import base_reference
        from ac_release.model.config import docker_command

        docker = docker_command("auto")
        subprocess.run(
            [*docker, "tag", base_reference("debootstrap", "bullseye", "3.9"), f"{repository}:2.2.4-1-bullseye"],
            check=True,
        )
        subprocess.run([*docker, "push", "--quiet", f"{repository}:2.2.4-1-bullseye"], check=True, capture_output=True)
        other = _git(release_repo, "commit-tree", "-m", "elsewhere", "HEAD^{tree}").strip()
        _git(release_repo, "push", "-q", str(services.git_remote), f"{other}:refs/tags/v2.2.4-1")
        plan = planned(invoke(release_repo, config, "release", VERSION, "--dry-run").stdout)
        assert plan[f"{repository}:2.2.4-1-bullseye"] == "refuse"
        assert plan[f"v2.2.4-1@{services.git_remote}"] == "refuse"
        refused_as_planned(release_repo, config, [settings.dist_dir, services.pypi_dir])
        assert not (settings.dist_dir / VERSION / "release.json").exists()  # not even the wheels were built
        assert list((services.pypi_dir / "packages").iterdir()) == []
    finally:
        services.down(log=lambda _: None)


def test_a_rerun_does_nothing(reference, figure):
    """Its time is a figure, not an assertion (speed targets live in `nox -s bench`): in a whole integration session
    the staging workflow's run goes on beside it."""
    config, _, final, _ = reference
    settings = load_settings(config)
    services = LocalServices(settings.services)
    before = {
        part: files(path)
        for part, path in [
            ("index", services.pypi_dir / "packages"),
            ("registry", services.registry_dir / "data"),
            ("remote", services.git_remote),
        ]
    }
    started = time.monotonic()
    result = invoke(settings.root, config, "release", VERSION)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    figure(f"re-run of the finished release {VERSION}: {seconds:.1f} s")
    assert {
        part: files(path)
        for part, path in [
            ("index", services.pypi_dir / "packages"),
            ("registry", services.registry_dir / "data"),
            ("remote", services.git_remote),
        ]
    } == before  # zero bytes uploaded or pushed
    figure("re-run: no file of the index, the registry or the git remote was written (0 bytes moved)")
    assert state(config) == final
    output = result.stderr + result.stdout
    for skipped in (
        "wheel: dist/2.2.4-1 already holds",
        "publish: http://",
        "images: every flavour is built from these inputs",
        "test: every flavour's images already passed",
    ):
        assert skipped in output
    plan = invoke(settings.root, config, "release", VERSION, "--dry-run")
    assert steps_in(plan.stdout) == steps_in(output)  # finished: the dry run says what the run then did (nothing)
    assert {action for _, action, _ in steps_in(output)} == {"keep", "skip"}


def test_verify_status_and_dry_run(reference):
    config, _, final, _ = reference
    root = load_settings(config).root
    verified = invoke(root, config, "verify", VERSION)
    assert verified.returncode == 0, verified.stderr[-3000:]
    (repository,) = load_settings(config).target(None).registries
    # every index, then each platform of each (in the index's order: amd64, arm64)
    indexes = sorted(
        (final["registry"][tag][0], variant) for tag, variant in (("2.2.4-1", ""), ("2.2.4-1-onbuild", "-onbuild"))
    )
    platforms = [
        final["registry"][f"2.2.4-1-bullseye{variant}-{arch}"][0]
        for _, variant in indexes
        for arch in ("amd64", "arm64")
    ]
    assert [line.split(": ")[0] for line in verified.stdout.splitlines()] == [
        "ok  apache-airflow-2.2.4+astro.1.tar.gz",
        "ok  apache_airflow-2.2.4+astro.1-py3-none-any.whl",
        "ok  astronomer_certified-2.2.4.post1-py3-none-any.whl",
        *[f"ok  {repository}@{digest} index" for digest, _ in indexes],
        *[f"ok  {repository}@{digest} attestations" for digest in platforms],
        *[f"ok  {repository}@{digest}" for digest in platforms],
    ]
    dist = load_settings(config).dist_dir
    before = files(dist)
    for args in (["status", VERSION], ["release", VERSION, "--dry-run"]):
        result = invoke(root, config, *args)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "refuse" not in result.stdout and "CONFLICT" not in result.stdout
    assert set(planned(result.stdout).values()) == {"keep", "skip"}  # a finished release: nothing left to do
    assert files(dist) == before
    assert state(config) == final


@pytest.mark.parametrize("platform, machine", [("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")])
def test_a_user_pulls_the_floating_tag_on_each_platform_and_runs_it(reference, platform, machine):
    """Issue 30's done-when: `docker pull --platform linux/arm64` of `2.2.4` runs `uname -m` -> aarch64 and `airflow
    version` -> 2.2.4+astro.1 (emulated on an amd64 machine); linux/amd64 likewise."""
    from ac_release.model.config import docker_command

    config, _, final, _ = reference
    (repository,) = load_settings(config).target(None).registries
    docker = docker_command("auto")
    reference_ = f"{repository}:2.2.4"
    pulled = subprocess.run([*docker, "pull", "--platform", platform, reference_], capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stderr
    arch = platform.split("/")[1]
    assert (
        final["registry"][f"2.2.4-1-bullseye-{arch}"][1]
        == subprocess.run(
            [*docker, "image", "inspect", "--format", "{{.Id}}", reference_], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    run = [*docker, "run", "--rm", "--platform", platform, reference_]
    assert subprocess.run([*run, "uname", "-m"], capture_output=True, text=True).stdout.strip() == machine
    version = subprocess.run([*run, "airflow", "version"], capture_output=True, text=True).stdout.strip()
    assert version.splitlines()[-1] == "2.2.4+astro.1"


def test_verify_needs_nothing_of_the_machine_that_built(reference, tmp_path):
    """The release is built FROM a debootstrap base made here from Debian's archive and never pushed: its images
    record it in their OCI base labels, and `invoke verify` passes with a Docker engine that never held it (a docker
    CLI that knows no `ac-release/debian` image and no image of that id, and notes every call it gets). The local
    engine keeps its base: other tests, and other releases on this machine, need it."""
    from ac_release.building.baseimage import BASE_DIGEST_LABEL, BASE_NAME_LABEL, base_reference
    from ac_release.clients import registry
    from ac_release.model.config import docker_command

    config, _, final, _ = reference
    settings = load_settings(config)
    (repository,) = settings.target(None).registries
    base = base_reference("debootstrap", "bullseye", "3.9")
    docker = docker_command("auto")
    base_id = subprocess.run(
        [*docker, "image", "inspect", "--format", "{{.Id}}", base], capture_output=True, text=True, check=True
    ).stdout.strip()
    for tag in ("2.2.4-1", "2.2.4-1-onbuild"):
        labels = registry.labels(repository, final["registry"][tag][0])
        assert (labels[BASE_NAME_LABEL], labels[BASE_DIGEST_LABEL]) == (base, base_id)
    calls = tmp_path / "docker-calls"
    cli = tmp_path / "docker"
    cli.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >> {shlex.quote(str(calls))}\n"
        f'case "$*" in *ac-release/debian*|*{base_id.removeprefix("sha256:")}*)\n'
        '    echo "Error response from daemon: No such image" >&2; exit 1;;\n'
        "esac\n"
        f'exec {shlex.join(docker)} "$@"\n'
    )
    cli.chmod(0o755)
    elsewhere = tmp_path / "release.toml"
    text = config.read_text()
    assert text.count('docker = "auto"') == 1
    elsewhere.write_text(text.replace('docker = "auto"', f'docker = "{cli}"'))
    verified = invoke(settings.root, elsewhere, "verify", VERSION)
    assert verified.returncode == 0, verified.stderr[-3000:]
    asked = calls.read_text().splitlines()
    assert any(call.startswith("pull ") for call in asked)  # verify's Docker engine was this one
    assert not [call for call in asked if "ac-release/debian" in call or base_id.removeprefix("sha256:") in call]
    assert subprocess.run([*docker, "image", "inspect", base], capture_output=True).returncode == 0  # still here


def test_no_secret_in_output_logs_layers_or_history(reference, figure):
    """The run's secrets (index password, an identity token of its Sigstore, the Sigstore CA and OIDC keys), also
    encoded, in nothing the release left: its output, the cache's and the services' logs, dist/, and the history and
    every layer of every image the manifest records. tests/integration/test_secret_scan.py proves the same scan
    finds each of them where it leaks. The local target has no registry credentials."""
    from rich.console import Console

    from ac_release.world.context import ReleaseContext
    from tests.secret_scan import SecretScan, release_secrets

    config, result, _, plan = reference
    settings = load_settings(config)
    ctx = ReleaseContext.create(VERSION, settings, console=Console(stderr=True, quiet=True))
    scan = SecretScan(release_secrets(ctx))
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr), ("dry run's stdout", plan.stdout)):
        scan.text(text, f"the release's {name}")
    for directory in (settings.cache_dir / "logs", LocalServices(settings.services).dir / "run", ctx.dist):
        scan.tree(directory)
    assert {"release.json", "RELEASE_NOTES.md"} <= {p.name for p in ctx.dist.iterdir()}
    manifest = json.loads((ctx.dist / "release.json").read_text())
    images = [
        variant["image"]
        for flavour in manifest["targets"]["local"]["images"]["flavours"].values()
        for platform in flavour.values()
        for variant in platform["variants"].values()
    ]
    assert len(images) >= 4
    scan.history(images)
    started = time.monotonic()
    scan.saved(images)
    seconds = time.monotonic() - started
    figure(
        f"secret scan of docker save of {len(images)} images ({scan.layers} layers, {scan.files} files, "
        f"{scan.bytes / 1e9:.2f} GB scanned in all, {len(scan.secrets)} secrets): {seconds:.0f} s"
    )
    assert scan.layers >= 2 and scan.files > 1000
    assert not scan.findings, scan.report()


def test_the_audit_reads_each_platforms_sbom_and_names_the_cves_its_updates_fix(reference, tmp_path, figure):
    """`invoke audit` on the release: each platform's Debian packages from its verified SBOM against Debian's archive
    today. An image whose base was built without bullseye-security (its label says so: the archive did not serve
    that suite's arm64 pool) has pending security updates whose CVEs the updates' own changelogs name; one built
    with it, minutes ago, has none. The exit status is 3 exactly when some image has them."""
    from ac_release.building.baseimage import SECURITY_LABEL
    from ac_release.clients import registry

    config, _, final, _ = reference
    settings = load_settings(config)
    target = settings.target(None)
    result = invoke(settings.root, config, "audit", "--json", str(tmp_path / "audit.json"))
    assert result.returncode in (0, 3), result.stderr[-3000:]
    releases = json.loads((tmp_path / "audit.json").read_text())["releases"]
    ours = {(r["product"], r["line"]): r for r in releases}
    assert ours["certified", "2.2.4"]["version"] == VERSION
    others = [r for key, r in ours.items() if key != ("certified", "2.2.4")]
    assert others and all(r["version"] is None and r["note"].startswith("nothing released on ") for r in others)
    (repository,) = target.registries
    images = ours["certified", "2.2.4"]["images"]
    expected = {f"{repository}@{final['registry'][f'2.2.4-1-bullseye-{arch}'][0]}" for arch in ("amd64", "arm64")}
    assert {image["image"] for image in images} == expected
    for image in images:
        labels = registry.labels(target.registry(repository), image["image"].split("@")[1])
        security = [u for u in image["updates"] if u["suite"] == "bullseye-security"]
        if SECURITY_LABEL in labels:  # built without the security suite
            named = [(u["package"], u["installed"], u["available"], u["cves"]) for u in security if u["cves"]]
            assert named, f"{image['platform']}: built without bullseye-security, yet no update names a CVE"
            package, installed, available, cves = named[0]
            figure(f"audit, {image['platform']} built without bullseye-security: {len(security)} security updates, "
                   f"e.g. {package} {installed} -> {available} fixes {', '.join(cves[:3])}")  # fmt: skip
            assert all(cve.startswith("CVE-") for u in named for cve in u[3])
        else:
            assert security == [], f"{image['platform']}: built with bullseye-security, yet {security[0]}"
    pending = any(image["security_updates"] for image in images)
    assert result.returncode == (3 if pending else 0)
    assert f"Astronomer Certified {VERSION} (line 2.2.4, LTS, supported until " in result.stdout
    if pending:
        assert result.stderr.splitlines() == [f"pending security updates: Astronomer Certified {VERSION}"]
