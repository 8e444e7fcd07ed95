"""The `staging` target end to end, released by the release workflow itself (`release.yml` run by `act`, each job
in a fresh copy of the tree) on services on 127.0.0.1 that differ from the local target's in everything a target
can differ in: TLS with a CA the pipeline makes, an index taking a token, two registries requiring htpasswd
credentials, its own Sigstore through a trust config and an identity token from the environment, its own git remote.
The repository's own release.toml is used; only the staging services' directory is this test's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ac_release.clients import oci_release_files as release_files
from ac_release.clients import registry
from ac_release.clients.tlsclients import ssl_context
from ac_release.model.config import load_settings
from ac_release.model.names import WHEEL_RECORD
from ac_release.supply_chain import cosign
from tests.act import act_log
from tests.helpers import STAGING_ENV, git
from tests.secret_scan import SecretScan, identity_token_secret, secret
from tests.staging_run import VERSION, dispatch, invoke

pytestmark = pytest.mark.e2e


def test_the_staging_services_are_tls_with_credentials(staging):
    _, config, env = staging
    target = load_settings(config).target("staging")
    assert target.index.url.startswith("https://127.0.0.1:") and target.index.username == "__token__"
    assert len(target.registries) == 2
    assert target.signing.instance == "custom" and target.signing.trust_config.is_file()
    ca = target.services.ca_file.read_bytes()
    for repository in target.registries:
        assert repository.access.tls_verify and repository.access.username
        # dockerd's normal setting: the CA for HOST:PORT, written by services.up
        assert Path(f"/etc/docker/certs.d/{repository.host}/ca.crt").read_bytes() == ca
        # without credentials the registry answers 401, over TLS verified against the target's CA
        result = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(target.services.ca_file),
             f"https://{repository.host}/v2/"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.stdout == "401"


def test_a_registry_without_credentials_is_refused_in_preflight_naming_it(staging, released, tmp_path):
    """The second registry requires credentials, and this config has none for it: 401, refused before any write.
    (After the release workflow's run, which may be going on in the background: this test restarts the services.)"""
    release_repo, config, env = staging
    text = config.read_text()
    hub = f'password_env = "{STAGING_ENV["hub"]}"\n'
    assert text.count(hub) == 1
    lines = text.split(hub)[0].rstrip("\n").split("\n")
    assert lines[-1].startswith("username = ")  # the hub registry's user, right before its password_env
    without = tmp_path / "release.toml"
    without.write_text(f'root = "{release_repo}"\n' + "\n".join(lines[:-1]) + "\n" + text.split(hub)[1])
    (hub_registry,) = [r for r in load_settings(without).target("staging").registries if r.access.username is None]
    dist = load_settings(config).dist_dir
    try:
        result = invoke(release_repo, without, env, "release", VERSION, "--target", "staging")
    finally:
        assert invoke(release_repo, None, env, "services.up", "--target", "staging").returncode == 0
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: registry {hub_registry} refused access (401 unauthorized): it has no credentials here: "
        "set its username and password_env (or `docker login`)"
    )
    assert not (dist / VERSION / "release.json").exists()  # refused in preflight: nothing built, nothing written


def test_a_dispatch_from_another_branch_is_refused_before_any_secret_is_used(staging, released, tmp_path):
    """(After the release workflow's run: its jobs copy the tree of this repository when each starts.)"""
    release_repo, config, env = staging
    git(release_repo, "checkout", "-q", "-b", "feature")
    try:
        result = dispatch(release_repo, env, tmp_path / "act", timeout=600)
    finally:
        git(release_repo, "checkout", "-q", "main")
    log = act_log(result)
    assert result.returncode != 0
    plan = "[release/plan 2.2.4-1 -> staging]"
    guard = "Refuse a dispatch from any branch but the default one, before any secret is used"
    # the guard is the only step the job ran (between act's own set-up and completion), it failed with its one
    # line, and no other job started
    assert re.findall(r"^(\[[^\]]+\]) ⭐ Run (.+)$", log, re.MULTILINE) == [
        (plan, "Set up job"),
        (plan, f"Main {guard}"),
        (plan, "Complete job"),
    ], log[-5000:]
    # Its one line, at most once: act reads a step's output while the step runs, and of a step that ends within 2 ms
    # it sometimes shows nothing (seen on a loaded machine, here and under e2e.yml's outer runner). The line itself is
    # held exact by tests/unit/test_workflow_shape.py; what act shows of it must be that line and no other error.
    shown = log.count("release.yml runs from the default branch (main) only, not refs/heads/feature")
    assert shown <= 1 and log.count("::error::") <= shown, log[-5000:]
    assert f"{plan}   ❌  Failure - Main {guard}" in log and f"{plan} exit status 1" in log


