"""How a target's index and registries are reached: their addresses, TLS, and where their secrets come from."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ac_release.core.errors import ReleaseError


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


@dataclass(frozen=True)
class RegistryAccess:
    """How a registry is reached: TLS or plain HTTP, which CA, which credentials."""

    tls_verify: bool = True  # False: plain HTTP (the local target's loopback registry, which has no TLS)
    ca_dir: Path | None = None  # a directory holding the CA certificate (ca.crt) to trust besides the system's
    username: str | None = None  # with `password`; None: the Docker/skopeo auth file of the user (`docker login`)
    password: Secret | None = None
    auth_hosts: tuple[str, ...] = ()  # the hosts besides its own whose Bearer realm may take its credentials


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
