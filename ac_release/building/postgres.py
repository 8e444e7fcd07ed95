"""The PostgreSQL the smoke tests run Airflow against: official `postgres:13` where a registry serves it,
else one built here from Debian's packages (kept and reused, like the base images)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ac_release.building.baseimage import ensure_base, official_image
from ac_release.clients.docker import Docker

OFFICIAL = "postgres:13"  # pulled by its digest in images/official-images.toml
REPOSITORY = "ac-release/postgres"


def ensure_postgres(docker: Docker, base_mode: str, images_dir: Path, cache: Path, log=print) -> str:
    if base_mode == "official":
        return official_image(OFFICIAL)
    context = images_dir / "postgres"
    base = ensure_base(docker, base_mode, "bullseye", "3.9", log)
    digest = hashlib.sha256((docker.image_id(base) or base).encode())
    for name in ("Dockerfile", "postgres-entrypoint"):
        digest.update((context / name).read_bytes())
    tag = f"{REPOSITORY}:13-bullseye-{digest.hexdigest()[:12]}"
    if not docker.image_id(tag):
        log(f"building {tag} from Debian's packages")
        docker.build(context, tag, build_args={"BASE_IMAGE": base}, log=cache / "logs" / "postgres-image.log")
    return tag
