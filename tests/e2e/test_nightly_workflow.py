"""nightly.yml under act (each job in a fresh copy of a committed tree) with `target: staging`, against the staging
services standing on 127.0.0.1 with the secrets the workflow expects: a dry-run dispatch computes the matrix and each
line's job reads the staging dev index and dev registries (TLS, credentials) to decide its nightly version and prints
the plan, writing nothing; then a full nightly of line 2.2.4 signs as nightly.yml through staging's GitHub Actions
identity provider, and the release gate refuses its certificate."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ac_release.clients import oci_release_files as release_files
from ac_release.commands.nightly import DevState
from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.supply_chain import signing
from ac_release.world.context import ReleaseContext
from tests.act import act, act_log
from tests.helpers import STAGING_ENV, git
from tests.secret_scan import SecretScan, secret

pytestmark = pytest.mark.e2e

WORKFLOW = ".github/workflows/nightly.yml"


def dispatch(repo: Path, env: dict[str, str], cache: Path, dry_run: bool, *args: str, timeout: int = 900):
    """nightly.yml dispatched on the repository's current branch, with the event GitHub sends: its inputs are
    strings, a boolean's too ("true"; act reads a JSON `true` there as false, and then ignores `--input`)."""
    event = cache.parent / "event.json"
    inputs = {"target": "staging", "dry_run": str(dry_run).lower()}
    ref = f"refs/heads/{git(repo, 'rev-parse', '--abbrev-ref', 'HEAD').strip()}"
    event.write_text(json.dumps({"ref": ref, "inputs": inputs, "repository": {"default_branch": "main"}}))
    return act(repo, repo / WORKFLOW, "workflow_dispatch", cache, "-e", str(event), *args, timeout=timeout, secrets=env)


def test_a_dry_run_dispatch_to_staging_decides_each_lines_nightly_and_writes_nothing(
    staging, tmp_path, monkeypatch, figure
):
    """In the staging services' committed copy of the tree (conftest.py's `staging`)."""
    release_repo, config, env = staging
    before = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    started = time.monotonic()
    result = dispatch(release_repo, env, tmp_path / "act", dry_run=True)
    seconds = time.monotonic() - started
    days = "|".join({before, dt.datetime.now(dt.UTC).strftime("%Y%m%d")})  # the run may cross midnight UTC
    log = act_log(result)
    (tmp_path / "act.log").write_text(log)
    assert result.returncode == 0, log[-5000:]
    # one job per line (act names matrix jobs `<name>-1`, `<name>-2`; they end in either order)
    assert sorted(re.findall(r"\[nightly/([^\]]+?)(?:-\d+)? *\] 🏁  Job succeeded", log)) == [
        "nightly 2.2.4 -> staging",
        "nightly 2.3.0 -> staging",
        "release lines",
    ]
    assert '::set-output:: matrix={"include": [{"line": "2.2.4"}, {"line": "2.3.0"}]}' in log
    # the dry-run step ran, the build step did not
    assert "Success - Main Nightly dry run of the line" in log
    assert "Main Nightly build of the line" not in log
    # it read the dev locations of staging (services up): each line's first nightly of the day, and its plan
    for line in ("2.2.4", "2.3.0"):
        version = re.search(rf"\| ({re.escape(line)}-\d+-dev(?:{days})01): first nightly of \d{{4}}-\d\d-\d\d\n", log)
        assert version, log[-5000:]
        assert f"| dry run: AC {version[1]} -> staging (nothing written)" in log
        assert re.search(rf"\| wheel +build +dist/{re.escape(version[1])}/", log)
    # nothing written: the dev index and dev registries of staging still hold nothing
    for name in STAGING_ENV.values():
        monkeypatch.setenv(name, env[name])
    dev = DevState(load_settings(config).target("staging").for_dev_build())
    assert dev.index_files() == set() and dev.image_tags() == set()
    scan = SecretScan(
        [
            *(secret(f"${name}", env[name]) for name in STAGING_ENV.values()),
            secret("the Actions identity request token", env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]),
        ]
    )
    scan.text(log, "the workflow run's log")
    assert not scan.findings, scan.report()
    figure(f"act: nightly.yml dry run to staging (2 jobs, each .ci/bootstrap in a fresh copy): {seconds:.0f} s")


