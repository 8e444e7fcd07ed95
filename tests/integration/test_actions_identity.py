"""GitHub Actions' ambient identity served by the local Sigstore instance, driven through the stock clients: `sigstore`
(through `id`) and cosign (its GitHub provider) fetch their token from `/actions/token` themselves, Fulcio certifies
it as public Fulcio does, and `sigstore verify github` and cosign's `--certificate-github-workflow-*` read it.

Every client runs with HTTP(S)_PROXY on a closed local port and NO_PROXY naming loopback only: the local instance and
registry answer, anything else (a TUF CDN, the real GitHub) fails the call.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives.asymmetric import ec

from ac_release.clients.tlsclients import ca_env
from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.services import actions_identity
from ac_release.services import sigstore_local_fulcio as fulcio
from ac_release.services.actions_env import export_lines
from ac_release.services.actions_identity import ActionsJob
from ac_release.services.manager import LocalServices
from ac_release.services.sigstore_local import ACTIONS_JOBS_DIR, ACTIONS_TOKEN_LIFETIME_S, LocalSigstore
from ac_release.services.sigstore_local_state import load_or_create_state
from ac_release.services.sigstore_service import sigstore_service
from ac_release.services.tls import ensure_server_certificate
from ac_release.supply_chain import cosign
from tests.helpers import REPO, throwaway_registry, write_config
from tests.integration.conftest import require

pytestmark = pytest.mark.integration

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
REPOSITORY = "astronomer/ap-airflow"
SHA = "0123456789abcdef0123456789abcdef01234567"
RELEASE_IDENTITY = f"https://github.com/{REPOSITORY}/.github/workflows/release.yml@refs/heads/main"
RELEASE_JOB = ActionsJob(
    repository=REPOSITORY,
    workflow_file="release.yml",
    workflow_name="release",
    ref="refs/heads/main",
    sha=SHA,
    event_name="workflow_dispatch",
    environment="staging",
    run_id="4242424242",
)
NIGHTLY_JOB = ActionsJob(
    repository=REPOSITORY,
    workflow_file="nightly.yml",
    workflow_name="nightly",
    ref="refs/heads/main",
    sha=SHA,
    event_name="schedule",
    environment="staging",
    run_id="4343434343",
)
CLI_TIMEOUT_S = 120
_FULCIO = "1.3.6.1.4.1.57264.1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the test's own requests: loopback only


# --- the instance, and a job's environment -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSigstore]:
    with LocalSigstore(tmp_path_factory.mktemp("actions-sigstore") / "state", port=0, issuer=GITHUB_ISSUER) as local:
        yield local


@pytest.fixture(scope="module")
def trust_config(instance: LocalSigstore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return instance.write_trust_config(tmp_path_factory.mktemp("actions-trust") / "trust-config.json")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("actions-home")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the socket is closed


def client_env(home: Path) -> dict[str, str]:
    """A client's environment: loopback only, its caches under `home`, no Sigstore or GitHub settings inherited."""
    inherited = ("SIGSTORE_", "ACTIONS_", "GITHUB_", "TUF_", "COSIGN_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(inherited)}
    trap = f"http://127.0.0.1:{closed_port()}"
    env |= {name: trap for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")}
    env |= {name: "127.0.0.1,localhost,::1" for name in ("NO_PROXY", "no_proxy")}
    caches = {"XDG_CACHE_HOME": str(home / "cache"), "XDG_DATA_HOME": str(home / "data")}
    return env | caches | {"COLUMNS": "1000"}  # the sigstore CLI logs through rich: one line per message


def job_env(instance: LocalSigstore, request_token: str, home: Path) -> dict[str, str]:
    """What a job with `id-token: write` gets, and nothing that would sign instead: no SIGSTORE_* token."""
    return client_env(home) | {
        "GITHUB_ACTIONS": "true",
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"{instance.url}/actions/token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": request_token,
    }


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)


def sigstore(env: dict[str, str], trust_config: Path, *args: object) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "sigstore", "--trust-config", str(trust_config), *map(str, args)], env)


def leaf_of(bundle: Path) -> x509.Certificate:
    material = json.loads(bundle.read_text())["verificationMaterial"]
    return x509.load_der_x509_certificate(base64.b64decode(material["certificate"]["rawBytes"]))


