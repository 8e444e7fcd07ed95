"""The scanner's Docker half finds every kind of secret a release uses where an image leaks it: in a file of a layer
(also one a later layer overwrites), and in the history and config (a build argument turned ENV). Images built FROM
scratch, in seconds; the release test then runs the same scan on the real images (test_release.py)."""

from __future__ import annotations

import secrets
import subprocess
import time
import uuid

import pytest
from rich.console import Console

from ac_release.clients.docker import docker_env
from ac_release.model.config import docker_command, load_settings
from ac_release.services.sigstore_local_state import load_or_create_state
from ac_release.world.context import ReleaseContext
from tests.helpers import write_config
from tests.secret_scan import SecretScan, docker_config_auth, release_secrets

pytestmark = pytest.mark.integration

REGISTRY = "registry.example"


@pytest.fixture
def planted(tmp_path, docker_ready):
    """The secrets of a local target (index password, Sigstore keys, identity token) and a registry credential
    standing in for `docker login`'s, with the raw values to plant: {name: value}."""
    settings = load_settings(write_config(tmp_path))
    password = settings.target(None).index.password.file
    password.parent.mkdir(parents=True)
    password.write_text(secrets.token_urlsafe(24) + "\n")
    password.chmod(0o600)
    keys = settings.services.dir / "sigstore" / "state"
    load_or_create_state(keys)
    ctx = ReleaseContext.create("2.2.4-1", settings, console=Console(stderr=True, quiet=True))
    registry = "stand-in-" + secrets.token_urlsafe(18)
    found = release_secrets(ctx, registry_credentials={REGISTRY: registry})
    from ac_release.supply_chain import signing

    values = {
        found[0].name: password.read_text().strip(),
        found[1].name: registry,
        found[2].name: (keys / "keys" / "ca.key.pem").read_text(),
        found[3].name: (keys / "keys" / "oidc.key.pem").read_text(),
        found[4].name: signing.identity_token(ctx),  # another mint than the scan's
    }
    return found, values


class Images:
    def __init__(self):
        self.docker = docker_command("auto")
        self.tags: list[str] = []

    def build(self, context, dockerfile: str, env: dict[str, str] | None = None) -> str:
        tag = f"ac-release/secret-scan-test:{uuid.uuid4().hex[:12]}"
        (context / "Dockerfile").write_text(dockerfile)
        # Build arguments named without a value take it from the environment: no secret on the command line.
        args = [arg for name in (env or {}) for arg in ("--build-arg", name)]
        subprocess.run(
            [*self.docker, "build", "--quiet", "--tag", tag, *args, str(context)],
            check=True,
            capture_output=True,
            env=docker_env() | (env or {}),
            timeout=300,
        )
        self.tags.append(tag)
        return tag


@pytest.fixture
def images():
    built = Images()
    yield built
    if built.tags:
        subprocess.run([*built.docker, "image", "rm", "--force", *built.tags], capture_output=True)


def test_each_secret_in_a_layer_file_is_found_even_when_a_later_layer_overwrites_it(planted, images, tmp_path, figure):
    found, values = planted
    context = tmp_path / "layer"
    (context / "leak").mkdir(parents=True)
    names = {}
    for index, (name, value) in enumerate(values.items()):
        names[name] = f"leak/{index}.txt"
        (context / names[name]).write_text(f"left behind: {value}\n")
    (context / "innocent.txt").write_text("no secret here\n")
    clean = images.build(context, "FROM scratch\nCOPY innocent.txt /innocent.txt\n")
    leaking = images.build(context, "FROM scratch\nCOPY innocent.txt /innocent.txt\nCOPY leak/ /leak/\n")

    scan = SecretScan(found)
    started = time.monotonic()
    scan.history([clean, leaking])
    scan.saved([clean])
    assert scan.layers == 1 and not scan.findings, scan.report()  # the clean image: nothing

    scan.saved([leaking])
    figure(f"secret scan of two tiny images (history and docker save): {time.monotonic() - started:.1f} s")
    where = {(f.secret, f.where.rsplit(": ", 1)[-1]) for f in scan.findings}
    assert where == {(name, names[name]) for name in values}, scan.report()

    # A registry login written as `docker login` writes it, then overwritten by a later layer: still in the image.
    (context / "home" / ".docker").mkdir(parents=True)
    (context / "home" / ".docker" / "config.json").write_text(
        docker_config_auth(REGISTRY, "robot", values[found[1].name])
    )
    overwritten = images.build(
        context,
        f"FROM {clean}\nCOPY home/ /root/\nCOPY --from={clean} /innocent.txt /root/.docker/config.json\n",
    )
    scan = SecretScan(found)
    scan.saved([overwritten])
    assert {(f.secret, f.where.rsplit(": ", 1)[-1]) for f in scan.findings} >= {
        (found[1].name, "root/.docker/config.json"),
        ("credential file", "root/.docker/config.json"),
    }, scan.report()


def test_each_secret_in_a_build_argument_made_env_is_found_in_history_and_config(planted, images, tmp_path):
    found, values = planted
    context = tmp_path / "env"
    context.mkdir()
    (context / "innocent.txt").write_text("no secret here\n")
    env = {f"LEAK_{index}": value for index, value in enumerate(values.values())}
    dockerfile = "FROM scratch\n" + "".join(f"ARG {name}\nENV {name}=${{{name}}}\n" for name in env)
    image = images.build(context, dockerfile + "COPY innocent.txt /innocent.txt\n", env)

    history = SecretScan(found)
    history.history([image])
    assert {f.secret for f in history.findings if f.where == f"history of {image}"} == set(values), history.report()
    saved = SecretScan(found)
    saved.saved([image])
    # docker save carries the config (Env, history) beside the layers: found there too, in no layer file.
    assert {f.secret for f in saved.findings} == set(values), saved.report()
    assert all(" layer " not in f.where for f in saved.findings), saved.report()
