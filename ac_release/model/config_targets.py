"""A named target, `[targets.<name>]` (where artifacts go: index, registries, git remote, signing), validated and
built in one place. A target with services (`local_services = true`: [services]; or its own) has its addresses
derived from them; a key that repeats one must name the same value."""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from ac_release.core.errors import ReleaseError
from ac_release.model import config_schema as schema
from ac_release.model.config_access import IndexSettings, Registry, RegistryAccess, Secret
from ac_release.model.config_schema import Reading, SchemaError
from ac_release.model.config_services import REPOSITORY_PATH, ServicesSettings, own_services
from ac_release.model.config_signing import SigningSettings, signing
from ac_release.model.flavours import Platform, platform_list

BASE_IMAGES = ("debootstrap", "official")
REGISTRY_FORM = '"host[:port]/repository" (e.g. quay.io/astronomer/ap-airflow)'
DEV_SUFFIX = "-dev"  # a target with services keeps its dev images in `<repository>-dev` on the same registries

TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)
_REMOTE_HELPER = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*::")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
# Docker's reference grammar, with the registry host required and no tag or digest: the pipeline adds the tags.
_REGISTRY = re.compile(
    rf"(?P<host>\[[0-9A-Fa-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)(?::(?P<port>[0-9]{{1,5}}))?/{REPOSITORY_PATH.pattern}",
    re.ASCII,
)
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.ASCII)
# git's scp-like `[user@]host:path`: a colon before any slash
_SCP_LIKE = re.compile(r"(?:(?P<user>[^@/]*)@)?(?P<host>\[[^\]/]*\]|[^:/]+):(?P<path>.*)")
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


def same_registry(repository: str) -> str:
    """`host[:port]/repository` as compared with another: the host in lower case, no default port (443), Docker Hub
    by one name."""
    host, _, path = repository.partition("/")
    host = host.lower().removesuffix(":443")
    return f"{DOCKER_HUB[0] if host in DOCKER_HUB else host}/{path}"


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
    # `platforms = ["linux/amd64"]`: the target builds only these of a line's platforms; None: all the line's
    platforms: tuple[Platform, ...] | None = None

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


def target(value: Any, name: str, reading: Reading, shared: ServicesSettings) -> Target:
    """`[targets.<name>]`; `shared` are the [services] a target with `local_services = true` runs."""
    key = f"targets.{name}"
    if not TARGET_NAME.fullmatch(name):
        raise SchemaError(key, "a target name is letters, digits, '.', '_' and '-', starting with a letter or digit")
    runs_services = isinstance(value, dict) and ("services" in value or value.get("local_services") is True)
    table = schema.table(
        value,
        key,
        (
            "local_services",
            "services",
            "base_images",
            "registries",
            "git_remote",
            "index",
            "signing",
            "dev",
            "platforms",
        ),
        ("signing",) if runs_services else ("index", "signing", "registries", "git_remote"),
    )
    own = "services" in table
    index_table = table.get("index")  # every table is read once: validated and built where it is read
    services = shared if schema.boolean(table, key, "local_services") else None
    if own:
        if "local_services" in table:
            raise SchemaError(f"{key}.local_services", f"{key}.services are the target's own services: remove it")
        services = own_services(table["services"], f"{key}.services", reading)
        for derived in ("registries", "git_remote"):
            if derived in table:
                raise SchemaError(f"{key}.{derived}", f"derived from {key}.services: remove it")
        if isinstance(index_table, dict) and "url" in index_table:
            raise SchemaError(f"{key}.index.url", f"derived from {key}.services: remove it")
    dev_url, dev_registries = None, ()
    if "dev" in table:
        if runs_services:
            raise SchemaError(
                f"{key}.dev", "derived from the target's services (dev_pypi_port, `<repository>-dev`): remove it"
            )
        dev_url, dev_registries = _dev(table["dev"], f"{key}.dev")
    base_images = schema.choice(table, key, "base_images", BASE_IMAGES, default="official")
    platforms = _platforms(table, key)
    registries = _registries(table["registries"], f"{key}.registries") if "registries" in table else None
    git_remote = _git_remote(table, key, reading, services) if "git_remote" in table else None
    signs = signing(table["signing"], f"{key}.signing", reading, services, own)
    if services is not None:
        services = dataclasses.replace(services, issuer=signs.issuer)
    if index_table is not None:
        index, password = _index(index_table, f"{key}.index", reading, services)
    elif own:
        raise SchemaError(f"{key}.index", 'missing: a token for the target\'s index, e.g. password_env = "..."')
    else:  # a target with [services] that names nothing of its index
        index, password = _derived_index(services), None
    if services is None:
        assert registries is not None and git_remote is not None
        dev = None if dev_url is None else DevLocations(dataclasses.replace(index, url=dev_url), dev_registries)
        return Target(name, index, signs, base_images, registries, git_remote, dev=dev, platforms=platforms)
    if own:
        services = dataclasses.replace(services, index_username=index.username, index_password=password)
    _same_as_derived(reading, f"{key}.registries", registries, services.repositories())
    _same_as_derived(reading, f"{key}.git_remote", git_remote, str(services.git_remote))
    dev = None
    if services.dev_index_url is not None:
        dev_index = dataclasses.replace(index, url=services.dev_index_url)
        dev = DevLocations(dev_index, services.repositories(DEV_SUFFIX))
    return Target(
        name,
        index,
        signs,
        base_images,
        services.repositories(),
        str(services.git_remote),
        services=services,
        standing_services=own,
        dev=dev,
        platforms=platforms,
    )


