"""A thin wrapper over the Docker CLI: the engine does the work, this only builds argv and reads answers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ac_release import proc
from ac_release.errors import ReleaseError

# What the docker client needs from the environment; nothing else (tokens, passwords) is passed on.
_ENV_NAMES = {"PATH", "HOME", "TMPDIR", "XDG_RUNTIME_DIR"}  # XDG_RUNTIME_DIR: a rootless engine's socket
_ENV_PREFIXES = ("DOCKER_", "BUILDKIT_")
_PROXY_NAMES = {"http_proxy", "https_proxy", "no_proxy", "all_proxy", "ftp_proxy"}


def docker_env() -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name in _ENV_NAMES or name.startswith(_ENV_PREFIXES) or name.lower() in _PROXY_NAMES
    }
    # Debian's 20.10 client only uses BuildKit when asked to; newer clients ignore the variable.
    return {**env, "DOCKER_BUILDKIT": "1"}


class Docker:
    def __init__(self, argv: Sequence[str]):
        self.argv = list(argv)
        self.env = docker_env()

    def with_env(self, **extra: str) -> Docker:
        """The same client with more environment (e.g. a private DOCKER_CONFIG holding one registry's login)."""
        other = Docker(self.argv)
        other.env = {**self.env, **extra}
        return other

    def __call__(
        self, *args: str, capture: bool = False, check: bool = True, stdin=None, input: bytes | None = None
    ) -> subprocess.CompletedProcess:
        result = proc.run(
            [*self.argv, *args],
            kind="docker",
            env=self.env,
            stdin=stdin,
            input=input,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
        )
        if check and result.returncode != 0:
            detail = (result.stderr or b"").decode(errors="replace").strip().splitlines()
            raise ReleaseError(
                f"docker {args[0]} failed (exit {result.returncode})" + (f": {detail[-1]}" if detail else "")
            )
        return result

    def ensure_engine(self) -> None:
        if self("info", capture=True, check=False).returncode != 0:
            raise ReleaseError("Docker engine not reachable: run .ci/bootstrap (installs docker.io and starts dockerd)")

    def image_id(self, ref: str) -> str | None:
        result = self("image", "inspect", "--format", "{{.Id}}", ref, capture=True, check=False)
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def image_size(self, ref: str) -> int:
        return int(self("image", "inspect", "--format", "{{.Size}}", ref, capture=True).stdout)

    def build(
        self,
        context: Path,
        tag: str,
        *,
        build_args: dict[str, str] | None = None,
        dockerfile: Path | None = None,
        secrets: list[str] | None = None,
        log: Path,
    ) -> str:
        """Build `context` as `tag` and return the image id; the build output goes to `log`."""
        args = ["build", "--tag", tag, "--progress=plain"]
        for secret in secrets or ():
            args += ["--secret", secret]
        for key, value in sorted((build_args or {}).items()):
            args += ["--build-arg", f"{key}={value}"]
        if dockerfile:
            args += ["--file", str(dockerfile)]
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as output:
            result = proc.run(
                [*self.argv, *args, str(context)],
                kind="docker build",
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        if result.returncode != 0:
            raise ReleaseError(f"docker build of {tag} failed (exit {result.returncode}): full output in {log}")
        image = self.image_id(tag)
        assert image, tag
        return image
