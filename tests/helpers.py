"""Shared test helpers: a release.toml for a test run (its own cache), free ports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ac_release.services.manager import free_port

REPO = Path(__file__).resolve().parents[1]
SHARED_CACHE = Path("~/.cache/ac-release").expanduser()  # the machine's cache, where the release.toml puts it
SHARED_PARTS = ("uv", "sdists")  # what of it a test config's cache holds: content-addressed, downloaded once


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def committed_copy(root: Path) -> Path:
    """The working tree as it is (tracked and new files), committed in a repository of its own at `root`."""
    for name in git(REPO, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0"):
        if name and (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    subprocess.run(["git", "init", "--quiet", str(root)], check=True)
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "release")
    return root


def write_config(
    directory: Path,
    *,
    pypi_port: int | None = None,
    sigstore_port: int | None = None,
    identity: str = "release@ac-release.local",
    issuer: str = "https://oidc.ac-release.local",
    index_url: str | None = None,
    cache_dir: str | Path | None = None,
    instance: str = "local",
    services_dir: Path | None = None,
    password_file: Path | None = None,
    registry_port: int | None = None,
    root: Path = REPO,
    staging: bool = False,
    staging_registry_credentials: tuple[bool, bool] = (True, True),
    dev_index: bool = False,
    workflows: tuple[str, str, str] | None = None,
    platforms: tuple[str, ...] | None = None,
) -> Path:
    """A release.toml like the repository's, with its dist, services and ports in `directory`. With `staging`, also
    a staging target like the repository's (its services in `directory / "services-staging"`, its own ports, its
    secrets in the environment variables of STAGING_ENV); `staging_registry_credentials` leaves a registry's out.
    With `dev_index`, the local services also run the dev index (dev builds, nightlies) on a port of its own.
    The cache is `directory / "cache"` (own_cache) unless `cache_dir` names one, taken as it is. With `platforms`
    (`("linux/amd64",)`), the local target builds only those of a line's platforms (all of them without)."""
    services_dir = services_dir or directory / "services"
    cache_dir = own_cache(directory) if cache_dir is None else cache_dir
    password_file = password_file or services_dir / "pypi" / "password"
    pypi_port = pypi_port or free_port()
    registry_port = registry_port or free_port()
    sigstore_port = sigstore_port or free_port()
    path = directory / "release.toml"
    path.write_text(f"""
root = "{root}"
default_target = "local"
dist_dir = "{directory / "dist"}"
cache_dir = "{cache_dir}"
extra_ca_bundle = "/etc/ssl/certs/ca-certificates.crt"
docker = "auto"

[services]
dir = "{services_dir}"
host = "127.0.0.1"
pypi_port = {pypi_port}
sigstore_port = {sigstore_port}
registry_port = {registry_port}
{f"dev_pypi_port = {free_port()}" if dev_index else ""}

[targets.local]
local_services = true
base_images = "debootstrap"
registries = ["127.0.0.1:{registry_port}/astronomer/ap-airflow"]
git_remote = "{services_dir / "git" / "ac-release.git"}"
{f"platforms = {json.dumps(list(platforms))}" if platforms is not None else ""}

[targets.local.index]
url = "{index_url or f"http://127.0.0.1:{pypi_port}/"}"
username = "ac-release"
password_file = "{password_file}"

[targets.local.signing]
instance = "{instance}"
issuer = "{issuer}"
{_signer_lines(identity, workflows)}
""")
    if staging:
        with path.open("a") as config:
            config.write(_staging_target(directory, staging_registry_credentials))
    return path


def _signer_lines(identity: str, workflows: tuple[str, str, str] | None) -> str:
    """The local instance's fixed identity, or (repository, releases, nightlies): GitHub Actions' workflows."""
    if workflows is None:
        return f'identity = "{identity}"'
    repository, releases, nightlies = workflows
    return f'repository = "{repository}"\nreleases = "{releases}"\nnightlies = "{nightlies}"'


def own_cache(directory: Path) -> Path:
    """`directory / "cache"`, a release's cache of its own (two releases running at once write their logs, build
    contexts and Sigstore client caches by version), holding hard links to the machine's uv and sdist caches: their
    files are content-addressed and never rewritten in place, the links cost nothing, and they work inside the
    containers the cache is bind-mounted into (a symbolic link would lead nowhere there). Kept when it exists."""
    cache = directory / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for part in SHARED_PARTS:
        if (SHARED_CACHE / part).is_dir() and not (cache / part).exists():
            linked = subprocess.run(["cp", "-al", str(SHARED_CACHE / part), str(cache / part)], capture_output=True)
            if linked.returncode != 0:  # another file system: the release fills its own (downloads again)
                shutil.rmtree(cache / part, ignore_errors=True)
    return cache