def _platforms(table: dict, key: str) -> tuple[Platform, ...] | None:
    """`platforms = ["linux/amd64"]`: the only platforms of a line the target builds (all the line's without)."""
    if "platforms" not in table:
        return None
    platforms = platform_list(table["platforms"])
    if isinstance(platforms, str):
        raise SchemaError(f"{key}.platforms", platforms)
    return platforms


def _same_as_derived(reading: Reading, key: str, value: str | tuple | None, derived: str | tuple) -> None:
    """A key that the target's services already determine may only repeat the derived value."""
    if value is not None and value != derived:
        shown = ", ".join(derived) if isinstance(derived, tuple) else derived
        reading.refuse_at_the_end(SchemaError(key, f"derived from [services] ({shown}); remove it from release.toml"))


def _derived_index(services: ServicesSettings) -> IndexSettings:
    return IndexSettings(services.index_url, services.index_username, services.index_secret, services.ca_file)


def _index(
    value: Any, key: str, reading: Reading, services: ServicesSettings | None
) -> tuple[IndexSettings, Secret | None]:
    """A target's index, and the password it names (None: derived). A target with services has its URL, user and
    password file derived from them."""
    required = () if services else ("url", "username")
    table = schema.table(value, key, ("url", "username", "password_env", "password_file"), required)
    url = None
    if "url" in table:
        url = _index_url(schema.string(table, key, "url", required=True), key, services is not None)
    username = schema.username(table, key)
    if "password_env" in table and "password_file" in table:
        raise SchemaError(key, "set one of password_env and password_file, not both")
    password = None
    if "password_env" in table:
        password = Secret(env=schema.env_name(table, key, "password_env"))
    elif "password_file" in table:
        password = Secret(file=reading.path(schema.string(table, key, "password_file"), f"{key}.password_file"))
    elif services is None:
        raise SchemaError(key, "missing password_env or password_file")
    if services is None:
        return IndexSettings(url, username, password), password
    _same_as_derived(reading, f"{key}.url", url, services.index_url)
    _same_as_derived(
        reading,
        f"{key}.password_file",
        str(password.file) if password and password.file else None,
        str(services.password_file),
    )
    derived = _derived_index(services)
    index = IndexSettings(
        url or derived.url, username or derived.username, password or derived.password, derived.ca_file
    )
    return index, password


def _index_url(url: str, key: str, local_services: bool, name: str = "url") -> str:
    key = f"{key}.{name}"
    parts = schema.url(url, key, ": use password_env or password_file")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SchemaError(key, f"expected an https:// URL, got {schema.quoted(url)}")
    if parts.query or parts.fragment:
        raise SchemaError(key, f"the index URL takes no query or fragment, got {schema.quoted(url)}")
    if parts.scheme == "http":
        if not schema.is_loopback_host(parts.hostname):
            raise SchemaError(key, f"a remote index must use https, got {schema.quoted(url)}")
        if not local_services:
            raise SchemaError(
                key, "plain http is only for the index of the pipeline's own services (local_services = true)"
            )
    return url


def _dev(value: Any, key: str) -> tuple[str, tuple[Registry, ...]]:
    """[targets.<name>.dev]: where dev builds go (their index URL and registries), with the release's credentials."""
    table = schema.table(value, key, ("index_url", "registries"), ("index_url", "registries"))
    url = _index_url(schema.string(table, key, "index_url", required=True), key, False, name="index_url")
    return url, _registries(table["registries"], f"{key}.registries")


