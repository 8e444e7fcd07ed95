"""The services a target runs on loopback: `[services]` (the local target's) and `[targets.<name>.services]` (a
target's own, e.g. staging's), validated and built in one place. `ServicesSettings` owns the layout of the services'
directory: every path below it is named here and nowhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ac_release.model import config_schema as schema
from ac_release.model.config_access import Registry, RegistryAccess, Secret
from ac_release.model.config_schema import Reading, SchemaError

LOCAL_REPOSITORY = "astronomer/ap-airflow"
LOCAL_INDEX_USER = "ac-release"
DEFAULT_ISSUER = "https://oidc.ac-release.local"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"  # a path component of Docker's reference grammar
REPOSITORY_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)


@dataclass(frozen=True)
class ServiceRegistry:
    port: int
    repository: str  # the path on the registry, e.g. astronomer/ap-airflow
    username: str | None = None
    password: Secret | None = None


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

    # -- addresses --------------------------------------------------------------------------------------------------

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
    def index_secret(self) -> Secret:
        return self.index_password or Secret(file=self.password_file)

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

    # -- the layout of `dir` ----------------------------------------------------------------------------------------

    @property
    def pypi_dir(self) -> Path:
        """The index: its packages, its login and the generated password."""
        return self.dir / "pypi"

    @property
    def dev_pypi_dir(self) -> Path:
        """The dev index's packages (dev builds, nightlies); it shares the release index's login."""
        return self.dir / "pypi-dev"

    def packages(self, dev: bool = False) -> Path:
        """The directory an index serves its packages from."""
        return (self.dev_pypi_dir if dev else self.pypi_dir) / "packages"

    @property
    def index_htpasswd(self) -> Path:
        """The index's login (a bcrypt hash), which the dev index shares."""
        return self.pypi_dir / "htpasswd"

    @property
    def password_file(self) -> Path:
        return self.pypi_dir / "password"

    @property
    def sigstore_dir(self) -> Path:
        return self.dir / "sigstore"

    @property
    def sigstore_state(self) -> Path:
        """The Sigstore instance's keys and logs: kept, so that older bundles keep verifying."""
        return self.sigstore_dir / "state"

    @property
    def trust_config(self) -> Path:
        """The Sigstore instance's ClientTrustConfig, which its clients read (`--trust-config`)."""
        return self.sigstore_dir / "trust_config.json"

    def registry_dir(self, number: int) -> Path:
        """The directory of the registry `number` (from 0): its config, htpasswd and data."""
        return self.dir / ("registry" if number == 0 else f"registry-{number + 1}")

    @property
    def registry_dirs(self) -> list[Path]:
        return [self.registry_dir(n) for n in range(len(self.registries))]

    @property
    def git_remote(self) -> Path:
        """The bare repository the target pushes release tags to."""
        return self.dir / "git" / "ac-release.git"

    @property
    def tls_dir(self) -> Path:
        """The services' server certificate and key, and the CA that signs them."""
        return self.dir / "tls"

    @property
    def server_certificate(self) -> Path:
        return self.tls_dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.tls_dir / "server.key"

    @property
    def ca_dir(self) -> Path:
        """Holds only the CA certificate, `ca.crt`: what skopeo's --cert-dir and Docker's certs.d expect."""
        return self.tls_dir / "ca"

    @property
    def ca_certificate(self) -> Path:
        return self.ca_dir / "ca.crt"

    @property
    def ca_file(self) -> Path | None:
        """The CA the services' clients trust besides the system's: with TLS only."""
        return self.ca_certificate if self.tls else None

    @property
    def run_dir(self) -> Path:
        """The running services' pid files and logs, and the certs.d entries written for dockerd."""
        return self.dir / "run"