def san_of(certificate: x509.Certificate) -> list[str]:
    return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier
    )


# --- (a) the sigstore CLI: ambient sign, `verify github` -----------------------------------------------------------


def sign_ambient(instance: LocalSigstore, trust_config: Path, home: Path, job: ActionsJob, artifact: Path) -> Path:
    env = job_env(instance, instance.register_actions_job(actions_identity.job_claims(job)), home)
    assert "SIGSTORE_IDENTITY_TOKEN" not in env
    result = sigstore(env, trust_config, "sign", artifact)
    assert result.returncode == 0, result.stderr
    return artifact.with_name(artifact.name + ".sigstore.json")


@pytest.fixture(scope="module")
def release_bundle(instance, trust_config, home, tmp_path_factory) -> tuple[Path, Path]:
    artifact = tmp_path_factory.mktemp("release") / "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
    artifact.write_bytes(b"release wheel\n" * 64)
    return artifact, sign_ambient(instance, trust_config, home, RELEASE_JOB, artifact)


@pytest.fixture(scope="module")
def nightly_bundle(instance, trust_config, home, tmp_path_factory) -> tuple[Path, Path]:
    artifact = tmp_path_factory.mktemp("nightly") / "apache_airflow-2.2.4+astro.2.dev1-py3-none-any.whl"
    artifact.write_bytes(b"nightly wheel\n" * 64)
    return artifact, sign_ambient(instance, trust_config, home, NIGHTLY_JOB, artifact)


def verify_github(home: Path, trust_config: Path, artifact: Path, bundle: Path, **overrides: str):
    checks = {
        "--cert-identity": RELEASE_IDENTITY,
        "--repository": REPOSITORY,
        "--ref": "refs/heads/main",
        "--trigger": "workflow_dispatch",
        "--name": "release",
    } | overrides
    args = [item for option, value in checks.items() for item in (option, value)]
    return sigstore(client_env(home), trust_config, "verify", "github", "--bundle", bundle, *args, artifact)


def test_sigstore_signs_with_the_token_it_fetched_itself(instance, trust_config, home, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="ac_release.services.sigstore_local")
    artifact = tmp_path / "file.txt"
    artifact.write_bytes(b"payload\n")
    leaf = leaf_of(sign_ambient(instance, trust_config, home, RELEASE_JOB, artifact))
    assert "GET /actions/token?api-version=2.0&audience=sigstore" in caplog.text
    assert san_of(leaf) == [RELEASE_IDENTITY]
    assert leaf.extensions.get_extension_for_oid(fulcio.OIDC_ISSUER_OID).value.value == GITHUB_ISSUER.encode()


def test_verify_github_passes_for_the_release_workflow(release_bundle, trust_config, home):
    artifact, bundle = release_bundle
    result = verify_github(home, trust_config, artifact, bundle)
    assert result.returncode == 0, result.stderr
    assert f"OK: {artifact}" in result.stderr
    result = verify_github(home, trust_config, artifact, bundle, **{"--sha": SHA})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("option", "value", "checked"),
    [
        ("--ref", "refs/heads/other", "GitHubWorkflowRef"),
        ("--repository", "x/y", "GitHubWorkflowRepository"),
        ("--trigger", "schedule", "GitHubWorkflowTrigger"),
        ("--name", "nightly", "GitHubWorkflowName"),
        ("--sha", "f" * 40, "GitHubWorkflowSHA"),
    ],
)
def test_verify_github_refuses_another_run(release_bundle, trust_config, home, option, value, checked):
    artifact, bundle = release_bundle
    result = verify_github(home, trust_config, artifact, bundle, **{option: value})
    assert result.returncode != 0 and f"FAIL: {artifact}" in result.stderr, result.stderr
    assert f"Certificate's {checked} does not match" in result.stderr and f"expected '{value}'" in result.stderr


def test_a_nightly_signature_does_not_pass_as_a_release(nightly_bundle, trust_config, home):
    artifact, bundle = nightly_bundle
    nightly = {"--trigger": "schedule", "--name": "nightly"}
    nightly_identity = f"https://github.com/{REPOSITORY}/.github/workflows/nightly.yml@refs/heads/main"
    accepted = verify_github(home, trust_config, artifact, bundle, **nightly, **{"--cert-identity": nightly_identity})
    assert accepted.returncode == 0, accepted.stderr  # a sound signature, of the nightly workflow
    result = verify_github(home, trust_config, artifact, bundle, **nightly)  # the release workflow's identity
    assert result.returncode != 0 and f"FAIL: {artifact}" in result.stderr, result.stderr
    assert "Certificate's SANs do not match" in result.stderr and "nightly.yml@refs/heads/main" in result.stderr


