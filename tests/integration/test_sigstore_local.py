"""The real `sigstore` CLI signs and verifies against the local Sigstore instance and refuses what it must."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ac_release.services.sigstore_local import DEFAULT_ISSUER, MAX_REQUEST_BYTES, LocalSigstore

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_BUNDLE_DIR = REPO_ROOT / "tests" / "data" / "production-bundle"
PRODUCTION_ARTIFACT = PRODUCTION_BUNDLE_DIR / "pypi_attestation_models-0.0.4a2.tar.gz"
PRODUCTION_BUNDLE = PRODUCTION_BUNDLE_DIR / "pypi_attestation_models-0.0.4a2.tar.gz.sigstore"
PRODUCTION_IDENTITY = (
    "https://github.com/trailofbits/pypi-attestation-models/.github/workflows/release.yml@refs/tags/v0.0.4a2"
)
PRODUCTION_ISSUER = "https://token.actions.githubusercontent.com"
# A state directory made before the log started at index 1: its entry 0 is a client's (see its README.md).
STATE_WITH_ENTRY_0 = REPO_ROOT / "tests" / "data" / "sigstore-state-log-from-index-0"

IDENTITY = "release-bot@ac-release.local"
CLI_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def sigstore_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for the CLI: its TUF cache in temp dirs, no ambient token or output settings."""
    home = tmp_path_factory.mktemp("sigstore-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSTORE_")}
    env |= {"XDG_CACHE_HOME": str(home / "cache"), "XDG_DATA_HOME": str(home / "data")}
    return env


