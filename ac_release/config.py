"""`release.toml`: named targets (where artifacts go) and local settings. Secrets never live in it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ac_release.errors import ReleaseError

CONFIG_ENV = "AC_RELEASE_CONFIG"


@dataclass(frozen=True)
class Secret:
    """Where a secret comes from: an environment variable or a file only its owner can read."""

    env: str | None = None
    file: Path | None = None

    def describe(self) -> str:
        return f"${self.env}" if self.env else str(self.file)

    def read(self) -> str:
        if self.env:
            value = os.environ.get(self.env)
            if not value:
                raise ReleaseError(f"secret not set: export {self.env} (the value is never printed)")
            return value
        assert self.file is not None
        if not self.file.is_file():
            raise ReleaseError(f"secret file {self.file} is missing: for the local target run `invoke services.up`")
        if stat.S_IMODE(self.file.stat().st_mode) & 0o077:
            raise ReleaseError(f"secret file {self.file} is readable by others: run `chmod 600 {self.file}`")
        return self.file.read_text().strip()


@dataclass(frozen=True)
class IndexSettings:
    url: str  # base URL: uploads go here, `simple/` below it is read back
    username: str
    password: Secret

    @property
    def upload_url(self) -> str:
        return self.url.rstrip("/") + "/"

    @property
    def simple_url(self) -> str:
        return self.url.rstrip("/") + "/simple/"


@dataclass(frozen=True)
class SigningSettings:
    instance: str  # "local": the pipeline's own instance; "public": public-good Sigstore; "custom": trust_config
    identity: str  # the certificate identity every bundle must carry (email or URI)
    issuer: str
    trust_config: Path | None = None


@dataclass(frozen=True)
class Target:
    name: str
    index: IndexSettings
    signing: SigningSettings
    base_images: str  # "debootstrap" (built here from Debian's archive) or "official" (python:<py>-slim-<distro>)
    registries: tuple[str, ...]
    git_remote: str  # where the release tag is pushed: a remote name or URL, or a path
    local_services: bool  # the pipeline starts and owns the services this target talks to


@dataclass(frozen=True)
class ServicesSettings:
    dir: Path
    host: str
    pypi_port: int
    sigstore_port: int
    registry_port: int


@dataclass(frozen=True)
class Settings:
    root: Path
    dist_dir: Path
    cache_dir: Path
    extra_ca_bundle: Path | None
    docker: str
    services: ServicesSettings
    targets: dict[str, Target]
    default_target: str

    def target(self, name: str | None) -> Target:
        name = name or self.default_target
        if name not in self.targets:
            raise ReleaseError(f"unknown target {name!r}: choose one of {', '.join(sorted(self.targets))}")
        return self.targets[name]

    @property
    def wheel_dir(self) -> Path:
        return self.root / "wheel"


def find_config(start: Path | None = None) -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).resolve()
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "release.toml").is_file():
            return directory / "release.toml"
    raise ReleaseError("release.toml not found: run from the repository or set AC_RELEASE_CONFIG")


def _path(base: Path, value: str) -> Path:
    return (base / os.path.expanduser(os.path.expandvars(value))).resolve()


def _secret(base: Path, data: dict) -> Secret:
    if "password_env" in data:
        return Secret(env=data["password_env"])
    return Secret(file=_path(base, data["password_file"]))


def _target(base: Path, name: str, data: dict) -> Target:
    index = data["index"]
    signing = data["signing"]
    return Target(
        name=name,
        index=IndexSettings(url=index["url"], username=index["username"], password=_secret(base, index)),
        signing=SigningSettings(
            instance=signing["instance"],
            identity=signing["identity"],
            issuer=signing["issuer"],
            trust_config=_path(base, signing["trust_config"]) if signing.get("trust_config") else None,
        ),
        base_images=data.get("base_images", "official"),
        registries=tuple(data.get("registries", ())),
        git_remote=str(_path(base, data["git_remote"])) if data["git_remote"].startswith(".") else data["git_remote"],
        local_services=bool(data.get("local_services", False)),
    )


def load_settings(path: Path | None = None) -> Settings:
    path = path or find_config()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseError(f"cannot read {path}: {exc}") from exc
    base = path.parent
    # The repository root holds wheel/ and changelog/; a test config elsewhere names it explicitly.
    root = _path(base, data.get("root", "."))
    try:
        services = data["services"]
        settings = Settings(
            root=root,
            dist_dir=_path(base, data.get("dist_dir", "dist")),
            cache_dir=_path(base, os.environ.get("AC_RELEASE_CACHE") or data.get("cache_dir", "~/.cache/ac-release")),
            extra_ca_bundle=_path(base, data["extra_ca_bundle"]) if data.get("extra_ca_bundle") else None,
            docker=data.get("docker", "auto"),
            services=ServicesSettings(
                dir=_path(base, services["dir"]),
                host=services.get("host", "127.0.0.1"),
                pypi_port=int(services["pypi_port"]),
                sigstore_port=int(services["sigstore_port"]),
                registry_port=int(services["registry_port"]),
            ),
            targets={name: _target(base, name, t) for name, t in data["targets"].items()},
            default_target=data["default_target"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReleaseError(
            f"{path}: missing or malformed setting {exc}; compare with the repository's release.toml"
        ) from exc
    settings.target(settings.default_target)
    return settings


def docker_command(setting: str) -> list[str]:
    """The Docker CLI to drive, as argv prefix.

    BuildKit is needed for cache mounts. On these Debian machines the client first on PATH may lack the buildx
    plugin while Debian's own `/usr/bin/docker` speaks BuildKit natively (with DOCKER_BUILDKIT=1), so `auto`
    prefers a client with buildx, then Debian's.
    """
    if setting != "auto":
        return [setting]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "buildx", "version"], capture_output=True).returncode == 0:
        return [docker]
    if Path("/usr/bin/docker").exists():
        return ["/usr/bin/docker"]
    if docker:
        return [docker]
    raise ReleaseError("no docker CLI found: run .ci/bootstrap (installs Debian's docker.io and starts dockerd)")
