"""A thin wrapper over the Docker CLI: the engine does the work, this only builds argv and reads answers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ac_release.errors import ReleaseError


class Docker:
    def __init__(self, argv: Sequence[str]):
        self.argv = list(argv)
        # Debian's 20.10 client only uses BuildKit when asked to; newer clients ignore the variable.
        self.env = {**os.environ, "DOCKER_BUILDKIT": "1"}

    def __call__(
        self, *args: str, capture: bool = False, check: bool = True, stdin=None, input: bytes | None = None
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*self.argv, *args],
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
            result = subprocess.run(
                [*self.argv, *args, str(context)], env=self.env, stdout=output, stderr=subprocess.STDOUT
            )
        if result.returncode != 0:
            raise ReleaseError(f"docker build of {tag} failed (exit {result.returncode}): full output in {log}")
        image = self.image_id(tag)
        assert image, tag
        return image
