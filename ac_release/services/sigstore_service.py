"""The target's Sigstore instance as a service (its server: sigstore_local.py), started with the target's issuer; with
the target's TLS it serves https, so that every URL of it in the trust config and the Actions environment is https."""

from __future__ import annotations

import sys

from ac_release.model.config import ServicesSettings
from ac_release.services.supervisor import Service


def sigstore_service(settings: ServicesSettings) -> Service:
    argv = [
        sys.executable,
        "-m",
        "ac_release.services.sigstore_local",
        "serve",
        "--state-dir",
        str(settings.sigstore_state),
        "--host",
        settings.host,
        "--port",
        str(settings.sigstore_port),
        "--trust-config",
        str(settings.trust_config),
        "--issuer",
        settings.issuer,
    ]
    if settings.tls:  # https with the services' certificate, like the index and the registries
        argv += ["--certfile", str(settings.server_certificate), "--keyfile", str(settings.server_key)]
    return Service("sigstore", argv, settings.sigstore_port, "/", settings.tls)
