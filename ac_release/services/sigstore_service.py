"""The target's Sigstore instance as a service (its server: sigstore_local.py), started with the target's issuer."""

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
    return Service("sigstore", argv, settings.sigstore_port, "/")
