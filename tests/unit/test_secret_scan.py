"""The secret scanner (tests/secret_scan.py) finds every kind of secret a release uses, as it is and encoded, in
text and in files, and never shows a value. Its Docker half is proved in tests/integration/test_secret_scan.py."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.parse

import pytest
from cryptography.hazmat.primitives import serialization
from rich.console import Console

from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.services.sigstore_local_oidc import issue_token
from ac_release.services.sigstore_local_state import load_or_create_state
from ac_release.world.context import ReleaseContext
from tests.helpers import write_config
from tests.secret_scan import (
    Secret,
    SecretScan,
    base64_runs,
    docker_config_auth,
    identity_token_secret,
    private_key_secret,
    release_secrets,
    secret,
)

VERSION = "2.2.4-1"


@pytest.fixture
def ctx(tmp_path) -> ReleaseContext:
    """A local target's context whose index password and Sigstore state exist, as `invoke services.up` makes them."""
    settings = load_settings(write_config(tmp_path))
    password = settings.target(None).index.password.file
    password.parent.mkdir(parents=True)
    password.write_text(secrets.token_urlsafe(24) + "\n")
    password.chmod(0o600)
    load_or_create_state(settings.services.dir / "sigstore" / "state")
    return ReleaseContext.create(VERSION, settings, console=Console(stderr=True, quiet=True))


def found(secrets_: list[Secret], text: str | bytes) -> set[str]:
    scan = SecretScan(secrets_, docker=["docker"])
    scan.data(text if isinstance(text, bytes) else text.encode(), "planted")
    return {finding.secret for finding in scan.findings}


def _key_pem(ctx: ReleaseContext, name: str) -> bytes:
    return (ctx.settings.services.dir / "sigstore" / "state" / "keys" / f"{name}.key.pem").read_bytes()


def test_base64_runs_find_a_value_wherever_it_starts_in_an_encoded_stream():
    value = secrets.token_bytes(24)
    for before in range(6):
        for after in range(4):
            stream = secrets.token_bytes(before) + value + secrets.token_bytes(after)
            for urlsafe, encode in ((False, base64.b64encode), (True, base64.urlsafe_b64encode)):
                assert any(run in encode(stream) for run in base64_runs(value, urlsafe)), (before, after, urlsafe)


def test_the_release_secrets_are_every_kind_and_read_where_the_pipeline_reads_them(ctx):
    names = [item.name for item in release_secrets(ctx, registry_credentials={"registry.example": "stand-in-1234567"})]
    assert names == [
        f"index password ({ctx.target.index.password.file})",
        "registry credential of registry.example",
        "local Sigstore ca key",
        "local Sigstore oidc key",
        "Sigstore identity token",
    ]


def test_each_secret_is_found_as_it_is_and_in_the_encodings_a_leak_takes(ctx):
    password, ca, oidc, token = release_secrets(ctx)
    value = ctx.target.index.password.read()
    registry = secret("registry credential", "stand-in-" + secrets.token_urlsafe(18))
    every = [password, registry, ca, oidc, token]
    user = ctx.target.index.username
    basic = base64.b64encode(f"{user}:{value}".encode()).decode()
    for leak in (
        f"twine: uploading with password {value}",
        f"Authorization: Basic {basic}",
        f"https://{user}:{urllib.parse.quote(value, safe='')}@index.example/simple/",
        json.dumps({"password": base64.urlsafe_b64encode(value.encode()).decode()}),
    ):
        assert found(every, leak) == {password.name}, leak
    registry_value = next(iter(registry.forms))
    config = docker_config_auth("registry.example", "robot", registry_value.decode())
    assert found(every, config) == {registry.name}
    for name, item in (("ca", ca), ("oidc", oidc)):
        pem = _key_pem(ctx, name)
        der = serialization.load_pem_private_key(pem, None).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        for leak in (pem, json.dumps({"key": pem.decode()}).encode(), der, base64.b64encode(der)):
            assert found(every, leak) == {item.name}, (name, leak[:20])
    # A token minted later by the sign stage's code path differs from the one the scan was made from: still found.
    from ac_release.supply_chain import signing

    later = signing.identity_token(ctx)
    for leak in (f"SIGSTORE_IDENTITY_TOKEN={later}", base64.b64encode(f"x:{later}".encode()).decode()):
        assert found(every, leak) == {token.name}, leak