NIGHTLY_SAN = "https://github.com/astronomer/ap-airflow/.github/workflows/nightly.yml@refs/heads/main"
RELEASE_SAN = NIGHTLY_SAN.replace("nightly.yml", "release.yml")


def test_a_nightly_is_signed_as_the_nightly_workflow_and_the_release_gate_refuses_it(
    staging, tmp_path, monkeypatch, figure
):
    """nightly.yml for line 2.2.4 (act's `--matrix`), for real: its job asks staging's GitHub Actions identity provider
    for nightly.yml's identity, as on GitHub. Its files verify as nightly.yml with the stock client's GitHub flags;
    as release.yml they do not, and the release gate refuses them."""
    from tests.integration.conftest import actions_env

    release_repo, config, env = staging
    nightly_env = env | actions_env(release_repo, env, "--workflow", "nightly.yml")
    started = time.monotonic()
    result = dispatch(release_repo, nightly_env, tmp_path / "act", False, "--matrix", "line:2.2.4", timeout=3600)
    seconds = time.monotonic() - started
    log = act_log(result)
    (tmp_path / "act.log").write_text(log)
    assert result.returncode == 0, log[-8000:]
    assert "Success - Main Nightly build of the line" in log
    (version,) = set(re.findall(r"\b(2\.2\.4-\d+-dev\d{10})\b", log))
    figure(f"act: nightly.yml for line 2.2.4 to staging, built, signed, published, tested, pushed: {seconds:.0f} s")
    for name in STAGING_ENV.values():
        monkeypatch.setenv(name, env[name])
    settings = load_settings(config)
    dev_target = settings.target("staging").for_dev_build()
    where = release_files.location(dev_target.registries[0])
    packages = dev_target.services.dir / "pypi-dev" / "packages"
    (wheel,) = [
        path
        for path in packages.iterdir()
        if path.name.startswith("apache_airflow-") and version.split("-dev")[1] in path.name
    ]
    (bundle_bytes,) = release_files.fetch_files(where, version, [f"{wheel.name}.sigstore.json"]).values()
    bundle = tmp_path / f"{wheel.name}.sigstore.json"
    bundle.write_bytes(bundle_bytes)
    client_env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_DATA_HOME": str(tmp_path / "data")}
    argv = [sys.executable, "-m", "sigstore", "--trust-config", str(dev_target.signing.trust_config), "verify"]
    argv += ["github", "--bundle", str(bundle), "--repository", "astronomer/ap-airflow", "--ref", "refs/heads/main"]
    as_nightly = subprocess.run(
        [*argv, "--cert-identity", NIGHTLY_SAN, str(wheel)], capture_output=True, text=True, env=client_env
    )
    assert as_nightly.returncode == 0, as_nightly.stderr[-2000:]
    figure(f"sigstore verify github --cert-identity {NIGHTLY_SAN}: OK for {wheel.name}")
    as_release = subprocess.run(
        [*argv, "--cert-identity", RELEASE_SAN, str(wheel)], capture_output=True, text=True, env=client_env
    )
    assert as_release.returncode != 0
    # the release gate (a release's signer: release.yml) refuses the nightly's certificate
    release = ReleaseContext.create("2.2.4-1", settings, "staging")
    with pytest.raises(ReleaseError, match=f"signature check failed for {re.escape(wheel.name)}"):
        signing.verify(release, wheel, bundle)
    nightly = ReleaseContext.create(version, settings, "staging")
    signing.verify(nightly, wheel, bundle)  # the nightly's own gate passes it
    scan = SecretScan(
        [
            *(secret(f"${name}", env[name]) for name in STAGING_ENV.values()),
            secret("the Actions identity request token", nightly_env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]),
        ]
    )
    scan.text(log, "the workflow run's log")
    assert not scan.findings, scan.report()