def test_the_release_workflow_plans_an_astro_runtime_release_on_a_new_line(staging, released, tmp_path):
    """release.yml takes a Runtime version as it takes AC's: its plan job (a fresh copy, .ci/bootstrap, the dry run
    with the staging secrets, the matrix) for runtime-5.0.0, whose line (Airflow 2.3.0) nothing has built yet. (After
    the release workflow's run, as above.)"""
    release_repo, config, env = staging
    result = dispatch(release_repo, env, tmp_path / "act", "-j", "plan", version="runtime-5.0.0", timeout=600)
    log = act_log(result)
    assert result.returncode == 0, log[-5000:]
    assert re.findall(r"\[release/plan ([^\]]*)\] 🏁  Job succeeded", log) == ["runtime-5.0.0 -> staging"]
    (output,) = re.findall(r"::set-output:: matrix=(.*)", log)
    assert json.loads(output) == {
        "include": [
            {"version": "runtime-5.0.0", "flavour": "bullseye", "platform": platform}
            for platform in ("linux/amd64", "linux/arm64")
        ]
    }
    # the line's own wheel and the Runtime repositories of both staging registries, under seed 004's tags
    assert "apache_airflow-2.3.0+astro.1-py3-none-any.whl" in log and "astro_runtime-5.0.0-py3-none-any.whl" in log
    for repository in load_settings(config).target("staging").for_repository("ap-airflow", "astro-runtime").registries:
        for tag in ("5.0.0", "5.0", "5.0.0-base", "5.0-base"):
            assert f"{repository}:{tag} " in log, (repository, tag)


@pytest.fixture(scope="module")
def released(staging, staging_release, figure, tmp_path_factory):
    """The release workflow's run (started by test_release.py beside its releases when both are selected, else
    now), then `invoke verify` of its result from another checkout."""
    repo, _, env = staging
    result, seconds = staging_release.wait()
    log = act_log(result)
    (tmp_path_factory.getbasetemp() / "release-workflow.log").write_text(log)  # the whole run, to read afterwards
    assert result.returncode == 0, log[-8000:]
    figure(f"release.yml {VERSION} -> staging under act (7 jobs, each in a fresh copy): {seconds:.0f} s")
    started = time.monotonic()
    verified = invoke(repo, None, env, "verify", VERSION, "--target", "staging")
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
    figure(f"verify {VERSION} --target staging from another checkout: {time.monotonic() - started:.0f} s")
    return log, verified