def test_what_is_public_or_another_instances_is_not_a_finding(ctx, tmp_path):
    every = release_secrets(ctx)
    state = load_or_create_state(ctx.settings.services.dir / "sigstore" / "state")
    public = state.ca_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    certificate = state.ca_cert.public_bytes(serialization.Encoding.PEM)
    other = load_or_create_state(tmp_path / "other-instance")
    foreign = issue_token(other.oidc_key, ctx.target.signing.issuer, ctx.target.signing.identity, 60)
    for text in (public, certificate, foreign.encode(), b"an ordinary log line\n" * 1000):
        assert found(every, text) == set(), text[:40]


def test_files_names_and_credential_files_under_a_tree(ctx, tmp_path):
    password = ctx.target.index.password.read()
    tree = tmp_path / "scanned"
    (tree / "logs" / "deep").mkdir(parents=True)
    (tree / "logs" / "clean.log").write_text("nothing here\n")
    (tree / "logs" / "deep" / "twine.log").write_text(f"password={password}\n")
    (tree / f"cache-{password}").write_text("")
    (tree / "home" / ".docker").mkdir(parents=True)
    (tree / "home" / ".docker" / "config.json").write_text("{}")
    (tree / ".netrc").write_text("")
    scan = SecretScan(release_secrets(ctx), docker=["docker"])
    scan.tree(tree)
    assert sorted((f.secret.split(" (")[0], f.where.replace(str(tree), "")) for f in scan.findings) == [
        ("credential file", "/.netrc"),
        ("credential file", "/home/.docker/config.json"),
        ("index password", "/logs/deep/twine.log"),
        ("index password", f"the name of /cache-{password}"),
    ]
    assert scan.files == 5
    with pytest.raises(FileNotFoundError, match="nothing to scan"):
        scan.tree(tmp_path / "missing")


def test_no_value_is_ever_shown(ctx):
    every = release_secrets(ctx)
    scan = SecretScan(every, docker=["docker"])
    for item in every:
        for form in item.forms:
            scan.data(b"..." + form + b"...", "planted")
    assert len(scan.findings) == sum(len(item.forms) for item in every)  # each form planted is found
    shown = scan.report() + repr(every) + "".join(map(repr, scan.findings))
    for item in every:
        for form in item.forms:
            assert form.decode(errors="replace") not in shown


def test_a_scan_without_its_secrets_fails_instead_of_passing(ctx):
    keys = ctx.settings.services.dir / "sigstore" / "state" / "keys"
    (keys / "ca.key.pem").rename(keys / "moved.pem")
    with pytest.raises(FileNotFoundError):
        release_secrets(ctx)
    (keys / "moved.pem").rename(keys / "ca.key.pem")
    ctx.target.index.password.file.unlink()
    with pytest.raises(ReleaseError, match="secret file .* is missing"):
        release_secrets(ctx)
    assert [s.name for s in release_secrets(ctx, index_password=False)][0] == "local Sigstore ca key"
    with pytest.raises(ValueError, match="too short"):
        secret("pin", "1234")


def test_private_key_forms_are_the_lines_that_carry_the_scalar(ctx):
    pem = _key_pem(ctx, "ca")
    item = private_key_secret("ca", pem)
    body = [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
    lines = [form for form, encoding in item.forms.items() if encoding == "PEM line"]
    assert lines and set(lines) < set(body)  # the last line holds only the public key
    with pytest.raises(ValueError, match="not a JWT"):
        identity_token_secret("token", "not.a.token")
