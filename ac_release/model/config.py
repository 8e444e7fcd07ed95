"""`release.toml`: named targets (where artifacts go) and local settings. Secrets never live in it."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import read_utf8
from ac_release.model.config_schema import SchemaError, check, is_loopback_host, is_loopback_registry

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
    ca_file: Path | None = None  # a CA the clients trust besides the system's (the pipeline's own TLS services)

    @property
    def upload_url(self) -> str:
        return self.url.rstrip("/") + "/"

    @property
    def simple_url(self) -> str:
        return self.url.rstrip("/") + "/simple/"


GITHUB = "https://github.com"


@dataclass(frozen=True)
class Signer:
    """Who must have signed an artifact: the certificate's identity (SAN) and OIDC issuer; for GitHub Actions'
    ambient identity also the repository and ref the certificate's GitHub extensions must name (the SAN names the
    workflow file)."""

    identity: str
    issuer: str
    repository: str | None = None
    ref: str | None = None

    @property
    def github(self) -> bool:
        return self.repository is not None


@dataclass(frozen=True)
class SigningSettings:
    """`local` signs as `identity` with tokens its own Sigstore mints. Every other instance signs with GitHub Actions'
    ambient identity, fetched per signature: `releases` and `nightlies` name the workflow of `repository` that signs
    each (`release.yml@refs/heads/main`), and a certificate of one never passes the other's gate."""

    instance: str  # "local": the pipeline's own instance; "public": public-good Sigstore; "custom": trust_config
    issuer: str
    identity: str | None = None  # the local instance's fixed identity (an email address)
    repository: str | None = None  # OWNER/REPO of the workflows that sign
    releases: str | None = None  # WORKFLOW_FILE@REF
    nightlies: str | None = None
    trust_config: Path | None = None

    @property
    def ambient(self) -> bool:
        return self.instance != "local"

    def signer(self, nightly: bool = False) -> Signer:
        if not self.ambient:
            assert self.identity is not None
            return Signer(self.identity, self.issuer)
        assert self.repository and self.releases and self.nightlies
        workflow_ref = self.nightlies if nightly else self.releases
        ref = workflow_ref.split("@", 1)[1]
        return Signer(f"{GITHUB}/{self.repository}/.github/workflows/{workflow_ref}", self.issuer, self.repository, ref)


@dataclass(frozen=True)
class RegistryAccess:
    """How a registry is reached: TLS or plain HTTP, which CA, which credentials."""

    tls_verify: bool = True  # False: plain HTTP (the local target's loopback registry, which has no TLS)
    ca_dir: Path | None = None  # a directory holding the CA certificate (ca.crt) to trust besides the system's
    username: str | None = None  # with `password`; None: the Docker/skopeo auth file of the user (`docker login`)
    password: Secret | None = None


class Registry(str):
    """A `host[:port]/repository` string that also carries how to reach it (`access`). It compares, hashes and
    formats as the string, so stages and records use it as the repository name it is."""

    access: RegistryAccess

    def __new__(cls, repository: str, access: RegistryAccess | None = None) -> Registry:
        self = super().__new__(cls, repository)
        self.access = access or RegistryAccess()
        return self

    @property
    def host(self) -> str:
        return self.split("/", 1)[0]


@dataclass(frozen=True)
class ServiceRegistry:
    port: int
    repository: str  # the path on the registry, e.g. astronomer/ap-airflow
    username: str | None = None
    password: Secret | None = None


LOCAL_REPOSITORY = "astronomer/ap-airflow"
LOCAL_INDEX_USER = "ac-release"
DEFAULT_ISSUER = "https://oidc.ac-release.local"


@dataclass(frozen=True)
class ServicesSettings:
    """Services the pipeline starts on loopback for a target, all data below `dir`. The target's index URL,
    registries, git remote, password file and trust config derive from here: they are declared nowhere else."""

    dir: Path
    host: str
    pypi_port: int
    sigstore_port: int
    registries: tuple[ServiceRegistry, ...]
    tls: bool = False  # a CA the pipeline makes; the index is https and the registries TLS
    issuer: str = DEFAULT_ISSUER  # the OIDC issuer the Sigstore service is started with (the target's)
    index_username: str = LOCAL_INDEX_USER
    index_password: Secret | None = None  # None: generated once into `password_file`
    dev_pypi_port: int | None = None  # the dev index: a second pypiserver, its own packages, the same login

    @property
    def registry_port(self) -> int:
        return self.registries[0].port

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def index_url(self) -> str:
        return self._index_url(self.pypi_port)

    @property
    def dev_index_url(self) -> str | None:
        return None if self.dev_pypi_port is None else self._index_url(self.dev_pypi_port)

    def _index_url(self, port: int) -> str:
        return f"{'https' if self.tls else 'http'}://{self._url_host}:{port}/"

    @property
    def password_file(self) -> Path:
        return self.dir / "pypi" / "password"

    @property
    def index_secret(self) -> Secret:
        return self.index_password or Secret(file=self.password_file)

    @property
    def git_remote(self) -> Path:
        """The bare repository the target pushes release tags to."""
        return self.dir / "git" / "ac-release.git"

    @property
    def trust_config(self) -> Path:
        return self.dir / "sigstore" / "trust_config.json"

    @property
    def ca_dir(self) -> Path:
        """Holds only the CA certificate, `ca.crt`: what skopeo's --cert-dir and Docker's certs.d expect."""
        return self.dir / "tls" / "ca"

    @property
    def ca_file(self) -> Path | None:
        return self.ca_dir / "ca.crt" if self.tls else None

    def registry_address(self, registry: ServiceRegistry) -> str:
        return f"{self._url_host}:{registry.port}"

    def repositories(self, suffix: str = "") -> tuple[Registry, ...]:
        """The registries' repositories; with `suffix` ("-dev") the dev repositories beside them, reached alike."""
        return tuple(
            Registry(
                f"{self.registry_address(r)}/{r.repository}{suffix}",
                RegistryAccess(
                    tls_verify=self.tls,
                    ca_dir=self.ca_dir if self.tls else None,
                    username=r.username,
                    password=r.password,
                ),
            )
            for r in self.registries
        )


