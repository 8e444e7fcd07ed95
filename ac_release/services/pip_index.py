"""The target's pip index: pypiserver under gunicorn, and the dev index beside it when the services have one."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from ac_release.core.fsutil import atomic_write_text
from ac_release.model.config import ServicesSettings
from ac_release.services.htpasswd import write_htpasswd
from ac_release.services.supervisor import Service


class PipIndex:
    def __init__(self, settings: ServicesSettings):
        self.settings = settings

    def services(self) -> list[Service]:
        settings = self.settings
        index = [Service("pypi", self._argv(), settings.pypi_port, "/simple/", settings.tls)]
        if settings.dev_pypi_port is not None:
            index.append(Service("pypi-dev", self._argv(dev=True), settings.dev_pypi_port, "/simple/", settings.tls))
        return index

    def _argv(self, dev: bool = False) -> list[str]:
        """pypiserver's WSGI app under gunicorn, behind the guard that stores an upload whole or not at all
        (ac_release/services/index_app.py); with TLS, gunicorn serves https (pypiserver's own server has none)."""
        settings = self.settings
        packages, htpasswd = settings.packages(dev), settings.index_htpasswd
        port = settings.dev_pypi_port if dev else settings.pypi_port
        options = ", ".join(f"{name}={value!r}" for name, value in index_app_options(packages, htpasswd).items())
        app = f"ac_release.services.index_app:app({options})"
        tls = ["--certfile", str(settings.server_certificate), "--keyfile", str(settings.server_key)]
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"{settings.host}:{port}",
            *(tls if settings.tls else []),
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--timeout",
            "600",
            app,
        ]

    def prepare(self) -> bool:
        """The upload login: the target's token from the environment, or a password generated once into a 0600 file;
        the index keeps only its bcrypt hash. True when the htpasswd file changed."""
        settings = self.settings
        settings.packages().mkdir(parents=True, exist_ok=True)
        if settings.dev_pypi_port is not None:
            settings.packages(dev=True).mkdir(parents=True, exist_ok=True)
        if settings.index_password is None and not settings.password_file.exists():
            atomic_write_text(settings.password_file, secrets.token_urlsafe(24) + "\n", mode=0o600)
        password = settings.index_secret.read()
        return write_htpasswd(settings.index_htpasswd, settings.index_username, password)


def index_app_options(packages: Path, htpasswd: Path) -> dict[str, object]:
    """pypiserver's options (gunicorn's argv spells them as Python literals): uploads need the htpasswd's login,
    nothing falls back to PyPI, the simple pages carry each file's sha256."""
    return {
        "roots": [str(packages)],
        "password_file": str(htpasswd),
        "authenticate": ["update"],
        "disable_fallback": True,
        "hash_algo": "sha256",
        "backend_arg": "simple-dir",
    }