def run_sigstore(env: dict[str, str], *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sigstore", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def sign(env: dict[str, str], trust_config: Path, token: str, artifact: Path) -> Path:
    bundle = artifact.with_name(artifact.name + ".sigstore.json")
    result = run_sigstore(
        env, "--trust-config", trust_config, "sign", "--identity-token", token, "--bundle", bundle, artifact
    )
    assert result.returncode == 0, result.stderr
    return bundle


def verify_identity(
    env: dict[str, str],
    trust_config: Path,
    artifact: Path,
    bundle: Path,
    identity: str = IDENTITY,
    issuer: str = DEFAULT_ISSUER,
) -> subprocess.CompletedProcess[str]:
    return run_sigstore(
        env,
        "--trust-config",
        trust_config,
        "verify",
        "identity",
        "--cert-identity",
        identity,
        "--cert-oidc-issuer",
        issuer,
        "--bundle",
        bundle,
        artifact,
    )


def assert_refused(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0, result.stderr
    # "FAIL: <input>" is printed when verification itself fails, not on a usage error.
    assert "FAIL" in result.stderr, result.stderr


def log_index(bundle: Path) -> int:
    return int(json.loads(bundle.read_text())["verificationMaterial"]["tlogEntries"][0]["logIndex"])


def write_artifact(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSigstore]:
    local = LocalSigstore(tmp_path_factory.mktemp("sigstore-state"))
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def trust_config(instance: LocalSigstore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return instance.write_trust_config(tmp_path_factory.mktemp("trust") / "trust-config.json")


@pytest.fixture(scope="module")
def signed(
    instance: LocalSigstore,
    trust_config: Path,
    sigstore_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path]:
    artifact = write_artifact(tmp_path_factory.mktemp("signed") / "package-1.0.tar.gz", b"release payload\n" * 64)
    return artifact, sign(sigstore_env, trust_config, instance.identity_token(IDENTITY), artifact)


def test_sign_then_verify_identity(signed: tuple[Path, Path], trust_config: Path, sigstore_env: dict[str, str]):
    artifact, bundle = signed
    result = verify_identity(sigstore_env, trust_config, artifact, bundle)
    assert result.returncode == 0, result.stderr
    assert f"OK: {artifact}" in result.stderr


def test_dsse_attestation_verifies(
    instance: LocalSigstore, trust_config: Path, sigstore_env: dict[str, str], tmp_path: Path
):
    artifact = write_artifact(tmp_path / "wheel-1.0-py3-none-any.whl", b"wheel bytes")
    predicate = tmp_path / "provenance.json"
    predicate.write_text(
        json.dumps(
            {
                "buildDefinition": {"buildType": "https://ac-release.local/build", "externalParameters": {}},
                "runDetails": {"builder": {"id": "https://ac-release.local/builder"}},
            }
        )
    )
    bundle = tmp_path / "wheel.sigstore.json"
    attested = run_sigstore(
        sigstore_env,
        "--trust-config",
        trust_config,
        "attest",
        "--identity-token",
        instance.identity_token(IDENTITY),
        "--predicate",
        predicate,
        "--predicate-type",
        "https://slsa.dev/provenance/v1",
        "--bundle",
        bundle,
        artifact,
    )
    assert attested.returncode == 0, attested.stderr
    result = verify_identity(sigstore_env, trust_config, artifact, bundle)
    assert result.returncode == 0, result.stderr


def test_inclusion_proofs_hold_in_a_growing_log(
    instance: LocalSigstore, trust_config: Path, sigstore_env: dict[str, str], tmp_path: Path
):
    # Several entries, so that proofs have several levels and unbalanced right edges.
    artifacts = [write_artifact(tmp_path / f"dist-{n}.tar.gz", f"artifact {n}\n".encode()) for n in range(7)]
    signed_all = run_sigstore(
        sigstore_env,
        "--trust-config",
        trust_config,
        "sign",
        "--identity-token",
        instance.identity_token(IDENTITY),
        *artifacts,
    )
    assert signed_all.returncode == 0, signed_all.stderr
    bundles = [a.with_name(a.name + ".sigstore.json") for a in artifacts]
    assert len({log_index(b) for b in bundles}) == len(bundles)
    verified_all = run_sigstore(
        sigstore_env,
        "--trust-config",
        trust_config,
        "verify",
        "identity",
        "--cert-identity",
        IDENTITY,
        "--cert-oidc-issuer",
        DEFAULT_ISSUER,
        *artifacts,
    )
    assert verified_all.returncode == 0, verified_all.stderr
    assert verified_all.stderr.count("OK: ") == len(artifacts)


def test_tampered_file_is_refused(signed, trust_config: Path, sigstore_env: dict[str, str], tmp_path: Path):
    artifact, bundle = signed
    tampered = bytearray(artifact.read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    tampered_artifact = write_artifact(tmp_path / artifact.name, bytes(tampered))
    assert_refused(verify_identity(sigstore_env, trust_config, tampered_artifact, bundle))


def test_bundle_of_another_file_is_refused(
    instance: LocalSigstore, signed, trust_config: Path, sigstore_env: dict[str, str], tmp_path: Path
):
    artifact, _ = signed
    other = write_artifact(tmp_path / "other-1.0.tar.gz", b"another artifact")
    other_bundle = sign(sigstore_env, trust_config, instance.identity_token(IDENTITY), other)
    assert_refused(verify_identity(sigstore_env, trust_config, artifact, other_bundle))


def test_wrong_identity_is_refused(signed, trust_config: Path, sigstore_env: dict[str, str]):
    artifact, bundle = signed
    result = verify_identity(sigstore_env, trust_config, artifact, bundle, identity="intruder@ac-release.local")
    assert_refused(result)


def test_wrong_issuer_is_refused(signed, trust_config: Path, sigstore_env: dict[str, str]):
    artifact, bundle = signed
    result = verify_identity(sigstore_env, trust_config, artifact, bundle, issuer="https://accounts.google.com")
    assert_refused(result)


def test_token_of_another_instance_gets_no_certificate(
    trust_config: Path, sigstore_env: dict[str, str], tmp_path: Path
):
    stranger = LocalSigstore(tmp_path / "stranger-state")
    artifact = write_artifact(tmp_path / "artifact.txt", b"data")
    result = run_sigstore(
        sigstore_env,
        "--trust-config",
        trust_config,
        "sign",
        "--identity-token",
        stranger.identity_token(IDENTITY),
        artifact,
    )
    assert result.returncode != 0
    assert not artifact.with_name("artifact.txt.sigstore.json").exists()


def test_restart_keeps_trust_and_continues_the_log(sigstore_env: dict[str, str], tmp_path: Path):
    state_dir = tmp_path / "state"
    first_artifact = write_artifact(tmp_path / "first.txt", b"signed before the restart")
    second_artifact = write_artifact(tmp_path / "second.txt", b"signed after the restart")

    with LocalSigstore(state_dir) as before:
        trust_before = before.write_trust_config(tmp_path / "trust-before.json")
        first_bundle = sign(sigstore_env, trust_before, before.identity_token(IDENTITY), first_artifact)

    with LocalSigstore(state_dir) as after:
        trust_after = after.write_trust_config(tmp_path / "trust-after.json")
        old = verify_identity(sigstore_env, trust_after, first_artifact, first_bundle)
        assert old.returncode == 0, old.stderr
        second_bundle = sign(sigstore_env, trust_after, after.identity_token(IDENTITY), second_artifact)

    assert log_index(second_bundle) > log_index(first_bundle)
    new = verify_identity(sigstore_env, trust_before, second_artifact, second_bundle)
    assert new.returncode == 0, new.stderr


def test_serve_command_runs_until_sigterm(sigstore_env: dict[str, str], tmp_path: Path):
    state_dir, trust_config = tmp_path / "state", tmp_path / "trust-config.json"
    module = "ac_release.services.sigstore_local"
    server_env = sigstore_env | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    }
    server = subprocess.Popen(
        [sys.executable, "-m", module, "serve", "--state-dir", state_dir, "--trust-config", trust_config],
        env=server_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready_line = server.stdout.readline().strip()
        assert ready_line.startswith("ready http://127.0.0.1:"), ready_line
        token = subprocess.run(
            [sys.executable, "-m", module, "token", "--state-dir", state_dir, "--identity", IDENTITY],
            env=server_env,
            capture_output=True,
            text=True,
            check=True,
            timeout=CLI_TIMEOUT_S,
        ).stdout.strip()
        artifact = write_artifact(tmp_path / "artifact.txt", b"signed through the serve command")
        bundle = sign(sigstore_env, trust_config, token, artifact)
        result = verify_identity(sigstore_env, trust_config, artifact, bundle)
        assert result.returncode == 0, result.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        returncode = server.wait(timeout=30)
        server.stdout.close()
    assert returncode == 0


def test_production_bundle_verifies_offline(sigstore_env: dict[str, str]):
    result = verify_production_bundle(sigstore_env, PRODUCTION_ARTIFACT)
    assert result.returncode == 0, result.stderr
    assert f"OK: {PRODUCTION_ARTIFACT}" in result.stderr


def test_tampered_production_artifact_is_refused(sigstore_env: dict[str, str], tmp_path: Path):
    tampered = tmp_path / PRODUCTION_ARTIFACT.name
    shutil.copyfile(PRODUCTION_ARTIFACT, tampered)
    content = bytearray(tampered.read_bytes())
    content[100] ^= 0x01
    tampered.write_bytes(bytes(content))
    assert_refused(verify_production_bundle(sigstore_env, tampered))


def verify_production_bundle(env: dict[str, str], artifact: Path) -> subprocess.CompletedProcess[str]:
    # No --trust-config: --offline uses the public-good trust root shipped in the sigstore wheel.
    return run_sigstore(
        env,
        "verify",
        "identity",
        "--offline",
        "--cert-identity",
        PRODUCTION_IDENTITY,
        "--cert-oidc-issuer",
        PRODUCTION_ISSUER,
        "--bundle",
        PRODUCTION_BUNDLE,
        artifact,
    )


def test_no_client_entry_of_a_new_log_gets_index_0(sigstore_env: dict[str, str], tmp_path: Path):
    # cosign (sigstore-go) reads a log entry at index 0 as a missing value and refuses it.
    artifact = write_artifact(tmp_path / "first.txt", b"the first artifact this instance ever signs")
    with LocalSigstore(tmp_path / "state") as fresh:
        trust = fresh.write_trust_config(tmp_path / "trust.json")
        bundle = sign(sigstore_env, trust, fresh.identity_token(IDENTITY), artifact)
        assert log_index(bundle) == 1
        result = verify_identity(sigstore_env, trust, artifact, bundle)
        assert result.returncode == 0, result.stderr


def test_a_state_whose_log_has_a_client_entry_0_keeps_verifying(sigstore_env: dict[str, str], tmp_path: Path):
    shutil.copytree(STATE_WITH_ENTRY_0, tmp_path / "old")
    old_artifact = tmp_path / "old" / "signed-before-the-upgrade.txt"
    old_bundle = old_artifact.with_name(old_artifact.name + ".sigstore.json")
    entries = tmp_path / "old" / "state" / "log" / "entries.jsonl"
    old_entries = entries.read_text()
    assert log_index(old_bundle) == 0
    new_artifact = write_artifact(tmp_path / "new.txt", b"signed after the upgrade")
    with LocalSigstore(tmp_path / "old" / "state") as upgraded:
        trust = upgraded.write_trust_config(tmp_path / "trust.json")
        old = verify_identity(sigstore_env, trust, old_artifact, old_bundle)
        assert old.returncode == 0, old.stderr
        new_bundle = sign(sigstore_env, trust, upgraded.identity_token(IDENTITY), new_artifact)
        new = verify_identity(sigstore_env, trust, new_artifact, new_bundle)
        assert new.returncode == 0, new.stderr
    assert log_index(new_bundle) == 1
    assert entries.read_text().startswith(old_entries)


def legacy_request(key: ec.EllipticCurvePrivateKey, signed_identity: str) -> bytes:
    """Fulcio v1's body as cosign 2.x sends it: Go []byte fields, so base64."""
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    proof = key.sign(signed_identity.encode(), ec.ECDSA(hashes.SHA256()))
    public_key = {"content": base64.b64encode(pem).decode()}
    return json.dumps({"publicKey": public_key, "signedEmailAddress": base64.b64encode(proof).decode()}).encode()


def post_legacy(instance: LocalSigstore, body: bytes, token: str | None) -> tuple[int, str, bytes]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(f"{instance.url}/api/v1/signingCert", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_legacy_signing_cert_answers_a_pem_chain_for_the_key(instance: LocalSigstore):
    key = ec.generate_private_key(ec.SECP256R1())
    status, content_type, body = post_legacy(instance, legacy_request(key, IDENTITY), instance.identity_token(IDENTITY))
    assert (status, content_type) == (201, "application/pem-certificate-chain"), body
    leaf, ca = x509.load_pem_x509_certificates(body)
    assert leaf.public_key() == key.public_key()
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.RFC822Name
    ) == [IDENTITY]
    leaf.verify_directly_issued_by(ca)


def test_legacy_signing_cert_refuses_a_challenge_for_another_identity(instance: LocalSigstore):
    key = ec.generate_private_key(ec.SECP256R1())
    body = legacy_request(key, "intruder@ac-release.local")
    status, _, answer = post_legacy(instance, body, instance.identity_token(IDENTITY))
    assert status == 400
    assert "not a signature of" in json.loads(answer)["message"]


def test_legacy_signing_cert_refuses_a_request_without_token(instance: LocalSigstore):
    key = ec.generate_private_key(ec.SECP256R1())
    status, _, _ = post_legacy(instance, legacy_request(key, IDENTITY), token=None)
    assert status == 401


def test_legacy_signing_cert_takes_a_csr_instead_of_a_signed_identity(instance: LocalSigstore):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    body = json.dumps(
        {"certificateSigningRequest": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()}
    ).encode()
    status, _, answer = post_legacy(instance, body, instance.identity_token(IDENTITY))
    assert status == 201, answer
    assert x509.load_pem_x509_certificates(answer)[0].public_key() == key.public_key()


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"publicKey": {"content": "%%%"}, "signedEmailAddress": ""}'])
def test_legacy_signing_cert_refuses_a_malformed_request(instance: LocalSigstore, body: bytes):
    status, _, answer = post_legacy(instance, body, instance.identity_token(IDENTITY))
    assert status == 400
    assert "expected a JSON body with publicKey.content" in json.loads(answer)["message"]


def test_the_trust_config_is_replaced_whole(instance: LocalSigstore, tmp_path: Path):
    """A client reading the trust config as the service (re)writes it reads the old one or the new one, never a cut
    one: the new one is written beside it and renamed over it, so an open old file keeps its bytes."""
    path = tmp_path / "trust_config.json"
    path.write_text("the previous trust config\n")
    os.link(path, tmp_path / "held-by-a-reader")
    instance.write_trust_config(path)
    assert (tmp_path / "held-by-a-reader").read_text() == "the previous trust config\n"
    assert json.loads(path.read_text()) == instance.client_trust_config()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def raw_request(instance: LocalSigstore, head: str, body: bytes = b"") -> bytes:
    """One request as bytes on a socket: the answer, read until the server closes the connection."""
    host, port = urllib.parse.urlsplit(instance.url).hostname, urllib.parse.urlsplit(instance.url).port
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("length_header", "status", "message"),
    [
        ("", "411 Length Required", "a request body needs a Content-Length header"),
        ("Content-Length: -1\r\n", "400 Bad Request", "Content-Length -1: expected a number of bytes"),
        ("Content-Length: 12x\r\n", "400 Bad Request", "Content-Length 12x: expected a number of bytes"),
        (
            f"Content-Length: {MAX_REQUEST_BYTES + 1}\r\n",
            "413 Request Entity Too Large",
            f"request body of {MAX_REQUEST_BYTES + 1} bytes: at most {MAX_REQUEST_BYTES} are accepted",
        ),
    ],
)
def test_a_post_without_a_sound_content_length_is_refused_before_its_body_is_read(
    instance: LocalSigstore, length_header: str, status: str, message: str
):
    """The client sends no body and keeps the connection open: a server reading to EOF would wait for ever."""
    size = instance._log.size
    head = f"POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{length_header}"
    answer = raw_request(instance, head)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.decode() == f"HTTP/1.1 {status}"
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["message"] == message
    assert instance._log.size == size


def test_a_get_needs_no_content_length(instance: LocalSigstore):
    answer = raw_request(instance, "GET /api/v1/log HTTP/1.1\r\nHost: x\r\nConnection: close\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
