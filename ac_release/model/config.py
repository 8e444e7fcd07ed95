"""`release.toml`: named targets (where artifacts go) and local settings. Secrets never live in it.

The file is read once: each table is validated and built into its typed object in one place (the top level here,
[services] and a target's own services in config_services.py, a target in config_targets.py, its signing in
config_signing.py), with the vocabulary of config_schema.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import read_utf8
from ac_release.model import config_schema as schema
from ac_release.model.config_access import IndexSettings, Registry, RegistryAccess, Secret
from ac_release.model.config_schema import Reading, SchemaError, is_loopback_host, is_loopback_registry
from ac_release.model.config_services import ServiceRegistry, ServicesSettings, shared_services
from ac_release.model.config_signing import Signer, SigningSettings
from ac_release.model.config_targets import DevLocations, Target, same_registry, target

CONFIG_ENV = "AC_RELEASE_CONFIG"
CACHE_ENV = "AC_RELEASE_CACHE"
_DOCKER_CLI = re.compile(r"[A-Za-z0-9_./+~-]+", re.ASCII)

__all__ = [
    "DevLocations",
    "IndexSettings",
    "Registry",
    "RegistryAccess",
    "SchemaError",
    "Secret",
    "ServiceRegistry",
    "ServicesSettings",
    "Settings",
    "Signer",
    "SigningSettings",
    "Target",
    "docker_command",
    "find_config",
    "is_loopback_host",
    "is_loopback_registry",
    "load_settings",
]


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


def _read(path: Path) -> Any:
    """The parsed file; anything unreadable or malformed is one line naming the file."""
    try:
        text = read_utf8(path)
    except OSError as exc:
        raise ReleaseError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ReleaseError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # the parser recurses once per level of arrays and inline tables
        raise ReleaseError(f"{path}: nested too deeply (arrays or inline tables in each other): flatten it") from None


def _settings(data: Any, reading: Reading) -> Settings:
    """The top level of the file, and below it every table, each validated and built as the walk reaches it."""
    top = schema.table(
        data,
        "",
        ("root", "default_target", "dist_dir", "cache_dir", "extra_ca_bundle", "docker", "services", "targets"),
        ("default_target", "services", "targets"),
    )
    root, dist_dir, cache_dir, extra_ca_bundle = (
        schema.string(top, "", name) for name in ("root", "dist_dir", "cache_dir", "extra_ca_bundle")
    )
    reading.repository = reading.path(root or ".", "root")
    docker = schema.string(top, "", "docker")
    if docker is not None and docker != "auto" and not _is_docker_cli(docker):
        raise SchemaError(
            "docker", f'expected "auto" or the path of a docker or podman CLI, got {schema.quoted(docker)}'
        )
    shared = shared_services(top["services"], "services", reading)
    tables = top["targets"]
    if not isinstance(tables, dict):
        raise SchemaError("targets", f"expected a table of [targets.<name>] tables, got {schema.kind(tables)}")
    if not tables:
        raise SchemaError("targets", "no target: add a [targets.<name>] table")
    targets = {name: target(value, name, reading, shared) for name, value in tables.items()}
    _same_issuer_on_shared_services(targets)
    _dev_apart_from_release(targets)
    default = schema.string(top, "", "default_target", required=True)
    if default not in targets:
        raise SchemaError(
            "default_target", f"{schema.quoted(default)} is not a target: choose one of {', '.join(sorted(targets))}"
        )
    services = targets[default].services
    settings = Settings(
        # The repository root holds wheel/ and changelog/; a test config elsewhere names it explicitly.
        root=reading.repository,
        dist_dir=reading.directory(dist_dir or "dist", "dist_dir"),
        cache_dir=_cache_dir(cache_dir, reading),
        extra_ca_bundle=reading.path(extra_ca_bundle, "extra_ca_bundle") if extra_ca_bundle is not None else None,
        docker=docker or "auto",
        # [services] as the default target starts them (its issuer), or as they are when it has none
        services=services if services is not None else shared,
        targets=targets,
        default_target=default,
    )
    reading.end()
    return settings


def _is_docker_cli(setting: str) -> bool:
    """A name or path whose file is `docker` or `podman` (one argv word: no options, no `sudo docker`)."""
    return _DOCKER_CLI.fullmatch(setting) is not None and Path(setting).name in ("docker", "podman")


def _dev_apart_from_release(targets: dict[str, Target]) -> None:
    """Dev builds never reach a release location: no target's dev index or dev registry is any target's release
    index or registry (compared as locations: case of scheme and host, default port, trailing slash)."""
    released = {schema.same_location(built.index.url): f"targets.{name}.index.url" for name, built in targets.items()}
    released |= {
        same_registry(registry): f"targets.{name}.registries"
        for name, built in targets.items()
        for registry in built.registries
    }
    for name, built in targets.items():
        for key, location in _dev_locations(name, built):
            if (same := released.get(_location_key(location))) is not None:
                raise SchemaError(
                    key,
                    f"{schema.quoted(location)} is also {same}: dev builds must never reach a release location; "
                    "name a dev location of its own",
                )


def _dev_locations(name: str, built: Target) -> list[tuple[str, str]]:
    """(key, location) of the target's dev index and registries; the key of a derived one is the target's."""
    if built.dev is None:
        return []
    declared = built.services is None
    index_key = f"targets.{name}.dev.index_url" if declared else f"targets.{name} (its derived dev index)"
    locations = [(index_key, built.dev.index.url)]
    for number, registry in enumerate(built.dev.registries):
        key = f"targets.{name}.dev.registries[{number}]" if declared else f"targets.{name} (its derived dev registry)"
        locations.append((key, str(registry)))
    return locations


def _location_key(location: str) -> str:
    return schema.same_location(location) if "://" in location else same_registry(location)


def _same_issuer_on_shared_services(targets: dict[str, Target]) -> None:
    """The local Sigstore of [services] starts with one issuer: every target signing with it must name that one."""
    issuers: dict[str, str] = {}
    for name, built in targets.items():
        if built.services is not None and not built.standing_services and built.signing.instance == "local":
            issuers.setdefault(built.signing.issuer, name)
    if len(issuers) > 1:
        (first, owner), (second, other) = list(issuers.items())[:2]
        raise SchemaError(
            f"targets.{other}.signing.issuer",
            f"{schema.quoted(second)} differs from targets.{owner}'s {schema.quoted(first)}, and both sign with the "
            "one local Sigstore of [services]: give one of them services of its own",
        )


def _cache_dir(configured: str | None, reading: Reading) -> Path:
    configured_dir = reading.directory(configured or "~/.cache/ac-release", "cache_dir")  # refused even if overridden
    if CACHE_ENV in os.environ:
        named = os.environ[CACHE_ENV]
        cache = reading.path(named, CACHE_ENV)
        if not named:
            reading.refuse_at_the_end(ReleaseError(f"{CACHE_ENV} is set but empty: name a directory or unset it"))
        elif cache.exists() and not cache.is_dir():
            reading.refuse_at_the_end(
                ReleaseError(f"{CACHE_ENV}={named} is not a directory: name a directory or unset it")
            )
        elif problem := reading.not_own_directory(cache):
            reading.refuse_at_the_end(
                ReleaseError(f"{CACHE_ENV}={named} is {problem}: name a directory of the pipeline's own below it")
            )
        return cache
    return configured_dir


def load_settings(path: Path | None = None) -> Settings:
    path = path or find_config()
    data = _read(path)
    try:
        return _settings(data, Reading(path))
    except SchemaError as exc:
        raise ReleaseError(f"{path}: {exc}") from None


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