# --- (b) cosign: its GitHub provider, --certificate-github-workflow-* ----------------------------------------------


@pytest.fixture(scope="module")
def trust(instance) -> cosign.Trust:
    try:
        cosign.cosign_binary()
    except ReleaseError:
        require(False, "cosign (.ci/install-cosign)")
    return cosign.Trust.from_client_trust_config(instance.client_trust_config())


@pytest.fixture(scope="module")
def cosign_env(instance, trust, home, tmp_path_factory) -> dict[str, str]:
    """cosign offline (trust material from the instance's trusted root, an empty TUF_ROOT) as a release job."""
    env = job_env(instance, instance.register_actions_job(actions_identity.job_claims(RELEASE_JOB)), home)
    assert "SIGSTORE_ID_TOKEN" not in env  # cosign's own provider of GitHub Actions' token is what signs
    return env | trust.write_material(tmp_path_factory.mktemp("cosign-material"))


def cosign_run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run([cosign.cosign_binary(), *args], env)


def signing_args(trust: cosign.Trust) -> list[str]:
    return ["--yes", "--fulcio-url", trust.fulcio_url, "--rekor-url", trust.rekor_url]


def github_checks(ref: str = "refs/heads/main", trigger: str = "workflow_dispatch") -> list[str]:
    return [
        "--certificate-identity",
        RELEASE_IDENTITY,
        "--certificate-oidc-issuer",
        GITHUB_ISSUER,
        "--certificate-github-workflow-repository",
        REPOSITORY,
        "--certificate-github-workflow-ref",
        ref,
        "--certificate-github-workflow-trigger",
        trigger,
        "--certificate-github-workflow-sha",
        SHA,
        "--certificate-github-workflow-name",
        "release",
    ]


def test_cosign_signs_a_blob_with_its_github_provider(cosign_env, trust, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="ac_release.services.sigstore_local")
    blob, bundle = tmp_path / "blob.txt", tmp_path / "blob.bundle"
    blob.write_bytes(b"a blob\n")
    signed = cosign_run(cosign_env, "sign-blob", *signing_args(trust), "--bundle", str(bundle), str(blob))
    assert signed.returncode == 0, signed.stderr
    assert "GET /actions/token?api-version=2.0&audience=sigstore" in caplog.text  # cosign appended `&audience=`
    certificate = x509.load_pem_x509_certificate(base64.b64decode(json.loads(bundle.read_text())["cert"]))
    assert san_of(certificate) == [RELEASE_IDENTITY]

    verified = cosign_run(cosign_env, "verify-blob", "--bundle", str(bundle), *github_checks(), str(blob))
    assert verified.returncode == 0, verified.stderr
    for checks, reason in (
        (github_checks(ref="refs/heads/other"), "expected GitHub Workflow Ref not found"),
        (github_checks(trigger="schedule"), "expected GitHub Workflow Trigger not found"),
    ):
        refused = cosign_run(cosign_env, "verify-blob", "--bundle", str(bundle), *checks, str(blob))
        assert refused.returncode != 0 and reason in refused.stderr, refused.stderr


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[str]:
    """A throwaway Debian docker-registry on loopback (plain HTTP, no auth), as services/manager.py runs one."""
    require(os.path.exists("/usr/bin/docker-registry"), "docker-registry")
    with throwaway_registry(tmp_path_factory.mktemp("actions-registry")) as address:
        yield address