def test_the_release_workflow_releases_to_staging_job_by_job(staging, released, monkeypatch):
    release_repo, config, env = staging
    log, verified = released
    succeeded = re.findall(r"\[release/(\w+) ([^\]]*)\] 🏁  Job succeeded", log)
    jobs = [job for job, _ in succeeded]
    # one images job per platform of the one flavour of `invoke matrix 2.2.4-1`, then the index job
    assert [job for job in jobs if job != "images"] == ["plan", "wheel", "index", "promote", "release"], succeeded
    assert jobs.index("wheel") < min(i for i, job in enumerate(jobs) if job == "images")
    assert max(i for i, job in enumerate(jobs) if job == "images") < jobs.index("index")
    images_jobs = [matrix for job, matrix in succeeded if job == "images"]
    assert len(images_jobs) == 2 and all("bullseye" in matrix for matrix in images_jobs), succeeded
    shown = {platform for platform in ("linux/amd64", "linux/arm64") for matrix in images_jobs if platform in matrix}
    assert shown == {"linux/amd64", "linux/arm64"}, succeeded
    # Each job on a fresh machine: no dist/ travelled, the images job read the wheels' record back from the
    # release files and built FROM the published wheels; promote moved the floating tags registry-side.
    assert "restored from " in log and WHEEL_RECORD in log
    assert not (release_repo / "dist").exists()  # nothing was written into the checkout act copied
    for name in STAGING_ENV.values():
        monkeypatch.setenv(name, env[name])
    target = load_settings(config).target("staging")
    for repository in target.registries:
        tags = set(registry.tags(repository))
        assert {"2.2.4-1", "2.2.4-1-bullseye", "2.2.4", "2.2.4-onbuild"} <= tags, repository
        for immutable, floating in (("2.2.4-1-bullseye", "2.2.4"), ("2.2.4-1-bullseye-onbuild", "2.2.4-onbuild")):
            index = registry.remote_platforms(repository, immutable)
            assert registry.remote_platforms(repository, floating) == index
            # the index the index job assembled: the platform tags the images jobs pushed, on another runner each
            assert index.platforms == {
                platform: registry.remote_image(repository, f"{immutable}-{platform.split('/')[1]}").digest
                for platform in ("linux/amd64", "linux/arm64")
            }
    files = release_files.listing(release_files.location(target.registries[0]), VERSION)
    assert WHEEL_RECORD in files and len(files) == 3 * 3 + 1
    remote = subprocess.run(["git", "ls-remote", "--tags", target.git_remote], capture_output=True, text=True)
    assert "refs/tags/v2.2.4-1^{}" in remote.stdout
    assert len(list((target.services.dir / "pypi" / "packages").iterdir())) == 3
    checked = [line.split(": ")[0] for line in verified.stdout.splitlines()]
    images = [line for line in checked if line.startswith("ok  127.0.0.1:")]
    # per registry: the base and onbuild indexes, and each one's two platforms, run and attested
    assert sum(line.endswith(" index") for line in images) == 2 * 2
    assert sum(line.endswith(" attestations") for line in images) == 2 * 2 * 2
    assert sum(not line.endswith((" index", " attestations")) for line in images) == 2 * 2 * 2
    # No secret of the run in the runner's log, the verification or the services' logs: the token, both registry
    # passwords, the identity token.
    scan = SecretScan(
        [
            *(secret(f"${name}", env[name]) for name in STAGING_ENV.values()),
            secret("the Actions identity request token", env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]),
            identity_token_secret("an Actions identity token", actions_token(env, target.services.ca_file)),
        ]
    )
    scan.text(log, "the workflow run's log")
    scan.text(verified.stdout + verified.stderr, "verify")
    scan.tree(target.services.dir / "run")
    assert not scan.findings, scan.report()


def test_nothing_released_to_staging_is_read_as_the_local_targets(staging, released):
    """The same version planned for `local` in the same checkout: every step is still to do there."""
    release_repo, _, _ = staging
    planned = invoke(release_repo, None, {}, "release", VERSION, "--dry-run")
    assert planned.returncode == 0, planned.stderr[-2000:]
    actions = {line.split()[1] for line in planned.stdout.splitlines()[1:] if line.split()[:1] != ["preflight"]}
    assert "skip" not in actions and "keep" not in actions, planned.stdout


