"""The schema of `release.toml`: every key, its type and its allowed values, checked before any value is used.

A refusal names the dotted key (`targets.local.registries[0]`) and what is wrong, and `config.load_settings` puts
the file in front: one line. Unknown keys are refused too, so a typo never silently means the default. No value that
reaches an argv (registries, git remote, docker CLI, identity, user name) may start with `-`, and no URL carries
credentials: a refusal that would have to quote such a URL does not quote it.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Any

MISSING = "missing (compare with the repository's release.toml)"
SIGNING_INSTANCES = ("local", "public", "custom")
BASE_IMAGES = ("debootstrap", "official")
REGISTRY_FORM = '"host[:port]/repository" (e.g. quay.io/astronomer/ap-airflow)'

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_USERNAME = re.compile(r"[^\s:\x00-\x1f\x7f]+")
_EMAIL = re.compile(r"[^@\s/:]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", re.ASCII)
_DOCKER_CLI = re.compile(r"[A-Za-z0-9_./+~-]+", re.ASCII)
_REMOTE_HELPER = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*::")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# Docker's reference grammar, with the registry host required and no tag or digest: the pipeline adds the tags.
_REGISTRY = re.compile(
    rf"(?P<host>\[[0-9A-Fa-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)(?::(?P<port>[0-9]{{1,5}}))?/{_COMPONENT}(?:/{_COMPONENT})*",
    re.ASCII,
)


def _q(value: str) -> str:
    """A value quoted in a refusal, with anything that may be a secret (URL userinfo, a query) masked."""
    value = re.sub(r"//[^/@]*@", "//***@", value)
    value = re.sub(r"\?.*", "?***", value)
    return repr(value)


class SchemaError(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def is_loopback_host(host: str) -> bool:
    """`localhost`, an IPv4 address in 127.0.0.0/8 or `::1`: compared exactly, never by prefix."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_registry(repository: str) -> bool:
    """Whether `host[:port]/repository` names a registry on this machine (`127.0.0.1:5000/a`, `[::1]/a`)."""
    host = repository.split("/", 1)[0]
    if host.startswith("["):
        inner, _, rest = host[1:].partition("]")
        return (rest == "" or re.fullmatch(r":[0-9]+", rest) is not None) and is_loopback_host(inner)
    name, _, port = host.partition(":")
    return (port == "" or port.isdigit()) and is_loopback_host(name)


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "a list", dict: "a table"}
    return names.get(type(value), f"a {type(value).__name__.replace('datetime', 'date-time')}")