def push_image(registry: str, repository: str) -> str:
    """A one-file OCI image pushed through the registry API (no Docker engine); returns REGISTRY/REPO@sha256:..."""
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w") as tar:
        content = b"signed by the release workflow\n"
        entry = tarfile.TarInfo("content.txt")
        entry.size = len(content)
        tar.addfile(entry, io.BytesIO(content))
    layer = gzip.compress(layer_tar.getvalue(), mtime=0)
    rootfs = {"type": "layers", "diff_ids": [_digest(layer_tar.getvalue())]}
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": rootfs}).encode()
    for blob in (layer, config):
        started = _NO_PROXY.open(
            urllib.request.Request(f"http://{registry}/v2/{repository}/blobs/uploads/", method="POST")
        )
        location = urllib.parse.urljoin(f"http://{registry}/", started.headers["Location"])
        separator = "&" if "?" in location else "?"
        _send("PUT", f"{location}{separator}digest={_digest(blob)}", blob, "application/octet-stream")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
        }
    ).encode()
    _send("PUT", f"http://{registry}/v2/{repository}/manifests/latest", manifest, OCI_MANIFEST)
    return f"{registry}/{repository}@{_digest(manifest)}"


def _send(method: str, url: str, data: bytes, content_type: str) -> None:
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})
    _NO_PROXY.open(request, timeout=10).close()


def _descriptor(media_type: str, data: bytes) -> dict:
    return {"mediaType": media_type, "digest": _digest(data), "size": len(data)}


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_cosign_signs_an_image_with_its_github_provider(cosign_env, trust, registry):
    image = push_image(registry, "astronomer/ap-airflow")
    signed = cosign_run(cosign_env, "sign", *signing_args(trust), "--allow-http-registry", image)
    assert signed.returncode == 0, signed.stderr
    verified = cosign_run(cosign_env, "verify", "--allow-http-registry", *github_checks(), image)
    assert verified.returncode == 0, verified.stderr
    payloads = json.loads(verified.stdout)
    assert [p["critical"]["image"]["docker-manifest-digest"] for p in payloads] == [image.split("@")[1]]
    refused = cosign_run(cosign_env, "verify", "--allow-http-registry", *github_checks(ref="refs/heads/other"), image)
    assert refused.returncode != 0 and "expected GitHub Workflow Ref not found" in refused.stderr, refused.stderr


# --- (c) the token endpoint's protocol ------------------------------------------------------------------------------


def get_token(instance: LocalSigstore, query: str = "?api-version=2.0&audience=sigstore", authorization: str = ""):
    headers = {"Authorization": authorization} if authorization else {}
    request = urllib.request.Request(f"{instance.url}/actions/token{query}", headers=headers)
    try:
        with _NO_PROXY.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_each_request_mints_a_fresh_token_of_the_job(instance):
    request_token = instance.register_actions_job(actions_identity.job_claims(RELEASE_JOB))
    first = get_token(instance, authorization=f"bearer {request_token}")
    second = get_token(instance, "?api-version=2.0&audience=other", authorization=f"Bearer {request_token}")
    assert first[0] == second[0] == 200
    assert set(first[1]) == {"value"}  # GitHub's shape: {"value": "<JWT>"}
    claims, other = jwt_claims(first[1]["value"]), jwt_claims(second[1]["value"])
    assert claims["jti"] != other["jti"]
    assert (claims["aud"], other["aud"]) == ("sigstore", "other")
    assert claims["iss"] == GITHUB_ISSUER and claims["exp"] - claims["iat"] == ACTIONS_TOKEN_LIFETIME_S
    assert {k: v for k, v in claims.items() if k not in ("iss", "aud", "iat", "nbf", "exp", "jti")} == (
        actions_identity.job_claims(RELEASE_JOB)
    )


def _expire(instance: LocalSigstore, request_token: str) -> None:
    job_file = instance.state_dir / ACTIONS_JOBS_DIR / f"{hashlib.sha256(request_token.encode()).hexdigest()}.json"
    record = json.loads(job_file.read_text())
    job_file.write_text(json.dumps(record | {"expires": int(time.time()) - 1}))