def _registries(value: Any, key: str) -> tuple[Registry, ...]:
    """`["host[:port]/repository", ...]`; an entry may be a table naming the hosts besides its own whose Bearer
    realm gets its credentials: `{repository = "docker.io/a/b", auth_hosts = ["auth.docker.io"]}`."""
    expected = 'expected a list of "host[:port]/repository" strings'
    if not isinstance(value, list):
        raise SchemaError(key, f"{expected}, got {schema.kind(value)}")
    if not value:
        raise SchemaError(key, f"{expected}, got an empty list")
    registries: list[Registry] = []
    for number, item in enumerate(value):
        item_key = f"{key}[{number}]"
        auth_hosts: tuple[str, ...] = ()
        if isinstance(item, dict):
            entry = schema.table(item, item_key, ("repository", "auth_hosts"), ("repository",))
            item, auth_hosts = entry["repository"], _auth_hosts(entry, item_key)
            item_key = f"{item_key}.repository"
        if isinstance(item, str) and "@" in item.split("/", 1)[0]:
            raise SchemaError(item_key, "credentials do not belong in release.toml: use `docker login`")
        repository = schema.plain(item, item_key)
        match = _REGISTRY.fullmatch(repository)
        host_named = match and ("." in match["host"] or match["port"] or match["host"][0] == "[")
        valid_host = match and (match["host"][0] != "[" or schema.is_ip(match["host"][1:-1]))
        if not (match and (host_named or match["host"] == "localhost") and valid_host):
            raise SchemaError(item_key, f"expected {REGISTRY_FORM}, got {schema.quoted(repository)}")
        if match["port"] and not 1 <= int(match["port"]) <= 65535:
            raise SchemaError(item_key, f"expected {REGISTRY_FORM}, got {schema.quoted(repository)}")
        if repository in registries:
            raise SchemaError(item_key, f"{schema.quoted(repository)} is listed twice")
        registries.append(Registry(repository, RegistryAccess(auth_hosts=auth_hosts)))
    return tuple(registries)


def _auth_hosts(entry: dict, key: str) -> tuple[str, ...]:
    key = f"{key}.auth_hosts"
    hosts = entry.get("auth_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(host, str) and _HOST_NAME.fullmatch(host) for host in hosts):
        raise SchemaError(key, 'expected a list of host names, e.g. ["auth.docker.io"]')
    return tuple(host.lower() for host in hosts)


def _git_remote(table: dict, key: str, reading: Reading, services: ServicesSettings | None) -> str:
    """A remote name, a path, an scp-like `user@host:path` or an https/ssh URL (file:// only into the target's
    services); never a remote helper, nor a host, user or path that ssh or git could read as an option. A path
    starting with `.` is relative to release.toml."""
    remote = schema.string(table, key, "git_remote", required=True)
    key = f"{key}.git_remote"
    if _REMOTE_HELPER.match(remote):
        raise SchemaError(
            key, "remote helpers (<transport>::<address>) are not allowed: name a remote, a path or an https/ssh URL"
        )
    if "://" in remote:
        parts = urllib.parse.urlsplit(remote)
        scheme = parts.scheme.lower()
        # ssh://git@host/... names a user, not a secret; a password or any https userinfo (a token) is refused.
        if "@" in parts.netloc and (scheme in ("http", "https") or ":" in parts.netloc.rpartition("@")[0]):
            raise SchemaError(key, "credentials do not belong in a URL: use a credential helper or an ssh key")
        if any(character.isspace() for character in remote):
            raise SchemaError(key, f"a remote URL has no whitespace, got {schema.quoted(remote)}")
        schema.checked_host_and_port(parts, key, remote)
        loopback = schema.is_loopback_host(parts.hostname or "")
        if scheme not in ("https", "ssh", "file") and not (scheme == "http" and loopback):
            raise SchemaError(key, f"a remote URL must use https or ssh, got {schema.quoted(remote)}")
        _no_option_like_part(parts.netloc.rpartition("@")[0], parts.netloc.rpartition("@")[2], parts.path, key)
        if scheme == "file":
            _file_remote_in_services(parts.path, key, reading, services)
    elif re.match(r"[^/@]*:[^/@]*@", remote):
        raise SchemaError(key, "credentials do not belong in a URL: use a credential helper or an ssh key")
    elif scp := _SCP_LIKE.fullmatch(remote):
        _no_option_like_part(scp["user"] or "", scp["host"], scp["path"], key)
    return str(reading.path(remote, key)) if remote.startswith(".") else remote


def _no_option_like_part(user: str, host: str, path: str, key: str) -> None:
    """ssh takes a user or host starting with '-' as an option (`-oProxyCommand=...`); git a path so too."""
    for part, value in (("user", user), ("host", host), ("path", path.lstrip("/"))):
        if value.startswith("-"):
            raise SchemaError(
                key, f"the remote's {part} starts with '-' (ssh or git would read it as an option): name a real {part}"
            )


def _file_remote_in_services(path: str, key: str, reading: Reading, services: ServicesSettings | None) -> None:
    """A file:// remote is the target's own services' repository, never some other directory of this machine."""
    resolved = reading.path(urllib.parse.unquote(path) or "/", key)
    if services is None or not resolved.is_relative_to(services.dir):
        raise SchemaError(
            key,
            "a file:// remote must be inside the target's services directory: name a remote or an https/ssh URL",
        )
