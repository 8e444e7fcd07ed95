"""`release.toml`: named targets (where artifacts go) and local settings. Secrets never live in it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ac_release.config_schema import SchemaError, check, is_loopback_host, is_loopback_registry
from ac_release.errors import ReleaseError

CONFIG_ENV = "AC_RELEASE_CONFIG"
CACHE_ENV = "AC_RELEASE_CACHE"

__all__ = ["is_loopback_host", "is_loopback_registry", "load_settings", "Settings", "Target"]


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
        """The target named `name`; None (no --target) is the default target, an empty name is refused."""
        if name == "":
            raise ReleaseError(
                f"empty target name: choose one of {', '.join(sorted(self.targets))} "
                f"(or leave --target out for {self.default_target})"
            )
        name = self.default_target if name is None else name
        if name not in self.targets:
            raise ReleaseError(f"unknown target {name!r}: choose one of {', '.join(sorted(self.targets))}")
        return self.targets[name]

    @property
    def wheel_dir(self) -> Path:
        return self.root / "wheel"


def find_config(start: Path | None = None) -> Path:
    if CONFIG_ENV in os.environ:
        named = os.environ[CONFIG_ENV]
        if not named:
            raise ReleaseError(f"{CONFIG_ENV} is set but empty: point it at a release.toml or unset it")
        path = Path(named).resolve()
        if path.is_dir():
            raise ReleaseError(f"{CONFIG_ENV}={named} is a directory: point it at a release.toml file")
        if not path.exists():
            raise ReleaseError(f"{CONFIG_ENV}={named} does not exist: point it at a release.toml or unset it")
        return path
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
        registries=tuple(data["registries"]),
        git_remote=str(_path(base, data["git_remote"])) if data["git_remote"].startswith(".") else data["git_remote"],
        local_services=data.get("local_services", False),
    )


def _read(path: Path) -> dict:
    """The parsed file; anything unreadable or malformed is one line naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReleaseError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReleaseError(
            f"{path}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}): save it as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ReleaseError(f"{path}: not valid TOML: {exc}") from None
    try:
        check(data)
    except SchemaError as exc:
        raise ReleaseError(f"{path}: {exc}") from None
    return data


def _directory(path: Path, what: str) -> Path:
    """A directory the pipeline writes below: it may not exist yet, but it must not be a file."""
    if path.exists() and not path.is_dir():
        raise ReleaseError(f"{what} is not a directory: name a directory")
    return path


def _cache_dir(base: Path, path: Path, data: dict) -> Path:
    if CACHE_ENV in os.environ:
        named = os.environ[CACHE_ENV]
        if not named:
            raise ReleaseError(f"{CACHE_ENV} is set but empty: name a directory or unset it")
        cache = _path(base, named)
        if cache.exists() and not cache.is_dir():
            raise ReleaseError(f"{CACHE_ENV}={named} is not a directory: name a directory or unset it")
        return cache
    return _directory(_path(base, data.get("cache_dir", "~/.cache/ac-release")), f"{path}: cache_dir")


def load_settings(path: Path | None = None) -> Settings:
    path = path or find_config()
    data = _read(path)
    base = path.parent
    # The repository root holds wheel/ and changelog/; a test config elsewhere names it explicitly.
    root = _path(base, data.get("root", "."))
    services = data["services"]
    return Settings(
        root=root,
        dist_dir=_directory(_path(base, data.get("dist_dir", "dist")), f"{path}: dist_dir"),
        cache_dir=_cache_dir(base, path, data),
        extra_ca_bundle=_path(base, data["extra_ca_bundle"]) if "extra_ca_bundle" in data else None,
        docker=data.get("docker", "auto"),
        services=ServicesSettings(
            dir=_directory(_path(base, services["dir"]), f"{path}: services.dir"),
            host=services.get("host", "127.0.0.1"),
            pypi_port=services["pypi_port"],
            sigstore_port=services["sigstore_port"],
            registry_port=services["registry_port"],
        ),
        targets={name: _target(base, name, t) for name, t in data["targets"].items()},
        default_target=data["default_target"],
    )


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
