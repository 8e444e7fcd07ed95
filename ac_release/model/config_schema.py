"""The schema's vocabulary: the refusal (`SchemaError`) and the validation of one value (a table's keys, a string,
a choice, a port, a URL), which the tables of `release.toml` (config*.py) are validated and built with.

A refusal names the dotted key (`targets.local.registries[0]`) and what is wrong, and `config.load_settings` puts
the file in front: one line. Unknown keys are refused too, so a typo never silently means the default. No value that
reaches an argv (registries, git remote, docker CLI, identity, user name) may start with `-`, and no URL carries
credentials: a refusal that would have to quote such a URL does not quote it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ac_release.core.errors import ReleaseError

MISSING = "missing (compare with the repository's release.toml)"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_USERNAME = re.compile(r"[^\s:\x00-\x1f\x7f]+")
_WHITESPACE = re.compile(r"\s")


class SchemaError(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass
class Reading:
    """One reading of `release.toml`: the file (named in refusals), the directory its relative paths start from, the
    ports its services have taken so far (no two services of any target on one port), and the refusals that wait
    for the end of the walk: a directory that is a file, a value that differs from what the services derive. A file
    with several faults reports a fault of its shape first."""

    file: Path
    repository: Path | None = None  # the repository root, once read: no directory the pipeline writes may hold it
    ports: dict[int, str] = field(default_factory=dict)
    waiting: list[Exception] = field(default_factory=list)

    def refuse_at_the_end(self, error: Exception) -> None:
        self.waiting.append(error)

    def end(self) -> None:
        if self.waiting:
            raise self.waiting[0]

    @property
    def base(self) -> Path:
        return self.file.parent

    def path(self, value: str, key: str) -> Path:
        """`value` (relative to release.toml, `~` and `$VAR` expanded) resolved; a symlink loop is refused at `key`."""
        try:
            return (self.base / os.path.expanduser(os.path.expandvars(value))).resolve()
        except (RuntimeError, OSError) as exc:  # RuntimeError: Python 3.11's "Symlink loop from ..."
            reason = getattr(exc, "strerror", None) or "a symlink loop"
            raise SchemaError(key, f"cannot resolve {quoted(value)} ({reason}): fix or remove the link") from None

    def directory(self, value: str, key: str) -> Path:
        """A directory the pipeline writes below: it may not exist yet, but it must not be a file, nor hold the
        machine's files, the user's or the repository's."""
        path = self.path(value, key)
        if problem := self.not_own_directory(path):
            raise SchemaError(key, f"{quoted(value)} is {problem}: name a directory of the pipeline's own below it")
        if path.exists() and not path.is_dir():
            self.refuse_at_the_end(ReleaseError(f"{self.file}: {key} is not a directory: name a directory"))
        return path

    def not_own_directory(self, path: Path) -> str | None:
        """Why the pipeline may not write and remove below `path`, or None: the filesystem root, the home directory
        itself, or the repository or a directory holding it."""
        if path == Path(path.anchor):
            return "the filesystem root"
        if path == Path.home().resolve():
            return "the home directory"
        if self.repository is not None and self.repository.is_relative_to(path):
            return "the repository or a directory holding it"
        return None

    def own_port(self, table: dict, key: str, name: str) -> int:
        """A port no other service of any target listens on."""
        if name not in table:
            raise SchemaError(key_of(key, name), MISSING)
        value = port(table, key, name)
        if value in self.ports:
            taken = self.ports[value]
            raise SchemaError(f"{key}.{name}", f"{value} is already {taken}: give each service its own port")
        self.ports[value] = f"{key}.{name}"
        return value


def quoted(value: str) -> str:
    """A value quoted in a refusal, with anything that may be a secret (URL userinfo, a query) masked."""
    value = re.sub(r"//[^/@]*@", "//***@", value)
    value = re.sub(r"\?.*", "?***", value)
    return repr(value)


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
    name, _, port_text = host.partition(":")
    return (port_text == "" or port_text.isdigit()) and is_loopback_host(name)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "a list", dict: "a table"}
    return names.get(type(value), f"a {type(value).__name__.replace('datetime', 'date-time')}")