def shared_services(value: Any, key: str, reading: Reading) -> ServicesSettings:
    """The top-level [services]: the local target's (one plain-HTTP registry without auth, a generated password)."""
    services = schema.table(
        value,
        key,
        ("dir", "host", "pypi_port", "dev_pypi_port", "sigstore_port", "registry_port"),
        ("dir", "pypi_port", "sigstore_port", "registry_port"),
    )
    directory, host, pypi_port, sigstore_port, dev_pypi_port = _basics(services, key, reading)
    registry_port = reading.own_port(services, key, "registry_port")
    return ServicesSettings(
        dir=reading.directory(directory, f"{key}.dir"),
        host=host,
        pypi_port=pypi_port,
        sigstore_port=sigstore_port,
        registries=(ServiceRegistry(registry_port, LOCAL_REPOSITORY),),
        dev_pypi_port=dev_pypi_port,
    )


def own_services(value: Any, key: str, reading: Reading) -> ServicesSettings:
    """A target's own [targets.<name>.services]: TLS with a CA the pipeline makes, registries with credentials from
    the environment. The issuer and the index login are the target's: it sets them from its signing and index."""
    services = schema.table(
        value,
        key,
        ("dir", "host", "tls", "pypi_port", "dev_pypi_port", "sigstore_port", "registries"),
        ("dir", "pypi_port", "sigstore_port", "registries"),
    )
    directory, host, pypi_port, sigstore_port, dev_pypi_port = _basics(services, key, reading)
    tls = schema.boolean(services, key, "tls")
    registries = _registries(services["registries"], key, tls, reading)
    return ServicesSettings(
        dir=reading.directory(directory, f"{key}.dir"),
        host=host,
        pypi_port=pypi_port,
        sigstore_port=sigstore_port,
        registries=registries,
        tls=tls,
        dev_pypi_port=dev_pypi_port,
    )


def _registries(value: Any, key: str, tls: bool, reading: Reading) -> tuple[ServiceRegistry, ...]:
    expected = "expected a list of {port, repository, username, password_env} tables"
    if not isinstance(value, list) or not value:
        got = "an empty list" if value == [] else schema.kind(value)
        raise SchemaError(f"{key}.registries", f"{expected}, got {got}")
    registries = []
    for number, item in enumerate(value):
        item_key = f"{key}.registries[{number}]"
        entry = schema.table(item, item_key, ("port", "repository", "username", "password_env"), ("port", "repository"))
        port = reading.own_port(entry, item_key, "port")
        repository = schema.string(entry, item_key, "repository", required=True)
        if not REPOSITORY_PATH.fullmatch(repository):
            raise SchemaError(
                f"{item_key}.repository", f"expected a path like astronomer/ap-airflow, got {schema.quoted(repository)}"
            )
        if ("username" in entry) != ("password_env" in entry):
            raise SchemaError(item_key, "set both username and password_env (credentials), or neither")
        username = schema.username(entry, item_key)
        password_env = schema.env_name(entry, item_key, "password_env")
        if username is not None and not tls:
            raise SchemaError(
                f"{item_key}.username", "a registry takes credentials only over TLS: set tls = true in " + key
            )
        password = Secret(env=password_env) if password_env is not None else None
        registries.append(ServiceRegistry(port, repository, username, password))
    return tuple(registries)


def _basics(services: dict, key: str, reading: Reading) -> tuple[str, str, int, int, int | None]:
    """What every set of services names: its directory, host and the ports of its index and Sigstore."""
    directory = schema.string(services, key, "dir", required=True)
    host = schema.string(services, key, "host")
    if host is not None and not schema.is_loopback_host(host):
        raise SchemaError(
            f"{key}.host",
            f"the local services listen on loopback only (127.0.0.0/8, ::1 or localhost), got {schema.quoted(host)}",
        )
    pypi_port = reading.own_port(services, key, "pypi_port")
    sigstore_port = reading.own_port(services, key, "sigstore_port")
    dev_pypi_port = None
    if "dev_pypi_port" in services:  # the dev index (dev builds, nightlies): a second pypiserver
        dev_pypi_port = reading.own_port(services, key, "dev_pypi_port")
    return directory, host or "127.0.0.1", pypi_port, sigstore_port, dev_pypi_port
