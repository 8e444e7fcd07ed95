"""Every target but `local` signs with GitHub Actions' ambient identity, asked for at each signature: a stored
identity token never signs, and a job without the identity stops with one line before it builds anything."""

import subprocess

import pytest

from ac_release.clients import proc
from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.supply_chain import signing
from ac_release.world.context import ReleaseContext
from tests.helpers import REPO, write_config

NO_IDENTITY = (
    "target staging signs with GitHub Actions' identity and this job has none ({} is not set): run it in its "
    "workflow with `permissions: id-token: write`, or rehearse on staging after "
    '`eval "$(invoke services.actions-env --target staging)"`'
)


@pytest.fixture
def staging(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGSTORE_IDENTITY_TOKEN", "planted.stored.token")  # what the workflows used to hand out
    for name in signing.AMBIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    return ReleaseContext.create("2.2.4-1", load_settings(write_config(tmp_path, staging=True)), "staging")


def test_a_stored_token_does_not_sign(staging, tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(proc, "run", lambda *args, **kwargs: ran.append(args))
    for sign in (
        lambda: signing.sign(staging, [tmp_path / "a.whl"], tmp_path),
        lambda: signing.identity_token(staging),
        lambda: signing.client_token(staging),
    ):
        with pytest.raises(ReleaseError) as error:
            sign()
        assert str(error.value) == NO_IDENTITY.format("GITHUB_ACTIONS")
    assert ran == []  # the client never ran


def test_with_the_ambient_identity_the_client_asks_its_provider_and_sees_no_stored_token(
    staging, tmp_path, monkeypatch
):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "http://127.0.0.1:9/actions/token?api-version=2.0")
    with pytest.raises(ReleaseError) as error:
        signing.sign(staging, [tmp_path / "a.whl"], tmp_path)
    assert str(error.value) == NO_IDENTITY.format("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token")
    seen = {}

    def run(argv, kind, env):
        seen.update(argv=argv, env=env)
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr(proc, "run", run)
    staging.target.signing.trust_config.parent.mkdir(parents=True)
    staging.target.signing.trust_config.write_text("{}")
    signing.sign(staging, [tmp_path / "a.whl"], tmp_path)
    assert "SIGSTORE_IDENTITY_TOKEN" not in seen["env"] and "--identity-token" not in seen["argv"]
    assert seen["env"]["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] == "request-token"  # the client's own detection uses it
    assert signing.client_token(staging) is None  # cosign asks its GitHub provider itself


def test_the_local_target_mints_its_own_tokens(tmp_path, monkeypatch):
    for name in signing.AMBIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    ctx = ReleaseContext.create("2.2.4-1", load_settings(write_config(tmp_path)))
    assert not ctx.target.signing.ambient
    assert ctx.signer.identity == "release@ac-release.local" and not ctx.signer.github
    signing.require_ambient_identity(ctx)  # nothing asked of a local run


def test_a_nightly_is_signed_by_the_nightly_workflow_anything_else_by_the_release_workflow():
    settings = load_settings(REPO / "release.toml")
    staging = ReleaseContext.create("2.2.4-1", settings, "staging")
    nightly = ReleaseContext.create("2.2.4-2-dev2026120701", settings, "staging")
    assert nightly.signer.identity.endswith("/.github/workflows/nightly.yml@refs/heads/main")
    assert staging.signer.identity.endswith("/.github/workflows/release.yml@refs/heads/main")
    dev_build = ReleaseContext.create("2.2.4-2-dev", settings, "staging")
    assert dev_build.signer == staging.signer  # a dev build is dispatched through release.yml
    assert signing.verify_args(staging.signer) == [
        "github",
        "--cert-identity",
        "https://github.com/astronomer/ap-airflow/.github/workflows/release.yml@refs/heads/main",
        "--repository",
        "astronomer/ap-airflow",
        "--ref",
        "refs/heads/main",
    ]