def actions_token(env: dict[str, str], ca_file) -> str:
    """A token of the staging services' GitHub Actions identity provider (https, the services' CA), asked for as a
    job asks."""
    request = urllib.request.Request(
        env["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience=sigstore",
        headers={"Authorization": f"bearer {env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"},
    )
    with urllib.request.urlopen(request, timeout=30, context=ssl_context(ca_file)) as answer:
        return json.load(answer)["value"]


RELEASE_SAN = "https://github.com/astronomer/ap-airflow/.github/workflows/release.yml@refs/heads/main"


def test_a_stranger_verifies_the_staging_release_with_the_stock_clients_github_flags(
    staging, released, tmp_path, monkeypatch, figure
):
    """The commands README's "Releasing" gives for production, with staging's trust root: `sigstore verify github`
    for each published file, `cosign verify` with the GitHub workflow flags for each image; a certificate of the
    nightly workflow, another ref or another repository is refused."""
    _, config, env = staging
    for name in STAGING_ENV.values():
        monkeypatch.setenv(name, env[name])
    target = load_settings(config).target("staging")
    trust_config = str(target.signing.trust_config)
    where = release_files.location(target.registries[0])
    published = release_files.listing(where, VERSION)
    packages = target.services.dir / "pypi" / "packages"  # what the index serves
    wheels = sorted(path for path in packages.iterdir() if path.name.endswith((".whl", ".tar.gz")))
    bundles = release_files.fetch_files(where, VERSION, [f"{path.name}.sigstore.json" for path in wheels])
    github = ["--repository", "astronomer/ap-airflow", "--ref", "refs/heads/main", "--trigger", "workflow_dispatch"]
    client_env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_DATA_HOME": str(tmp_path / "data")}

    def sigstore_verify(path: Path, *flags: str) -> subprocess.CompletedProcess:
        bundle = tmp_path / f"{path.name}.sigstore.json"
        bundle.write_bytes(bundles[bundle.name])
        argv = [sys.executable, "-m", "sigstore", "--trust-config", trust_config, "verify", "github"]
        argv += ["--bundle", str(bundle), *flags, str(path)]
        return subprocess.run(argv, capture_output=True, text=True, env=client_env)

    assert published and len(wheels) == 3
    for path in wheels:
        ok = sigstore_verify(path, "--cert-identity", RELEASE_SAN, *github)
        assert ok.returncode == 0 and f"OK: {path}" in ok.stdout + ok.stderr, ok.stderr[-2000:]
    figure(f"sigstore verify github --cert-identity {RELEASE_SAN} {' '.join(github)}: OK for {len(wheels)} files")
    nightly_san = RELEASE_SAN.replace("release.yml", "nightly.yml")
    for flags in (
        ["--cert-identity", nightly_san, *github],
        ["--cert-identity", RELEASE_SAN, *github[:3], "refs/heads/feature", *github[4:]],
        ["--cert-identity", RELEASE_SAN, "--repository", "someone/fork", *github[2:]],
        ["--cert-identity", RELEASE_SAN, *github[:5], "push"],
    ):
        refused = sigstore_verify(wheels[0], *flags)
        assert refused.returncode != 0, flags
    # cosign, as a user runs it: the image by digest, the workflow's identity and the GitHub extensions it names
    (image,) = [i for i in released_images_of(config) if i.repository == target.registries[0]][:1]
    reference = cosign.ImageReference.of(target.registry(image.repository), image.digest)
    flags = [
        "--certificate-identity", RELEASE_SAN,
        "--certificate-oidc-issuer", "https://token.actions.githubusercontent.com",
        "--certificate-github-workflow-repository", "astronomer/ap-airflow",
        "--certificate-github-workflow-ref", "refs/heads/main",
        "--certificate-github-workflow-trigger", "workflow_dispatch",
    ]  # fmt: skip
    trust = cosign.Trust.load(target.signing.trust_config)
    with cosign.environment(trust, reference) as cosign_env:
        verified = subprocess.run(
            [cosign.cosign_binary(), "verify", *flags, str(reference)], capture_output=True, text=True, env=cosign_env
        )
        assert verified.returncode == 0, verified.stderr[-2000:]
        (payload, *_) = json.loads(verified.stdout)
        optional = payload["optional"]
        assert (optional["Subject"], optional["githubWorkflowRepository"], optional["githubWorkflowRef"]) == (
            RELEASE_SAN,
            "astronomer/ap-airflow",
            "refs/heads/main",
        )
        figure(f"cosign verify {reference}: " + json.dumps({k: v for k, v in optional.items() if k != "Bundle"}))
        other_ref = [*flags[:7], "refs/heads/feature", *flags[8:]]
        refused = subprocess.run(
            [cosign.cosign_binary(), "verify", *other_ref, str(reference)],
            capture_output=True,
            text=True,
            env=cosign_env,
        )
        assert refused.returncode != 0


def released_images_of(config: Path):
    from ac_release.world.context import ReleaseContext
    from ac_release.world.released_images import released_images

    return released_images(ReleaseContext.create(VERSION, load_settings(config), "staging"))