def test_the_endpoint_refuses_without_a_valid_request_token(instance, caplog):
    caplog.set_level(logging.DEBUG, logger="ac_release.services.sigstore_local")
    valid = instance.register_actions_job(actions_identity.job_claims(RELEASE_JOB))
    expired = instance.register_actions_job(actions_identity.job_claims(RELEASE_JOB))
    _expire(instance, expired)
    refusals = {
        "no Authorization header": (get_token(instance), 401, "no request token"),
        "an empty bearer": (get_token(instance, authorization="bearer "), 401, "no request token"),
        "another scheme": (get_token(instance, authorization=f"Basic {valid}"), 401, "no request token"),
        "an unknown token": (get_token(instance, authorization=f"bearer {valid}x"), 401, "unknown request token"),
        "an expired token": (get_token(instance, authorization=f"bearer {expired}"), 401, "has expired"),
        "no audience": (get_token(instance, "?api-version=2.0", f"bearer {valid}"), 400, "no audience"),
    }
    for case, ((status, body), expected_status, message) in refusals.items():
        assert status == expected_status and message in body["message"], (case, status, body)
        assert "value" not in body
    assert get_token(instance, authorization=f"bearer {valid}")[0] == 200  # the valid one still works
    # Neither the service's log nor its state holds a request token: only the sha256 names the job's file.
    assert "/actions/token" in caplog.text
    for secret in (valid, expired):
        assert secret not in caplog.text
        digest = hashlib.sha256(secret.encode()).hexdigest()
        assert (instance.state_dir / ACTIONS_JOBS_DIR / f"{digest}.json").is_file()
        for path in instance.state_dir.rglob("*"):
            assert not path.is_file() or secret.encode() not in path.read_bytes(), path


def test_register_forgets_expired_jobs(tmp_path):
    local = LocalSigstore(tmp_path / "state")  # no server needed
    old = local.register_actions_job(actions_identity.job_claims(RELEASE_JOB), lifetime_s=60)
    _expire(local, old)
    local.register_actions_job(actions_identity.job_claims(RELEASE_JOB), lifetime_s=60)
    names = [path.stem for path in (tmp_path / "state" / ACTIONS_JOBS_DIR).iterdir()]
    assert hashlib.sha256(old.encode()).hexdigest() not in names and len(names) == 1
    with pytest.raises(ReleaseError):
        local.register_actions_job(actions_identity.job_claims(RELEASE_JOB), lifetime_s=0)


JOB_LIMIT = "at most 21600 (6 h: GitHub ends a job after 6 hours)"
TOKEN_LIMIT = "at most 600 (10 min: GitHub's Actions tokens live minutes, a signature takes one)"


@pytest.mark.parametrize("lifetime", [0, -1, 21601, 10**9])
def test_an_actions_job_lives_at_most_6_hours(tmp_path, lifetime):
    local = LocalSigstore(tmp_path / "state")
    with pytest.raises(ReleaseError) as error:
        local.register_actions_job(actions_identity.job_claims(RELEASE_JOB), lifetime_s=lifetime)
    assert str(error.value) == f"lifetime {lifetime}: give a positive number of seconds, {JOB_LIMIT}"
    assert not (tmp_path / "state" / ACTIONS_JOBS_DIR).exists() or not any(
        (tmp_path / "state" / ACTIONS_JOBS_DIR).iterdir()
    )
    assert local.register_actions_job(actions_identity.job_claims(RELEASE_JOB), lifetime_s=21600)


@pytest.mark.parametrize("lifetime", [0, -5, 601, 86400 * 365])
def test_an_identity_token_lives_at_most_10_minutes(tmp_path, lifetime):
    local = LocalSigstore(tmp_path / "state")
    with pytest.raises(ReleaseError) as error:
        local.identity_token("release@ac-release.local", lifetime_s=lifetime)
    assert str(error.value) == f"lifetime {lifetime}: give a positive number of seconds, {TOKEN_LIMIT}"
    assert local.identity_token("release@ac-release.local", lifetime_s=600)


@pytest.mark.parametrize("lifetime", ["0", "601", "31536000"])
def test_the_token_command_refuses_a_lifetime_out_of_bounds(tmp_path, lifetime):
    result = run(
        [
            sys.executable,
            "-m",
            "ac_release.services.sigstore_local",
            "token",
            "--state-dir",
            str(tmp_path / "state"),
            "--identity",
            "release@ac-release.local",
            "--lifetime",
            lifetime,
        ],
        dict(os.environ),
    )
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr == f"error: --lifetime {lifetime}: give a positive number of seconds, {TOKEN_LIMIT}\n"


@pytest.mark.parametrize("lifetime", [0, -1, 21601])
def test_actions_env_refuses_a_lifetime_out_of_bounds(tmp_path, lifetime):
    settings = load_settings(write_config(tmp_path, staging=True))
    job = {"workflow": "release.yml", "ref": "refs/heads/main", "repository": "o/r", "event": "push", "sha": None}
    with pytest.raises(ReleaseError) as error:
        export_lines(settings, "staging", job, None, lifetime)
    assert str(error.value) == f"--lifetime {lifetime}: give a positive number of seconds, {JOB_LIMIT}"