# How release.toml's staging and production targets name who signs: GitHub Actions' identity of a workflow.
GITHUB_SIGNING = """issuer = "https://token.actions.githubusercontent.com"
repository = "astronomer/ap-airflow"
releases = "release.yml@refs/heads/main"
nightlies = "nightly.yml@refs/heads/main"
"""
RELEASE_IDENTITY = "https://github.com/astronomer/ap-airflow/.github/workflows/release.yml@refs/heads/main"
NIGHTLY_IDENTITY = "https://github.com/astronomer/ap-airflow/.github/workflows/nightly.yml@refs/heads/main"


# The environment variables the staging target reads its secrets from (write_config's and release.toml's).
STAGING_ENV = {
    "index": "AC_INDEX_PASSWORD",
    "quay": "AC_QUAY_PASSWORD",
    "hub": "AC_HUB_PASSWORD",
}


def _staging_target(directory: Path, credentials: tuple[bool, bool]) -> str:
    registries = ""
    for (name, path, user), with_credentials in zip(
        (("quay", "astronomer/ap-airflow", "ac-release+staging"), ("hub", "astronomerinc/ap-airflow", "acrelease")),
        credentials,
        strict=True,
    ):
        registries += f"""
[[targets.staging.services.registries]]
port = {free_port()}
repository = "{path}"
"""
        if with_credentials:
            registries += f'username = "{user}"\npassword_env = "{STAGING_ENV[name]}"\n'
    return f"""
[targets.staging]
base_images = "debootstrap"

[targets.staging.services]
dir = "{directory / "services-staging"}"
host = "127.0.0.1"
tls = true
pypi_port = {free_port()}
sigstore_port = {free_port()}
{registries}
[targets.staging.index]
username = "__token__"
password_env = "{STAGING_ENV["index"]}"

[targets.staging.signing]
instance = "custom"
{GITHUB_SIGNING}"""


# A production target as release.toml declares one (no services of its own), for tests that add it to a config.
PRODUCTION = (
    """
[targets.production]
base_images = "official"
registries = ["quay.io/astronomer/ap-airflow"]
git_remote = "origin"

[targets.production.index]
url = "https://pip.example.com/"
username = "__token__"
password_env = "AC_INDEX_PASSWORD"

[targets.production.signing]
instance = "public"
"""
    + GITHUB_SIGNING
)


@dataclass
class Background:
    """A command running in the background in a session of its own, its output in `output`.out and `output`.err (a
    pipe nobody reads would block it)."""

    process: subprocess.Popen
    output: Path
    started: float  # wall clock: the run's end is its output files' last write

    @classmethod
    def start(cls, command: dict, output: Path) -> Background:
        """`command`: subprocess.Popen's keyword arguments, output streams aside."""
        started = time.time()
        with open(output.with_suffix(".out"), "w") as out, open(output.with_suffix(".err"), "w") as err:
            process = subprocess.Popen(**(command | {"start_new_session": True}), stdout=out, stderr=err)
        return cls(process, output, started)

    def wait(self, timeout: float = 3600) -> tuple[subprocess.CompletedProcess, float]:
        """The finished run and its seconds, start to last output (the caller may come back long after its end)."""
        try:
            self.process.wait(timeout=max(1.0, self.started + timeout - time.time()))
        except subprocess.TimeoutExpired:
            self.stop()
            command = " ".join(map(str, self.process.args))
            raise AssertionError(f"{command} did not finish in {timeout:.0f} s") from None
        files = [self.output.with_suffix(suffix) for suffix in (".out", ".err")]
        out, err = (path.read_text() for path in files)
        seconds = max(path.stat().st_mtime for path in files) - self.started
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, out, err), seconds

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # the command and every process it started
            self.process.wait()


@contextmanager
def throwaway_registry(directory: Path, delete: bool = False) -> Iterator[str]:
    """Debian's docker-registry as services/manager.py runs one (plain HTTP on loopback, no auth), its data in
    `directory / "data"`, on a free port; yields `127.0.0.1:PORT` once it answers, and stops it afterwards. With
    `delete`, manifests may be deleted through the API."""
    port = free_port()
    deletion = "  delete:\n    enabled: true\n" if delete else ""
    (directory / "config.yml").write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n"
        f"{deletion}http:\n  addr: 127.0.0.1:{port}\n"
    )
    server = subprocess.Popen(
        ["docker-registry", "serve", str(directory / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                loopback.open(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "docker-registry did not start"
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


def hashedrekord_entry(text: str) -> dict:
    """A proposed Rekor hashedrekord entry for `text`, signed by a throwaway key."""
    import base64
    import hashlib

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(text.encode()).digest()
    signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": base64.b64encode(pem).decode()},
            },
        },
    }


def wait_until_dead(pid: int, what: str) -> None:
    """Wait up to 10 s for `pid` (a service this process started, reaped here) to end at a failpoint."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} (pid {pid}) did not die at the failpoint")
