"""backport.yml run by the Actions runner (act, each job in a fresh copy of a committed tree), with the patch URL
served over HTTPS on 127.0.0.1: every step up to the pull request runs for real, and the pull request step, the
only one that needs GitHub, is the one that fails here.

The workflow accepts https URLs only (`curl --proto =https`), here as on GitHub. The test serves the patch with a
certificate of its own CA and hands curl a bundle holding the machine's CAs plus that one in CURL_CA_BUNDLE, the
variable these machines already set for their TLS-intercepting network; the workflow itself is not changed for it.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from ac_release.services.tls import ensure_server_certificate
from tests.act import act, act_log
from tests.helpers import REPO, git
from tests.local_http import LocalHTTPServer

pytestmark = pytest.mark.e2e

WORKFLOW = ".github/workflows/backport.yml"
DATA = REPO / "tests" / "data" / "backport"
FIX = DATA / "0001-Fix-Resources-__eq__-check-21442.patch"
STALE = DATA / "0001-Compare-resources-with-vars-does-not-apply.patch"
NAME = "0002-fix-resources-eq-check"
STEPS = [
    "Set up the machine",
    "Download the patch",
    "Backport",
    "Commit the backport on its branch",
    "Release dry run of the next build",
    "Push the branch, open the pull request and run CI on it",
]


@pytest.fixture(scope="module")
def patch_server(tmp_path_factory):
    """The two patches at GitHub-like paths, over HTTPS with a CA of this test."""
    tls = tmp_path_factory.mktemp("tls")
    ensure_server_certificate(tls / "ca" / "ca.crt", tls / "server.crt", tls / "server.key", "127.0.0.1")
    files = {
        "/apache/airflow/commit/fix.patch": FIX.read_bytes(),
        "/apache/airflow/commit/stale.patch": STALE.read_bytes(),
    }

    def handle(request):
        body = files.get(request.path)
        request.send_response(200 if body else 404)
        request.send_header("Content-Type", "text/plain; charset=utf-8")
        request.send_header("Content-Length", str(len(body or b"")))
        request.end_headers()
        request.wfile.write(body or b"")

    server = LocalHTTPServer(handle)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls / "server.crt", tls / "server.key")
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    bundle = tls / "bundle.pem"
    machine = Path("/etc/ssl/certs/ca-certificates.crt")
    bundle.write_bytes((machine.read_bytes() if machine.is_file() else b"") + (tls / "ca" / "ca.crt").read_bytes())
    with server:
        yield f"https://127.0.0.1:{server.port}", bundle, server


def dispatch(repo: Path, patch_url: str, cache: Path) -> tuple[int, str]:
    inputs = ["--input", "line=2.2.4", "--input", f"patch={patch_url}"]
    result = act(repo, repo / WORKFLOW, "workflow_dispatch", cache, *inputs, timeout=900)
    log = act_log(result)
    (cache.parent / "act.log").write_text(log)  # the whole run, to read after a failure
    return result.returncode, log


def step_results(log: str) -> list[tuple[str, str]]:
    """(Success|Failure, step name) of each main step after the checkout (skipped by act), in the order they ran."""
    return [
        (m[1], m[2].split(" (")[0])
        for m in re.finditer(r"\[backport/[^\]]+\]\s+\S+\s+(Success|Failure) - Main (.+?)(?: \[|$)", log, re.M)
        if not m[2].startswith("actions/checkout@")
    ]


@pytest.fixture(scope="module")
def runs(release_repo, patch_server, tmp_path_factory, figure):
    """The fix and the stale patch dispatched at the same time (each run spends most of its time in .ci/bootstrap)."""
    base, bundle, server = patch_server
    before = git(release_repo, "status", "--porcelain", "--untracked-files=all")
    urls = {name: f"{base}/apache/airflow/commit/{name}.patch" for name in ("fix", "stale")}
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as env, ThreadPoolExecutor(len(urls)) as pool:
        env.setenv("CURL_CA_BUNDLE", str(bundle))  # act passes its environment to the steps it runs here
        futures = {
            n: pool.submit(dispatch, release_repo, url, tmp_path_factory.mktemp(n) / "act") for n, url in urls.items()
        }
        results = {name: future.result() for name, future in futures.items()}
    figure(f"act: backport.yml, a fix (up to the pull request step) and a stale patch, side by side: "
           f"{time.monotonic() - started:.0f} s")  # fmt: skip
    assert git(release_repo, "status", "--porcelain", "--untracked-files=all") == before  # the checkout is untouched
    assert sorted(path for path, _ in server.requests) == sorted(urlsplit(url).path for url in urls.values())
    return results


def test_backport_of_a_fix_runs_every_step_up_to_the_pull_request(runs, release_repo):
    code, log = runs["fix"]
    assert code != 0, log[-5000:]
    assert step_results(log) == [("Success", step) for step in STEPS[:-1]] + [("Failure", STEPS[-1])], log[-5000:]
    # the backport wrote the patch, its check and the changelog entry in the job's copy, and said what is next
    assert (
        f"| wrote wheel/2.2.4/patches/{NAME}.patch: the series of 2 patches applies to apache-airflow-2.2.4.tar.gz"
    ) in log
    assert f"| wrote wheel/2.2.4/patches/{NAME}.check.py: it fails until you fill it in" in log
    assert "| wrote changelog/2.2.4.md: 2.2.4-2, TBD, Bug Fixes: Backport of apache/airflow#21442: Fix Resources" in log
    assert "|   invoke release 2.2.4-2" in log
    assert f"::set-output:: branch=backport/2.2.4-2/{NAME}" in log
    # committed on its branch: the three files, nothing else
    assert re.search(r"\| +3 files changed", log)
    assert re.search(rf"\| +create mode 100644 wheel/2\.2\.4/patches/{NAME}\.patch", log)
    assert re.search(rf"\| +create mode 100644 wheel/2\.2\.4/patches/{NAME}\.check\.py", log)
    # the dry run of the build it printed, from that commit: the plan of 2.2.4-2
    assert "| dry run: Astronomer Certified 2.2.4-2 -> local (nothing written)" in log
    assert re.search(r"\| wheel +build +dist/2\.2\.4-2/apache_airflow-2\.2\.4\+astro\.2-py3-none-any\.whl", log)
    assert re.search(r"\| images +build +ac-release/local/ap-airflow:2\.2\.4-2-bullseye ", log)
    assert not (release_repo / "wheel" / "2.2.4" / "patches" / f"{NAME}.patch").exists()


def test_a_patch_that_does_not_apply_fails_the_backport_step_with_the_rejected_hunk(runs):
    code, log = runs["stale"]
    assert code != 0
    assert step_results(log) == [
        ("Success", "Set up the machine"),
        ("Success", "Download the patch"),
        ("Failure", "Backport"),
    ]
    assert (
        "error: patch 0002-compare-resources-with-vars.patch does not apply: airflow/utils/operator_resources.py: "
        "hunk #1 FAILED at line 53, rejected hunk @@ -53,6 +53,6 @@ class Resource:"
    ) in log
    assert "nothing was written" in log


def download_step() -> str:
    (job,) = yaml.safe_load((REPO / WORKFLOW).read_text())["jobs"].values()
    (step,) = [step for step in job["steps"] if step.get("name", "").startswith("Download")]
    return step["run"]


def test_the_download_step_takes_https_only(patch_server, tmp_path):
    """The workflow's download command itself, run by bash with the step's environment (no runner needed)."""
    base, bundle, _ = patch_server
    plain = LocalHTTPServer(lambda request: request.send_error(500))
    with plain:
        cases = {
            f"{base}/apache/airflow/commit/fix.patch": 0,
            f"{plain.url}/apache/airflow/commit/fix.patch": 1,  # curl: protocol not supported
            f"{base}/apache/airflow/commit/missing.patch": 22,  # --fail: HTTP 404
        }
        for url, expected in cases.items():
            output = tmp_path / "backport.patch"
            output.unlink(missing_ok=True)
            env = {
                "PATH": os.environ["PATH"],
                "CURL_CA_BUNDLE": str(bundle),
                "PATCH_URL": url,
                "PATCH_FILE": str(output),
            }
            result = subprocess.run(["bash", "-ec", download_step()], env=env, capture_output=True, text=True)
            assert result.returncode == expected, (url, result.stderr)
            assert output.exists() == (expected == 0)
        assert plain.requests == []  # refused before connecting