def test_actions_env_refuses_a_target_without_a_provider(tmp_path):
    config = write_config(tmp_path)  # the local target only: it signs with tokens the pipeline mints
    env = {k: v for k, v in os.environ.items() if k != "AC_RELEASE_CONFIG"} | {"AC_RELEASE_CONFIG": str(config)}
    result = run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "services.actions-env", "-t", "local"], env
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: target local has no Actions identity provider here: ")
    assert result.stderr.count("\n") == 1


# --- (d) the claims of a job and what Fulcio makes of them ----------------------------------------------------------


def test_claims_of_a_job_bound_to_an_environment():
    workflow_ref = f"{REPOSITORY}/.github/workflows/release.yml@refs/heads/main"
    claims = actions_identity.job_claims(RELEASE_JOB)
    assert claims == {
        "sub": f"repo:{REPOSITORY}:environment:staging",
        "repository": REPOSITORY,
        "repository_owner": "astronomer",
        "repository_id": claims["repository_id"],
        "repository_owner_id": claims["repository_owner_id"],
        "repository_visibility": "private",
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "sha": SHA,
        "workflow": "release",
        "workflow_ref": workflow_ref,
        "workflow_sha": SHA,
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": SHA,
        "event_name": "workflow_dispatch",
        "run_id": "4242424242",
        "run_number": "1",
        "run_attempt": "1",
        "runner_environment": "self-hosted",
        "environment": "staging",
        "actor": "ac-release",
    }
    # Numeric strings like GitHub's, the same on every machine: a certificate carries them.
    assert claims["repository_id"].isdigit() and claims["repository_owner_id"].isdigit()
    assert actions_identity.job_claims(NIGHTLY_JOB)["repository_id"] == claims["repository_id"]


def test_claims_of_a_job_without_an_environment():
    tag_job = ActionsJob(**{**RELEASE_JOB.__dict__, "environment": None, "ref": "refs/tags/v1"})
    claims = actions_identity.job_claims(tag_job)
    assert claims["sub"] == f"repo:{REPOSITORY}:ref:refs/tags/v1"
    assert claims["ref_type"] == "tag" and "environment" not in claims


def test_workflow_name_is_the_workflows_name(tmp_path):
    assert actions_identity.workflow_name(REPO / ".github" / "workflows" / "release.yml") == "release"
    unnamed = tmp_path / "unnamed.yml"
    unnamed.write_text("on: push\njobs: {}\n")
    assert actions_identity.workflow_name(unnamed) == ".github/workflows/unnamed.yml"


def expected_extensions(claims: dict) -> tuple[dict[str, str], dict[str, str]]:
    repository = f"https://github.com/{REPOSITORY}"
    raw = {
        f"{_FULCIO}.2": "workflow_dispatch",
        f"{_FULCIO}.3": SHA,
        f"{_FULCIO}.4": "release",
        f"{_FULCIO}.5": REPOSITORY,
        f"{_FULCIO}.6": "refs/heads/main",
    }
    der = {
        f"{_FULCIO}.9": RELEASE_IDENTITY,
        f"{_FULCIO}.10": SHA,
        f"{_FULCIO}.11": "self-hosted",
        f"{_FULCIO}.12": repository,
        f"{_FULCIO}.13": SHA,
        f"{_FULCIO}.14": "refs/heads/main",
        f"{_FULCIO}.15": claims["repository_id"],
        f"{_FULCIO}.16": "https://github.com/astronomer",
        f"{_FULCIO}.17": claims["repository_owner_id"],
        f"{_FULCIO}.18": RELEASE_IDENTITY,
        f"{_FULCIO}.19": SHA,
        f"{_FULCIO}.20": "workflow_dispatch",
        f"{_FULCIO}.21": f"{repository}/actions/runs/4242424242/attempts/1",
        f"{_FULCIO}.22": "private",
    }
    return raw, der