def _key(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _table(value: Any, key: str, known: tuple[str, ...], required: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise SchemaError(key or "(top level)", f"expected a table, got {_kind(value)}")
    for name in value:
        if name not in known:
            raise SchemaError(_key(key, name), f"unknown key (known keys: {', '.join(sorted(known))})")
    for name in required:
        if name not in value:
            raise SchemaError(_key(key, name), MISSING)
    return value


def _string(table: dict, key: str, name: str, required: bool = False) -> str | None:
    """A non-empty string without control characters that cannot be read as an option."""
    key = _key(key, name)
    if name not in table:
        if required:
            raise SchemaError(key, MISSING)
        return None
    return _plain(table[name], key)


def _plain(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise SchemaError(key, f"expected a string, got {_kind(value)}")
    if not value:
        raise SchemaError(key, "expected a non-empty string")
    if _CONTROL.search(value):
        raise SchemaError(key, "control characters (newline, NUL, ...) are not allowed")
    if value.startswith("-"):
        raise SchemaError(key, f"must not start with '-' (it would be read as an option), got {_q(value)}")
    return value


def _choice(table: dict, key: str, name: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = _string(table, key, name, required=default is None) or default
    if value not in choices:
        expected = ", ".join(repr(c) for c in choices)
        raise SchemaError(_key(key, name), f"expected one of {expected}, got {_q(value)}")
    return value


def _boolean(table: dict, key: str, name: str) -> bool:
    value = table.get(name, False)
    if not isinstance(value, bool):
        raise SchemaError(_key(key, name), f"expected a boolean, got {_kind(value)}")
    return value


def _port(table: dict, key: str, name: str) -> int:
    value = table[name]
    if type(value) is not int:
        raise SchemaError(_key(key, name), f"expected an integer, got {_kind(value)}")
    if not 1 <= value <= 65535:
        raise SchemaError(_key(key, name), f"expected a port from 1 to 65535, got {value}")
    return value


def _url(value: str, key: str, credentials_hint: str) -> urllib.parse.SplitResult:
    """A URL split into its parts; userinfo (`user:password@`) is refused without quoting the URL."""
    parts = urllib.parse.urlsplit(value)
    if "@" in parts.netloc:
        raise SchemaError(key, f"credentials do not belong in a URL{credentials_hint}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
    except ValueError:
        raise SchemaError(key, f"invalid port in {_q(value)}") from None
    return parts


def check(data: Any) -> None:
    """Raise SchemaError for the first key of `data` (the parsed TOML) that is not what the pipeline expects."""
    top = _table(
        data,
        "",
        ("root", "default_target", "dist_dir", "cache_dir", "extra_ca_bundle", "docker", "services", "targets"),
        ("default_target", "services", "targets"),
    )
    for name in ("root", "dist_dir", "cache_dir", "extra_ca_bundle"):
        _string(top, "", name)
    docker = _string(top, "", "docker")
    if docker is not None and docker != "auto" and not _DOCKER_CLI.fullmatch(docker):
        raise SchemaError("docker", f'expected "auto" or the path of a docker CLI, got {_q(docker)}')
    ports: dict[int, str] = {}
    _services(top["services"], "services", ports)
    targets = top["targets"]
    if not isinstance(targets, dict):
        raise SchemaError("targets", f"expected a table of [targets.<name>] tables, got {_kind(targets)}")
    if not targets:
        raise SchemaError("targets", "no target: add a [targets.<name>] table")
    for name, target in targets.items():
        if not _TARGET_NAME.fullmatch(name):
            raise SchemaError(
                f"targets.{name}",
                "a target name is letters, digits, '.', '_' and '-', starting with a letter or digit",
            )
        _target(target, f"targets.{name}", ports)
    _same_issuer_on_shared_services(targets)
    default = _string(top, "", "default_target", required=True)
    if default not in targets:
        raise SchemaError(
            "default_target", f"{_q(default)} is not a target: choose one of {', '.join(sorted(targets))}"
        )


def _services(value: Any, key: str, ports: dict[int, str]) -> None:
    """The top-level [services] (the local target's: one plain-HTTP registry without auth)."""
    services = _table(
        value,
        key,
        ("dir", "host", "pypi_port", "dev_pypi_port", "sigstore_port", "registry_port"),
        ("dir", "pypi_port", "sigstore_port", "registry_port"),
    )
    _service_basics(services, key, ports)
    _own_port(services, key, "registry_port", ports)


def _target_services(value: Any, key: str, ports: dict[int, str]) -> None:
    """A target's own [targets.<name>.services]: TLS with a CA the pipeline makes, registries with credentials."""
    services = _table(
        value,
        key,
        ("dir", "host", "tls", "pypi_port", "dev_pypi_port", "sigstore_port", "registries"),
        ("dir", "pypi_port", "sigstore_port", "registries"),
    )
    _service_basics(services, key, ports)
    tls = _boolean(services, key, "tls")
    registries = services["registries"]
    expected = "expected a list of {port, repository, username, password_env} tables"
    if not isinstance(registries, list) or not registries:
        got = "an empty list" if registries == [] else _kind(registries)
        raise SchemaError(f"{key}.registries", f"{expected}, got {got}")
    for number, item in enumerate(registries):
        item_key = f"{key}.registries[{number}]"
        entry = _table(item, item_key, ("port", "repository", "username", "password_env"), ("port", "repository"))
        _own_port(entry, item_key, "port", ports)
        repository = _string(entry, item_key, "repository", required=True)
        if not re.fullmatch(rf"{_COMPONENT}(?:/{_COMPONENT})*", repository, re.ASCII):
            raise SchemaError(
                f"{item_key}.repository", f"expected a path like astronomer/ap-airflow, got {_q(repository)}"
            )
        if ("username" in entry) != ("password_env" in entry):
            raise SchemaError(item_key, "set both username and password_env (credentials), or neither")
        if "username" in entry:
            _username(_string(entry, item_key, "username"), f"{item_key}.username")
            _env_name(_string(entry, item_key, "password_env"), f"{item_key}.password_env")
            if not tls:
                raise SchemaError(
                    f"{item_key}.username", "a registry takes credentials only over TLS: set tls = true in " + key
                )


def _service_basics(services: dict, key: str, ports: dict[int, str]) -> None:
    _string(services, key, "dir", required=True)
    host = _string(services, key, "host")
    if host is not None and not is_loopback_host(host):
        raise SchemaError(
            f"{key}.host",
            f"the local services listen on loopback only (127.0.0.0/8, ::1 or localhost), got {_q(host)}",
        )
    for name in ("pypi_port", "sigstore_port"):
        _own_port(services, key, name, ports)
    if "dev_pypi_port" in services:  # the dev index (dev builds, nightlies): a second pypiserver
        _own_port(services, key, "dev_pypi_port", ports)


def _own_port(table: dict, key: str, name: str, ports: dict[int, str]) -> None:
    """A port no other service of any target listens on."""
    if name not in table:
        raise SchemaError(_key(key, name), MISSING)
    port = _port(table, key, name)
    if port in ports:
        raise SchemaError(f"{key}.{name}", f"{port} is already {ports[port]}: give each service its own port")
    ports[port] = f"{key}.{name}"


def _same_issuer_on_shared_services(targets: dict) -> None:
    """The local Sigstore of [services] starts with one issuer: every target signing with it must name that one."""
    issuers: dict[str, str] = {}
    for name, target in targets.items():
        if target.get("local_services") and target["signing"].get("instance") == "local":
            issuers.setdefault(target["signing"]["issuer"], name)
    if len(issuers) > 1:
        (first, owner), (second, other) = list(issuers.items())[:2]
        raise SchemaError(
            f"targets.{other}.signing.issuer",
            f"{_q(second)} differs from targets.{owner}'s {_q(first)}, and both sign with the one local Sigstore "
            "of [services]: give one of them services of its own",
        )


def _target(value: Any, key: str, ports: dict[int, str]) -> None:
    runs_services = isinstance(value, dict) and ("services" in value or value.get("local_services") is True)
    target = _table(
        value,
        key,
        ("local_services", "services", "base_images", "registries", "git_remote", "index", "signing", "dev"),
        ("signing",) if runs_services else ("index", "signing", "registries", "git_remote"),
    )
    own_services = "services" in target
    local_services = _boolean(target, key, "local_services")
    if own_services:
        if "local_services" in target:
            raise SchemaError(f"{key}.local_services", f"{key}.services are the target's own services: remove it")
        _target_services(target["services"], f"{key}.services", ports)
        for name in ("registries", "git_remote"):
            if name in target:
                raise SchemaError(f"{key}.{name}", f"derived from {key}.services: remove it")
        if "url" in target.get("index", {}):
            raise SchemaError(f"{key}.index.url", f"derived from {key}.services: remove it")
    if "dev" in target:
        if runs_services:
            raise SchemaError(
                f"{key}.dev", "derived from the target's services (dev_pypi_port, `<repository>-dev`): remove it"
            )
        _dev(target["dev"], f"{key}.dev")
    _choice(target, key, "base_images", BASE_IMAGES, default="official")
    if "registries" in target:
        _registries(target["registries"], f"{key}.registries")
    if "git_remote" in target:
        _git_remote(_string(target, key, "git_remote", required=True), f"{key}.git_remote")
    _signing(target["signing"], f"{key}.signing", local_services, own_services)
    if "index" in target:
        _index(target["index"], f"{key}.index", runs_services)
    elif own_services:
        raise SchemaError(f"{key}.index", 'missing: a token for the target\'s index, e.g. password_env = "..."')


def _dev(value: Any, key: str) -> None:
    """[targets.<name>.dev]: where dev builds go, with the release's credentials."""
    dev = _table(value, key, ("index_url", "registries"), ("index_url", "registries"))
    _index_url(_string(dev, key, "index_url", required=True), key, False, name="index_url")
    _registries(dev["registries"], f"{key}.registries")


def _registries(value: Any, key: str) -> None:
    expected = 'expected a list of "host[:port]/repository" strings'
    if not isinstance(value, list):
        raise SchemaError(key, f"{expected}, got {_kind(value)}")
    if not value:
        raise SchemaError(key, f"{expected}, got an empty list")
    for number, item in enumerate(value):
        item_key = f"{key}[{number}]"
        if isinstance(item, str) and "@" in item.split("/", 1)[0]:
            raise SchemaError(item_key, "credentials do not belong in release.toml: use `docker login`")
        repository = _plain(item, item_key)
        match = _REGISTRY.fullmatch(repository)
        host_named = match and ("." in match["host"] or match["port"] or match["host"][0] == "[")
        valid_host = match and (match["host"][0] != "[" or _ip(match["host"][1:-1]))
        if not (match and (host_named or match["host"] == "localhost") and valid_host):
            raise SchemaError(item_key, f"expected {REGISTRY_FORM}, got {_q(repository)}")
        if match["port"] and not 1 <= int(match["port"]) <= 65535:
            raise SchemaError(item_key, f"expected {REGISTRY_FORM}, got {_q(repository)}")
        if repository in value[:number]:
            raise SchemaError(item_key, f"{_q(repository)} is listed twice")


def _ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _git_remote(remote: str, key: str) -> None:
    """A remote name, a path, an scp-like `user@host:path` or an https/ssh/file URL; never a remote helper."""
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
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
        except ValueError:
            raise SchemaError(key, f"invalid port in {_q(remote)}") from None
        loopback = is_loopback_host(parts.hostname or "")
        if scheme not in ("https", "ssh", "file") and not (scheme == "http" and loopback):
            raise SchemaError(key, f"a remote URL must use https or ssh, got {_q(remote)}")
    elif re.match(r"[^/@]*:[^/@]*@", remote):
        raise SchemaError(key, "credentials do not belong in a URL: use a credential helper or an ssh key")


def _index(value: Any, key: str, local_services: bool) -> None:
    """A target's index; a target whose services the pipeline runs has its URL, user and password file derived."""
    required = () if local_services else ("url", "username")
    index = _table(value, key, ("url", "username", "password_env", "password_file"), required)
    if "url" in index:
        _index_url(_string(index, key, "url", required=True), key, local_services)
    if "username" in index:
        _username(_string(index, key, "username", required=True), f"{key}.username")
    if "password_env" in index and "password_file" in index:
        raise SchemaError(key, "set one of password_env and password_file, not both")
    if "password_env" in index:
        _env_name(_string(index, key, "password_env"), f"{key}.password_env")
    elif "password_file" in index:
        _string(index, key, "password_file")
    elif not local_services:
        raise SchemaError(key, "missing password_env or password_file")


def _username(username: str, key: str) -> None:
    if not _USERNAME.fullmatch(username):
        raise SchemaError(key, f"expected a user name without ':', spaces or control characters, got {_q(username)}")


def _env_name(name: str, key: str) -> None:
    if not _ENV_NAME.fullmatch(name):
        raise SchemaError(key, f"expected an environment variable name, got {_q(name)}")


def _index_url(url: str, key: str, local_services: bool, name: str = "url") -> None:
    key = f"{key}.{name}"
    parts = _url(url, key, ": use password_env or password_file")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SchemaError(key, f"expected an https:// URL, got {_q(url)}")
    if parts.query or parts.fragment:
        raise SchemaError(key, f"the index URL takes no query or fragment, got {_q(url)}")
    if parts.scheme == "http":
        if not is_loopback_host(parts.hostname):
            raise SchemaError(key, f"a remote index must use https, got {_q(url)}")
        if not local_services:
            raise SchemaError(
                key, "plain http is only for the index of the pipeline's own services (local_services = true)"
            )


GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
_WORKFLOW_REF = re.compile(r"[A-Za-z0-9._-]+\.ya?ml@refs/(heads|tags)/[A-Za-z0-9._/-]+", re.ASCII)
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", re.ASCII)


def _local_identity(signing: dict, key: str) -> None:
    """The local instance mints tokens for one fixed identity (an email address)."""
    for name in ("repository", "releases", "nightlies"):
        if name in signing:
            raise SchemaError(
                f"{key}.{name}", "the local instance signs as its fixed identity, not a workflow's: remove it"
            )
    identity = _string(signing, key, "identity", required=True)
    if not _EMAIL.fullmatch(identity):
        raise SchemaError(f"{key}.identity", f"expected an email address, got {_q(identity)}")


def _workflow_identity(signing: dict, key: str, issuer: str) -> None:
    """Every instance but `local` signs with GitHub Actions' ambient identity: which workflow at which ref signs
    releases, and which signs nightlies."""
    if "identity" in signing:
        raise SchemaError(
            f"{key}.identity",
            "only the local instance signs as a fixed identity; this one signs as the workflow that runs: name it "
            'with repository = "OWNER/REPO", releases = "release.yml@refs/heads/main" and nightlies = '
            '"nightly.yml@refs/heads/main"',
        )
    if issuer != GITHUB_ACTIONS_ISSUER:
        raise SchemaError(
            f"{key}.issuer", f"GitHub Actions' tokens are issued by {GITHUB_ACTIONS_ISSUER}, got {_q(issuer)}"
        )
    repository = _string(signing, key, "repository", required=True)
    if not _REPOSITORY.fullmatch(repository):
        raise SchemaError(f"{key}.repository", f"expected OWNER/REPO, got {_q(repository)}")
    named = {}
    for name in ("releases", "nightlies"):
        workflow_ref = _string(signing, key, name, required=True)
        if not _WORKFLOW_REF.fullmatch(workflow_ref):
            raise SchemaError(
                f"{key}.{name}",
                f"expected WORKFLOW_FILE@refs/heads/BRANCH (e.g. release.yml@refs/heads/main), got {_q(workflow_ref)}",
            )
        named[name] = workflow_ref
    if named["releases"].split("@")[0] == named["nightlies"].split("@")[0]:
        raise SchemaError(
            f"{key}.nightlies", "the same workflow as releases: a nightly's certificate would pass a release's gate"
        )


def _signing(value: Any, key: str, local_services: bool, own_services: bool = False) -> None:
    signing = _table(
        value,
        key,
        ("instance", "identity", "issuer", "trust_config", "repository", "releases", "nightlies"),
        ("instance", "issuer"),
    )
    instance = _choice(signing, key, "instance", SIGNING_INSTANCES)
    if instance == "local" and not local_services:
        raise SchemaError(f"{key}.instance", "'local' is the pipeline's own Sigstore: it needs local_services = true")
    trust_config = _string(signing, key, "trust_config")
    if own_services and instance != "custom":
        raise SchemaError(
            f"{key}.instance", "a target with services of its own signs with their Sigstore: instance = 'custom'"
        )
    if own_services and trust_config is not None:
        raise SchemaError(f"{key}.trust_config", "derived from the target's services: remove it")
    if instance == "custom" and trust_config is None and not own_services:
        raise SchemaError(
            f"{key}.trust_config",
            "missing: instance = 'custom' names its Sigstore with trust_config = \"<ClientTrustConfig JSON>\"",
        )
    if instance != "custom" and trust_config is not None:
        raise SchemaError(f"{key}.trust_config", "only instance = 'custom' reads a trust config; remove it")
    issuer = _string(signing, key, "issuer", required=True)
    parts = _url(issuer, f"{key}.issuer", "")
    if parts.scheme != "https" or not parts.hostname:
        raise SchemaError(f"{key}.issuer", f"expected an https:// URL, got {_q(issuer)}")
    if instance == "local":
        _local_identity(signing, key)
    else:
        _workflow_identity(signing, key, issuer)
