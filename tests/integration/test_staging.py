"""The `staging` target end to end, on a committed copy of the tree: services on 127.0.0.1 that differ from the local
target's in everything a target can differ in (TLS with a CA the pipeline makes, an index taking a token, two
registries requiring htpasswd credentials, its own Sigstore through a trust config and an identity token from the
environment, its own git remote), then the same version released to `local` from the same checkout."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ac_release import registry
from ac_release.config import load_settings
from ac_release.services.manager import LocalServices
from tests.helpers import STAGING_ENV, write_config
from tests.secret_scan import SecretScan, identity_token_secret, secret

pytestmark = pytest.mark.integration

VERSION = "2.2.4-1"


def invoke(repo: Path, config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in STAGING_ENV.values() and k != "AC_RELEASE_FAULT"}
    environment |= {"AC_RELEASE_CONFIG": str(config), "COLUMNS": "200"} | env
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(repo), *args],
        cwd=repo,
        env=environment,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=3600,
    )


@pytest.fixture(scope="module")
def staging(release_repo, tmp_path_factory):
    """A config with local and staging targets, the staging secrets (made up here, as a CI secret store holds
    them), the staging services up, and an identity token minted by them for the staging identity."""
    directory = tmp_path_factory.mktemp("staging")
    config = write_config(directory, root=release_repo, staging=True)
    env = {name: secrets.token_urlsafe(24) for name in STAGING_ENV.values()}
    up = invoke(release_repo, config, env, "services.up", "--target", "staging")
    assert up.returncode == 0, up.stderr
    token = invoke(release_repo, config, env, "services.token", "--target", "staging")
    assert token.returncode == 0, token.stderr
    env["SIGSTORE_IDENTITY_TOKEN"] = token.stdout.strip()
    assert env["SIGSTORE_IDENTITY_TOKEN"].count(".") == 2 and not token.stderr
    yield config, env
    settings = load_settings(config)
    for name in ("staging", "local"):
        LocalServices(settings.target(name).services).down(log=lambda _: None)


def test_the_staging_services_are_tls_with_credentials(staging):
    config, env = staging
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


def test_a_registry_without_credentials_is_refused_in_preflight_naming_it(release_repo, staging, tmp_path):
    """The second registry requires credentials, and this config has none for it: 401, refused before any write."""
    config, env = staging
    text = config.read_text()
    hub = f'password_env = "{STAGING_ENV["hub"]}"\n'
    assert text.count(hub) == 1
    lines = text.split(hub)[0].rstrip("\n").split("\n")
    assert lines[-1].startswith("username = ")  # the hub registry's user, right before its password_env
    without = tmp_path / "release.toml"
    without.write_text("\n".join(lines[:-1]) + "\n" + text.split(hub)[1])
    (hub_registry,) = [r for r in load_settings(without).target("staging").registries if r.access.username is None]
    dist = load_settings(config).dist_dir
    try:
        result = invoke(release_repo, without, env, "release", VERSION, "--target", "staging")
    finally:
        assert invoke(release_repo, config, env, "services.up", "--target", "staging").returncode == 0
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: registry {hub_registry} refused access (401 unauthorized): it has no credentials here: "
        "set its username and password_env (or `docker login`)"
    )
    assert not (dist / VERSION / "release.json").exists()  # refused in preflight: nothing built, nothing written


@pytest.fixture(scope="module")
def released(release_repo, staging, figure):
    config, env = staging
    started = time.monotonic()
    result = invoke(release_repo, config, env, "release", VERSION, "--target", "staging")
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    figure(f"release {VERSION} --target staging (TLS, tokens, two registries, custom Sigstore): {seconds:.0f} s")
    started = time.monotonic()
    verified = invoke(release_repo, config, env, "verify", VERSION, "--target", "staging")
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
    figure(f"verify {VERSION} --target staging: {time.monotonic() - started:.0f} s")
    return result, verified


def test_release_and_verify_to_staging(staging, released, monkeypatch):
    config, env = staging
    result, verified = released
    for name in STAGING_ENV.values():  # this test reads the registries itself, with the target's credentials
        monkeypatch.setenv(name, env[name])
    settings = load_settings(config)
    target = settings.target("staging")
    manifest = json.loads((settings.dist_dir / VERSION / "release.json").read_text())
    assert set(manifest["targets"]) == {"staging"}
    pushed = manifest["targets"]["staging"]["push"]["tags"]
    for repository in target.registries:
        tags = set(registry.tags(repository))
        assert {"2.2.4-1", "2.2.4-1-bullseye", "2.2.4", "2.2.4-onbuild"} <= tags, repository
        digest = registry.remote_image(repository, "2.2.4-1").digest
        assert {t["digest"] for t in pushed if t["repository"] == repository and t["tag"] == "2.2.4-1"} == {digest}
    bundles = settings.dist_dir / VERSION / "sigstore" / "staging"
    assert len(list(bundles.glob("*.sigstore.json"))) == 3
    assert not (settings.dist_dir / VERSION / "sigstore" / "local").exists()
    checked = [line.split(": ")[0] for line in verified.stdout.splitlines()]
    images = [line for line in checked if line.startswith("ok  127.0.0.1:")]
    # base and onbuild per registry: pulled and run, and their signature, SBOMs and provenance verified with cosign
    assert sum(not line.endswith(" attestations") for line in images) == 2 * 2
    assert sum(line.endswith(" attestations") for line in images) == 2 * 2
    remote = subprocess.run(["git", "ls-remote", "--tags", target.git_remote], capture_output=True, text=True)
    assert "refs/tags/v2.2.4-1^{}" in remote.stdout
    packages = target.services.dir / "pypi" / "packages"
    assert len(list(packages.iterdir())) == 3
    # No secret of the run in its output or the services' logs: the token, both registry passwords, the identity
    # token (which was in the environment of the release only).
    scan = SecretScan(
        [
            *(secret(f"${name}", env[name]) for name in STAGING_ENV.values()),
            identity_token_secret("staging identity token", env["SIGSTORE_IDENTITY_TOKEN"]),
        ]
    )
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr), ("verify", verified.stdout)):
        scan.text(text, f"the release's {name}")
    scan.tree(target.services.dir / "run")
    scan.tree(settings.dist_dir)
    assert not scan.findings, scan.report()


def test_the_same_version_released_to_local_from_the_same_checkout(release_repo, staging, released, figure):
    """Nothing recorded for staging is read as local's: its own bundles, images, index, registry and tag."""
    config, env = staging
    settings = load_settings(config)
    before = json.loads((settings.dist_dir / VERSION / "release.json").read_text())["targets"]["staging"]
    started = time.monotonic()
    result = invoke(release_repo, config, {}, "release", VERSION)  # the default target, no staging secret around
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    figure(f"then release {VERSION} to local from the same checkout: {time.monotonic() - started:.0f} s")
    manifest = json.loads((settings.dist_dir / VERSION / "release.json").read_text())
    assert set(manifest["targets"]) == {"staging", "local"}
    assert manifest["targets"]["staging"] == before
    local_bundles = settings.dist_dir / VERSION / "sigstore" / "local"
    assert "sign: " in result.stderr and len(list(local_bundles.glob("*.sigstore.json"))) == 3
    assert len(list(local_bundles.glob("*.attestation"))) == 3 * 2  # PEP 740 publish and SLSA per artifact
    local_images = manifest["targets"]["local"]["images"]["flavours"]["bullseye"]["variants"]
    assert all("/local/" in variant["ref"] for variant in local_images.values())
    (local_registry,) = settings.target("local").registries
    assert "2.2.4-1" in registry.tags(local_registry)
    for target in ("staging", "local"):
        again = invoke(release_repo, config, env, "verify", VERSION, "--target", target)
        assert again.returncode == 0, (target, again.stderr[-3000:])