def test_extension_values_of_a_job():
    claims = actions_identity.job_claims(RELEASE_JOB)
    raw, der = expected_extensions(claims)
    assert actions_identity.certificate_identity(claims) == RELEASE_IDENTITY
    assert actions_identity.legacy_extensions(claims) == raw
    assert actions_identity.build_extensions(claims) == der
    encoded = actions_identity.certificate_extensions(claims)
    assert {oid: encoded[oid].decode() for oid in raw} == raw  # raw bytes, as the legacy OIDs carry them
    assert {oid: asn1.decode_der(str, encoded[oid]) for oid in der} == der  # DER UTF8String (tag 0x0c)
    assert all(encoded[oid][0] == 0x0C for oid in der)


def _extensions_of(certificate: x509.Certificate) -> dict[str, bytes]:
    return {
        e.oid.dotted_string: e.value.value for e in certificate.extensions if e.oid.dotted_string.startswith(_FULCIO)
    }


def test_fulcio_certifies_a_github_token_as_public_fulcio_does(tmp_path):
    state = load_or_create_state(tmp_path / "state")
    key = ec.generate_private_key(ec.SECP256R1())
    claims = actions_identity.job_claims(RELEASE_JOB) | {"sub": "repo:x", "iss": GITHUB_ISSUER}
    certificate = fulcio.issue_signing_certificate(state, key.public_key(), claims, GITHUB_ISSUER)
    assert san_of(certificate) == [RELEASE_IDENTITY]
    extensions = _extensions_of(certificate)
    issuer = {f"{_FULCIO}.1": GITHUB_ISSUER.encode(), f"{_FULCIO}.8": asn1.encode_der(GITHUB_ISSUER)}
    assert extensions == issuer | actions_identity.certificate_extensions(claims)
    assert list(extensions) == sorted(extensions, key=lambda oid: int(oid.rsplit(".", 1)[1]))  # Fulcio's order
    incomplete = {k: v for k, v in claims.items() if k != "run_attempt"}
    with pytest.raises(fulcio.CertificateRequestRejected, match="'run_attempt'"):
        fulcio.issue_signing_certificate(state, key.public_key(), incomplete, GITHUB_ISSUER)


def test_fulcio_certifies_other_tokens_as_before(tmp_path):
    state = load_or_create_state(tmp_path / "state")
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = "https://oidc.ac-release.local"
    email = {"sub": "release@ac-release.local", "email": "release@ac-release.local", "email_verified": True}
    certificate = fulcio.issue_signing_certificate(state, key.public_key(), email, issuer)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.RFC822Name) == ["release@ac-release.local"]
    assert _extensions_of(certificate) == {f"{_FULCIO}.1": issuer.encode(), f"{_FULCIO}.8": asn1.encode_der(issuer)}
    uri = fulcio.issue_signing_certificate(state, key.public_key(), {"sub": "https://ci.example/job"}, issuer)
    assert san_of(uri) == ["https://ci.example/job"]


# --- the pipeline's own gate: a release's signer is release.yml, a nightly's is nightly.yml --------------------------


def gate_context(version: str, trust_config: Path):
    """The repository's staging target (GitHub Actions' identity, as production's) with this module's instance as its
    Sigstore: the gate of `version` as the sign and publish stages and `invoke verify` ask it."""
    import dataclasses

    from ac_release.model.config import load_settings
    from ac_release.world.context import ReleaseContext

    ctx = ReleaseContext.create(version, load_settings(REPO / "release.toml"), "staging")
    ctx.target = dataclasses.replace(
        ctx.target, signing=dataclasses.replace(ctx.target.signing, trust_config=trust_config)
    )
    return ctx


def test_the_release_gate_refuses_a_nightlys_certificate_and_the_nightly_gate_a_releases(
    release_bundle, nightly_bundle, trust_config
):
    from ac_release.supply_chain.signing import verify

    release, nightly = gate_context("2.2.4-1", trust_config), gate_context("2.2.4-2-dev2026120701", trust_config)
    verify(release, *release_bundle)
    verify(nightly, *nightly_bundle)
    with pytest.raises(ReleaseError) as refused:
        verify(release, *nightly_bundle)
    assert str(refused.value).startswith(f"signature check failed for {nightly_bundle[0].name} with ")
    assert "nightly.yml@refs/heads/main" in str(refused.value)  # the certificate's identity is named
    with pytest.raises(ReleaseError) as refused:
        verify(nightly, *release_bundle)
    assert "release.yml@refs/heads/main" in str(refused.value)


