"""The docker CLI gets only the environment it needs: a planted secret never reaches it (a real child process)."""

from __future__ import annotations

import json
import sys

from ac_release.clients.docker import Docker

# Stands in for the docker client: prints the environment it was started with.
PRINT_ENV = [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"]


def test_a_planted_secret_does_not_reach_the_docker_cli(monkeypatch, tmp_path):
    monkeypatch.setenv("AC_RELEASE_TEST_SECRET", "planted-secret-value")
    monkeypatch.setenv("TWINE_PASSWORD", "planted-twine-password")
    monkeypatch.setenv("SIGSTORE_IDENTITY_TOKEN", "planted-oidc-token")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "planted-request-token")
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/docker.sock")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("BUILDKIT_PROGRESS", "plain")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    seen = json.loads(Docker(PRINT_ENV)("version", capture=True).stdout)
    planted = {"planted-secret-value", "planted-twine-password", "planted-oidc-token", "planted-request-token"}
    assert not planted & set(seen.values())
    assert set(seen) <= {
        "PATH",
        "HOME",
        "DOCKER_HOST",
        "DOCKER_CONFIG",
        "DOCKER_BUILDKIT",
        "BUILDKIT_PROGRESS",
        "HTTPS_PROXY",
        "no_proxy",
        "TMPDIR",
        "XDG_RUNTIME_DIR",
        "LC_CTYPE",
    }
    assert seen["DOCKER_BUILDKIT"] == "1"
    assert (seen["DOCKER_HOST"], seen["HTTPS_PROXY"], seen["no_proxy"]) == (
        "unix:///run/docker.sock",
        "http://proxy.invalid:3128",
        "127.0.0.1",
    )