DEV_SUFFIX = "-dev"  # a target with services keeps its dev images in `<repository>-dev` on the same registries


@dataclass(frozen=True)
class DevLocations:
    """Where a dev build (`2.2.4-2-dev`, a nightly) goes instead of the release's index and registries."""

    index: IndexSettings
    registries: tuple[Registry, ...]


@dataclass(frozen=True)
class Target:
    name: str
    index: IndexSettings
    signing: SigningSettings
    base_images: str  # "debootstrap" (built here from Debian's archive) or "official" (python:<py>-slim-<distro>)
    registries: tuple[Registry, ...]
    git_remote: str  # where the release tag is pushed: a remote name or URL, or a path
    services: ServicesSettings | None = None  # the services the pipeline starts and owns for this target
    # [targets.<name>.services]: standing services (staging), started once on their host with `invoke services.up
    # --target <name>`; a release only reaches them. Without: the local target's, which a release starts itself.
    standing_services: bool = False
    dev: DevLocations | None = None  # [targets.<name>.dev], or derived from the services' dev_pypi_port

    @property
    def local_services(self) -> bool:
        return self.services is not None

    def for_dev_build(self) -> Target:
        """This target with the dev index and dev registries in place of the release's: where a dev build goes."""
        if self.dev is None:
            where = "dev_pypi_port to its services" if self.services else f"a [targets.{self.name}.dev] table"
            raise ReleaseError(f"target {self.name} has no dev locations for a dev build: add {where} in release.toml")
        return dataclasses.replace(self, index=self.dev.index, registries=self.dev.registries)

    def for_repository(self, default: str, repository: str) -> Target:
        """This target as a product whose image repository is `repository` sees it: every registry repository (and
        dev repository) the target declares names `default`, AC's, as its last segment; the product's sits beside
        it on the same registry, reached alike (`HOST/astronomer/ap-airflow` -> `HOST/astronomer/astro-runtime`)."""
        if repository == default:
            return self

        def beside(registry: Registry) -> Registry:
            namespace, _, name = registry.rpartition("/")
            if not name.startswith(default):
                raise ReleaseError(
                    f"target {self.name}: registry repository {registry} does not end in {default}, the repository "
                    f"the products' repositories are placed beside; name it .../{default}"
                )
            return Registry(f"{namespace}/{repository}{name.removeprefix(default)}", registry.access)

        dev = self.dev and dataclasses.replace(self.dev, registries=tuple(map(beside, self.dev.registries)))
        return dataclasses.replace(self, registries=tuple(map(beside, self.registries)), dev=dev)

    def registry(self, repository: str) -> Registry:
        """The target's registry named `repository` (e.g. read back from a record), with how to reach it."""
        return next((r for r in self.registries if r == repository), Registry(repository))


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


def _shared_services(base: Path, path: Path, data: dict) -> ServicesSettings:
    """The top-level [services]: the local target's (one plain-HTTP registry without auth, a generated password)."""
    services = data["services"]
    return ServicesSettings(
        dir=_directory(_path(base, services["dir"]), f"{path}: services.dir"),
        host=services.get("host", "127.0.0.1"),
        pypi_port=services["pypi_port"],
        sigstore_port=services["sigstore_port"],
        registries=(ServiceRegistry(services["registry_port"], LOCAL_REPOSITORY),),
        dev_pypi_port=services.get("dev_pypi_port"),
    )