# --- (e) over https, as the staging services serve it ----------------------------------------------------------------


@pytest.fixture
def staging_sigstore(tmp_path, monkeypatch):
    """Staging's Sigstore service as `services.up --target staging` starts it (its TLS material made as `up` makes
    it), without the index and registries: its settings, the service and the Actions environment it exports."""
    settings = load_settings(write_config(tmp_path, staging=True))
    services = LocalServices(settings.target("staging").services)
    layout = services.settings
    assert layout.tls
    ensure_server_certificate(layout.ca_certificate, layout.server_certificate, layout.server_key, layout.host)
    layout.run_dir.mkdir(parents=True)
    service = sigstore_service(layout)
    services.supervisor.start(service, log=lambda _: None)
    monkeypatch.setattr(LocalServices, "status", lambda self: {s.name: "up" for s in self.services()})
    job = {"workflow": "release.yml", "ref": "refs/heads/main", "repository": REPOSITORY, "event": "push", "sha": SHA}
    exported = export_lines(settings, "staging", job, None, 600)
    env = dict(line.removeprefix("export ").split("=", 1) for line in exported)
    yield layout, service, {name: value.strip("'") for name, value in env.items()}
    services.supervisor.stop(service, log=lambda _: None)


def test_staging_hands_out_only_https_urls_of_its_sigstore(staging_sigstore):
    layout, service, env = staging_sigstore
    base = f"https://127.0.0.1:{layout.sigstore_port}"
    assert env["ACTIONS_ID_TOKEN_REQUEST_URL"] == f"{base}/actions/token?api-version=2.0"
    config = json.loads(layout.trust_config.read_text())
    root, signing = config["trustedRoot"], config["signingConfig"]
    urls = [log["baseUrl"] for log in root["tlogs"] + root["ctlogs"]] + [
        ca["uri"] for ca in root["certificateAuthorities"]
    ]
    urls += [entry["url"] for key in ("caUrls", "oidcUrls", "rekorTlogUrls") for entry in signing[key]]
    assert urls and all(url.startswith(base) for url in urls), urls
    context = ssl.create_default_context(cafile=layout.ca_certificate)
    with urllib.request.urlopen(f"{base}/api/v1/log", context=context, timeout=10) as answer:
        assert json.load(answer)["treeSize"] >= 1
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):  # only with the services' CA
        urllib.request.urlopen(f"{base}/api/v1/log", context=ssl.create_default_context(), timeout=10)


def test_the_stock_clients_sign_with_staging_over_https_trusting_the_services_ca(staging_sigstore, tmp_path):
    """sigstore (requests: REQUESTS_CA_BUNDLE) and cosign (Go: SSL_CERT_FILE), given the bundle of the machine's CAs
    and the services' CA as the pipeline gives it to its tools, fetch the job's token, a certificate and a log entry."""
    layout, _, exported = staging_sigstore
    home = tmp_path / "home"
    env = client_env(home) | exported
    artifact = tmp_path / "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
    artifact.write_bytes(b"a staging wheel\n" * 64)

    untrusted = sigstore(env, layout.trust_config, "sign", artifact)
    assert untrusted.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr + untrusted.stdout

    env |= ca_env(layout.ca_certificate)
    signed = sigstore(env, layout.trust_config, "sign", artifact)
    assert signed.returncode == 0, signed.stderr
    bundle = artifact.with_name(artifact.name + ".sigstore.json")
    verified = verify_github(home, layout.trust_config, artifact, bundle, **{"--trigger": "push"})
    assert verified.returncode == 0, verified.stderr

    try:
        cosign.cosign_binary()
    except ReleaseError:
        require(False, "cosign (.ci/install-cosign)")
    trust = cosign.Trust.load(layout.trust_config)
    cosign_env = env | trust.write_material(tmp_path)
    blob, blob_bundle = tmp_path / "blob.txt", tmp_path / "blob.bundle"
    blob.write_bytes(b"a blob\n")
    result = cosign_run(cosign_env, "sign-blob", *signing_args(trust), "--bundle", str(blob_bundle), str(blob))
    assert result.returncode == 0, result.stderr
    result = cosign_run(
        cosign_env, "verify-blob", "--bundle", str(blob_bundle), *github_checks(trigger="push"), str(blob)
    )
    assert result.returncode == 0, result.stderr
