"""The target's OCI registries: Debian's CNCF distribution registry (`docker-registry`), one process each."""

from __future__ import annotations

from ac_release.core.fsutil import atomic_write_text
from ac_release.model.config import ServicesSettings
from ac_release.services.htpasswd import write_htpasswd
from ac_release.services.supervisor import Service


class Registries:
    def __init__(self, settings: ServicesSettings):
        self.settings = settings

    def services(self) -> list[Service]:
        return [
            Service(
                directory.name,
                ["docker-registry", "serve", str(directory / "config.yml")],
                registry.port,
                "/v2/",
                self.settings.tls,
            )
            for directory, registry in zip(self.settings.registry_dirs, self.settings.registries, strict=True)
        ]

    def prepare(self) -> list[str]:
        """Each registry's config: without TLS no auth (it refuses basic auth without TLS), loopback only; with TLS
        the services' certificate and its htpasswd. Returns the registries whose htpasswd changed."""
        settings = self.settings
        changed = []
        for directory, registry in zip(settings.registry_dirs, settings.registries, strict=True):
            (directory / "data").mkdir(parents=True, exist_ok=True)
            address = f"{settings.host}:{registry.port}"
            config = (
                "version: 0.1\n"
                "log:\n  level: warn\n"
                f"storage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n  delete:\n    enabled: true\n"
                f"http:\n  addr: {address}\n"
            )
            if settings.tls:
                config += f"  tls:\n    certificate: {settings.server_certificate}\n    key: {settings.server_key}\n"
            if registry.username is not None and registry.password is not None:
                config += f"auth:\n  htpasswd:\n    realm: ac-release\n    path: {directory / 'htpasswd'}\n"
                if write_htpasswd(directory / "htpasswd", registry.username, registry.password.read()):
                    changed.append(directory.name)
            path = directory / "config.yml"
            if not path.exists() or path.read_text() != config:
                atomic_write_text(path, config)
        return changed