def key_of(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def table(value: Any, key: str, known: tuple[str, ...], required: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise SchemaError(key or "(top level)", f"expected a table, got {kind(value)}")
    for name in value:
        if name not in known:
            raise SchemaError(key_of(key, name), f"unknown key (known keys: {', '.join(sorted(known))})")
    for name in required:
        if name not in value:
            raise SchemaError(key_of(key, name), MISSING)
    return value


def string(table: dict, key: str, name: str, required: bool = False) -> str | None:
    """A non-empty string without control characters that cannot be read as an option."""
    key = key_of(key, name)
    if name not in table:
        if required:
            raise SchemaError(key, MISSING)
        return None
    return plain(table[name], key)


def plain(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise SchemaError(key, f"expected a string, got {kind(value)}")
    if not value:
        raise SchemaError(key, "expected a non-empty string")
    if _CONTROL.search(value):
        raise SchemaError(key, "control characters (newline, NUL, ...) are not allowed")
    if value.startswith("-"):
        raise SchemaError(key, f"must not start with '-' (it would be read as an option), got {quoted(value)}")
    return value


def choice(table: dict, key: str, name: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = string(table, key, name, required=default is None) or default
    if value not in choices:
        expected = ", ".join(repr(c) for c in choices)
        raise SchemaError(key_of(key, name), f"expected one of {expected}, got {quoted(value)}")
    return value


def boolean(table: dict, key: str, name: str) -> bool:
    value = table.get(name, False)
    if not isinstance(value, bool):
        raise SchemaError(key_of(key, name), f"expected a boolean, got {kind(value)}")
    return value


def port(table: dict, key: str, name: str) -> int:
    value = table[name]
    if type(value) is not int:
        raise SchemaError(key_of(key, name), f"expected an integer, got {kind(value)}")
    if not 1 <= value <= 65535:
        raise SchemaError(key_of(key, name), f"expected a port from 1 to 65535, got {value}")
    return value


def url(value: str, key: str, credentials_hint: str) -> urllib.parse.SplitResult:
    """A URL split into its parts; userinfo (`user:password@`) is refused without quoting the URL, and so are
    whitespace, a port outside 1-65535 and a host that is not ASCII."""
    if _WHITESPACE.search(value):
        raise SchemaError(key, f"a URL has no whitespace: encode it (%20) or remove it, got {quoted(value)}")
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        raise SchemaError(key, f"not a valid URL: {quoted(value)}") from None
    if "@" in parts.netloc:
        raise SchemaError(key, f"credentials do not belong in a URL{credentials_hint}")
    checked_host_and_port(parts, key, value)
    return parts


def checked_host_and_port(parts: urllib.parse.SplitResult, key: str, value: str) -> None:
    """A port from 1 to 65535 if any, and an ASCII host (a name in its punycode form)."""
    try:
        valid_port = parts.port != 0  # None: no port
    except ValueError:  # not a number, or above 65535
        valid_port = False
    if not valid_port:
        raise SchemaError(key, f"invalid port in {quoted(value)}: a port is from 1 to 65535")
    if not parts.netloc.isascii():
        raise SchemaError(key, f"the host of {quoted(value)} is not ASCII: write it in its punycode form (xn--...)")


def same_location(url: str) -> str:
    """`url` as compared with another: scheme and host in lower case, no default port, no trailing slash."""
    parts = urllib.parse.urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port if parts.port not in (None, {"http": 80, "https": 443}.get(scheme)) else None
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc}{f':{port}' if port else ''}{parts.path.rstrip('/')}"


def username(table: dict, key: str, name: str = "username") -> str | None:
    value = string(table, key, name)
    if value is not None and not _USERNAME.fullmatch(value):
        raise SchemaError(
            key_of(key, name), f"expected a user name without ':', spaces or control characters, got {quoted(value)}"
        )
    return value


def env_name(table: dict, key: str, name: str) -> str | None:
    value = string(table, key, name)
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise SchemaError(key_of(key, name), f"expected an environment variable name, got {quoted(value)}")
    return value
