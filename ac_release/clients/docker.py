"""A thin wrapper over the Docker CLI: the engine does the work, this only builds argv and reads answers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from ac_release.clients import proc
from ac_release.core.errors import ReleaseError

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


# The subcommands that change what the engine's image names and ids answer (`docker image <subcommand>` too).
_IMAGE_WRITES = ("build", "tag", "pull", "rmi", "rm", "load", "import", "prune", "commit")


def written_references(args: Sequence[str]) -> list[str] | None:
    """The image references a docker command writes: [] when it writes none; None when it may change any (a
    removal, a prune, a load): whoever remembers the engine's answers forgets them all."""
    words = list(args[1:]) if args and args[0] == "image" else list(args)
    if not words or words[0] not in _IMAGE_WRITES or (args[0] != "image" and words[0] in ("rm", "prune")):
        return []  # `docker rm`, `docker prune`: containers, not images
    if words[0] == "tag":
        return [words[-1]]
    if words[0] == "pull":
        return [words[-1]]
    if words[0] == "build":
        return [words[i + 1] for i, word in enumerate(words[:-1]) if word in ("--tag", "-t")]
    return None


class Docker:
    def __init__(self, argv: Sequence[str], on_write: Callable[[list[str] | None], None] | None = None):
        self.argv = list(argv)
        self.env = docker_env()
        self.on_write = on_write  # told what each image write named (written_references): the run's world forgets it

    def with_env(self, **extra: str) -> Docker:
        """The same client with more environment (e.g. a private DOCKER_CONFIG holding one registry's login)."""
        other = Docker(self.argv, self.on_write)
        other.env = {**self.env, **extra}
        return other

    def _wrote(self, args: Sequence[str]) -> None:
        if self.on_write is not None and (written := written_references(args)) != []:
            self.on_write(written)

    def __call__(
        self, *args: str, capture: bool = False, check: bool = True, stdin=None, input: bytes | None = None
    ) -> subprocess.CompletedProcess:
        try:
            result = proc.run(
                [*self.argv, *args],
                kind="docker",
                env=self.env,
                stdin=stdin,
                input=input,
                stdout=subprocess.PIPE if capture else None,
                stderr=subprocess.PIPE if capture else None,
            )
        finally:  # a failed or stopped write may have written too
            self._wrote(args)
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
        platform: str | None = None,
        log: Path,
    ) -> str:
        """Build `context` as `tag` (for `platform`, `linux/arm64`, when given) and return the image id; the build
        output goes to `log`."""
        extra = ["--tag", tag, *(["--platform", str(platform)] if platform else [])]
        self._build(extra, context, build_args, dockerfile, secrets, log, what=tag)
        image = self.image_id(tag)
        assert image, tag
        return image

    def build_stage(
        self,
        context: Path,
        stage: str,
        *,
        build_args: dict[str, str] | None = None,
        secrets: list[str] | None = None,
        platform: str | None = None,
        log: Path,
    ) -> None:
        """Build the Dockerfile's stage `stage` into the build cache only: no image is written or named."""
        extra = ["--target", stage, "--output", "type=cacheonly", *(["--platform", str(platform)] if platform else [])]
        self._build(extra, context, build_args, None, secrets, log, what=f"stage {stage}")

    def _build(self, extra, context, build_args, dockerfile, secrets, log: Path, what: str) -> None:
        args = ["build", *extra, "--progress=plain"]
        for secret in secrets or ():
            args += ["--secret", secret]
        for key, value in sorted((build_args or {}).items()):
            args += ["--build-arg", f"{key}={value}"]
        if dockerfile:
            args += ["--file", str(dockerfile)]
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as output:
            try:
                result = proc.run(
                    [*self.argv, *args, str(context)],
                    kind="docker build",
                    env=self.env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            finally:
                self._wrote(args)
        if result.returncode != 0:
            raise ReleaseError(f"docker build of {what} failed (exit {result.returncode}): full output in {log}")
