"""The hermetic build environment of a release line: an image tagged by a hash of everything that makes it."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ac_release.building.baseimage import ensure_base
from ac_release.building.build_once import build_once
from ac_release.clients.docker import Docker
from ac_release.model.line import ReleaseLine

DOCKERFILE = Path(__file__).with_name("buildenv.Dockerfile")
REPOSITORY = "ac-release/buildenv"
CA_IN_IMAGE = "/etc/ac-release/build-ca.crt"


@dataclass(frozen=True)
class BuildEnv:
    image: str
    python: str
    has_extra_ca: bool

    def tls_env(self) -> list[str]:
        """`docker run` flags that let pip/uv in the build environment trust the extra CAs."""
        if not self.has_extra_ca:
            return []
        return [f"--env={name}={CA_IN_IMAGE}" for name in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE")]


def ensure_buildenv(
    docker: Docker,
    line: ReleaseLine,
    base_mode: str,
    extra_ca: Path | None,
    cache: Path,
    log=print,
    build_packages: tuple[str, ...] = (),
) -> BuildEnv:
    """`build_packages`: the distro's compilers and -dev headers, for the wheel check's installs."""
    base = ensure_base(docker, base_mode, line.build_distro, line.build_python, log)
    base_id = docker.image_id(base) or base  # an official base not pulled yet is keyed by its name
    ca = extra_ca.read_bytes() if extra_ca and extra_ca.is_file() else b""
    inputs = hashlib.sha256()
    for part in (
        DOCKERFILE.read_bytes(),
        line.build_requirements_file.read_bytes(),
        base_id.encode(),
        line.build_python.encode(),
        ca,
        " ".join(build_packages).encode(),
    ):
        inputs.update(hashlib.sha256(part).digest())
    tag = f"{REPOSITORY}:{line.airflow}-{line.build_distro}-py{line.build_python}-{inputs.hexdigest()[:12]}"

    def build() -> None:
        log(f"building build environment {tag}")
        with tempfile.TemporaryDirectory(prefix="ac-buildenv-") as tmp:
            context = Path(tmp)
            shutil.copy(DOCKERFILE, context / "Dockerfile")
            shutil.copy(line.build_requirements_file, context / "build-requirements.txt")
            (context / "build-ca.crt").write_bytes(ca)
            docker.build(
                context,
                tag,
                build_args={
                    "BASE_IMAGE": base,
                    "PYTHON": line.build_python,
                    "BUILD_PACKAGES": " ".join(build_packages),
                },
                log=cache / "logs" / f"buildenv-{line.airflow}.log",
            )

    build_once(tag, lambda: bool(docker.image_id(tag)), build, log)
    return BuildEnv(image=tag, python=line.build_python, has_extra_ca=bool(ca))
