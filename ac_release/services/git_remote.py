"""The target's git remote: a bare repository the release tags are pushed to."""

from __future__ import annotations

import subprocess

from ac_release.model.config import ServicesSettings


def prepare_git_remote(settings: ServicesSettings) -> None:
    remote = settings.git_remote
    if not (remote / "HEAD").exists():
        remote.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True)