def _own_services(base: Path, path: Path, name: str, data: dict) -> ServicesSettings:
    """[targets.<name>.services]: TLS, the index token and the registries' credentials from the environment."""
    services, index = data["services"], data["index"]
    return ServicesSettings(
        dir=_directory(_path(base, services["dir"]), f"{path}: targets.{name}.services.dir"),
        host=services.get("host", "127.0.0.1"),
        pypi_port=services["pypi_port"],
        sigstore_port=services["sigstore_port"],
        registries=tuple(
            ServiceRegistry(
                r["port"],
                r["repository"],
                r.get("username"),
                Secret(env=r["password_env"]) if "password_env" in r else None,
            )
            for r in services["registries"]
        ),
        tls=services.get("tls", False),
        issuer=data["signing"]["issuer"],
        index_username=index.get("username", LOCAL_INDEX_USER),
        index_password=_secret(base, index) if {"password_env", "password_file"} & set(index) else None,
        dev_pypi_port=services.get("dev_pypi_port"),
    )


def _git_remote(base: Path, remote: str) -> str:
    return str(_path(base, remote)) if remote.startswith(".") else remote


def _target(base: Path, path: Path, name: str, data: dict, shared: ServicesSettings) -> Target:
    signing = data["signing"]
    services = None
    if "services" in data:
        services = _own_services(base, path, name, data)
    elif data.get("local_services", False):
        services = dataclasses.replace(shared, issuer=signing["issuer"])
    index = data.get("index", {})
    trust_config = signing.get("trust_config")
    index_settings = IndexSettings(
        url=index["url"] if "url" in index else services.index_url,
        username=index.get("username", services.index_username if services else ""),
        password=_secret(base, index) if {"password_env", "password_file"} & set(index) else services.index_secret,
        ca_file=services.ca_file if services else None,
    )
    target = Target(
        name=name,
        index=index_settings,
        signing=SigningSettings(
            instance=signing["instance"],
            issuer=signing["issuer"],
            identity=signing.get("identity"),
            repository=signing.get("repository"),
            releases=signing.get("releases"),
            nightlies=signing.get("nightlies"),
            trust_config=_path(base, trust_config) if trust_config else services.trust_config if services else None,
        ),
        base_images=data.get("base_images", "official"),
        registries=services.repositories() if services else tuple(Registry(r) for r in data["registries"]),
        git_remote=str(services.git_remote) if services else _git_remote(base, data["git_remote"]),
        services=services,
        standing_services="services" in data,
        dev=_dev_locations(data, services, index_settings),
    )
    if services is not None:
        _same_as_derived(path, name, data, target, base)
    return target


def _dev_locations(data: dict, services: ServicesSettings | None, index: IndexSettings) -> DevLocations | None:
    """[targets.<name>.dev] (index_url and registries; the release's credentials), or for a target with services
    their dev index (dev_pypi_port) and `<repository>-dev` on the same registries."""
    if services is not None:
        if services.dev_index_url is None:
            return None
        return DevLocations(dataclasses.replace(index, url=services.dev_index_url), services.repositories(DEV_SUFFIX))
    if "dev" not in data:
        return None
    dev = data["dev"]
    return DevLocations(dataclasses.replace(index, url=dev["index_url"]), tuple(Registry(r) for r in dev["registries"]))


def _same_as_derived(path: Path, name: str, data: dict, target: Target, base: Path) -> None:
    """A key of the local target that its [services] already determine may only repeat the derived value."""
    assert target.services is not None
    index = data.get("index", {})
    given = {
        "index.url": (index.get("url"), target.services.index_url),
        "index.password_file": (
            str(_path(base, index["password_file"])) if "password_file" in index else None,
            str(target.services.password_file),
        ),
        "registries": (tuple(data["registries"]) if "registries" in data else None, target.registries),
        "git_remote": (
            _git_remote(base, data["git_remote"]) if "git_remote" in data else None,
            str(target.services.git_remote),
        ),
    }
    for key, (value, derived) in given.items():
        if value is not None and value != derived:
            shown = ", ".join(derived) if isinstance(derived, tuple) else derived
            raise ReleaseError(
                f"{path}: targets.{name}.{key}: derived from [services] ({shown}); remove it from release.toml"
            )


def _read(path: Path) -> dict:
    """The parsed file; anything unreadable or malformed is one line naming the file."""
    try:
        text = read_utf8(path)
    except OSError as exc:
        raise ReleaseError(f"cannot read {path}: {exc.strerror or exc}") from None
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
    shared = _shared_services(base, path, data)
    targets = {name: _target(base, path, name, t, shared) for name, t in data["targets"].items()}
    default = targets[data["default_target"]]
    return Settings(
        root=root,
        dist_dir=_directory(_path(base, data.get("dist_dir", "dist")), f"{path}: dist_dir"),
        cache_dir=_cache_dir(base, path, data),
        extra_ca_bundle=_path(base, data["extra_ca_bundle"]) if "extra_ca_bundle" in data else None,
        docker=data.get("docker", "auto"),
        # [services] as the default target starts them (its issuer), or as they are when it has none
        services=default.services if default.services is not None else shared,
        targets=targets,
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
