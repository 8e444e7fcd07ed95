"""Sigstore signing and the verification gate, through the real `sigstore` client.

Which instance signs is a setting of the target: the pipeline's own local instance, the public-good instance
(ambient OIDC in GitHub Actions), or a private one named by a trust config. The code path is the same.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ac_release import proc
from ac_release.config import Target
from ac_release.context import ReleaseContext
from ac_release.errors import ReleaseError
from ac_release.fsutil import sha256_file
from ac_release.names import bundle_name

TOKEN_ENV = "SIGSTORE_IDENTITY_TOKEN"
# Bundles that verified in this process, by (artifact sha256, bundle sha256, identity, issuer, trust config): the
# preflight, the stage and the gate ask the same question of the same bytes.
_verified: set[tuple] = set()


def _trust_config(ctx: ReleaseContext) -> Path | None:
    signing = ctx.target.signing
    if signing.instance in ("local", "custom"):  # local: derived from the target's services
        return signing.trust_config
    if signing.instance == "public":
        return None
    raise ReleaseError(f"unknown signing instance {signing.instance!r}: use local, public or custom in release.toml")


def _sigstore(ctx: ReleaseContext, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "sigstore"]
    trust_config = _trust_config(ctx)
    if trust_config is not None:
        if not trust_config.is_file():
            raise ReleaseError(
                f"Sigstore trust config {trust_config} is missing: run `invoke services.up` "
                f"(local target) or fix [signing] trust_config"
            )
        argv += ["--trust-config", str(trust_config)]
    cache = ctx.cache / "sigstore"
    base_env = {
        **os.environ,
        "XDG_CACHE_HOME": str(cache / "cache"),
        "XDG_DATA_HOME": str(cache / "data"),
        "COLUMNS": "1000",  # the client logs through rich: keep each message on one line
    }
    result = proc.run([*argv, *args], kind="sigstore", env={**base_env, **(env or {})})
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    )


def _identity_token(ctx: ReleaseContext) -> dict[str, str]:
    """The OIDC token as an environment variable (never on a command line): minted locally or ambient."""
    if ctx.target.signing.instance == "local":
        return {TOKEN_ENV: mint_identity_token(ctx.target)}
    return {TOKEN_ENV: os.environ[TOKEN_ENV]} if os.environ.get(TOKEN_ENV) else {}


def mint_identity_token(target: Target, lifetime_s: int = 600) -> str:
    """An identity token of the target's own Sigstore service for the target's identity and issuer: what the local
    target signs with, and what `invoke services.token` hands a target with `instance = "custom"` (a secret)."""
    from ac_release.services.sigstore_local import LocalSigstore

    if target.services is None:
        raise ReleaseError(
            f"target {target.name} runs no Sigstore service here: its identity token comes from its issuer"
        )
    state = target.services.dir / "sigstore" / "state"
    return LocalSigstore(state, issuer=target.signing.issuer).identity_token(target.signing.identity, lifetime_s)


def _reason(result: subprocess.CompletedProcess) -> str:
    """The client's own error messages, without log decoration, its `FAIL: <file>` line or its `--verbose` hint."""
    reasons = []
    for line in (result.stderr + result.stdout).splitlines():
        if "ERROR" not in line:
            continue
        message = re.sub(r"\s+\S+\.py:\d+\s*$", "", line.split("ERROR", 1)[1]).strip()
        if message and not message.startswith("FAIL:"):
            reasons.append(message)
    if reasons:
        return "; ".join(reasons)
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {result.returncode}"


def sign(ctx: ReleaseContext, artifacts: list[Path], output_dir: Path) -> None:
    """Write `<artifact>.sigstore.json` for every artifact into `output_dir`."""
    result = _sigstore(
        ctx, "sign", "--output-directory", str(output_dir), *map(str, artifacts), env=_identity_token(ctx)
    )
    if result.returncode != 0:
        raise ReleaseError(f"sigstore sign failed: {_reason(result)}")


def verify(ctx: ReleaseContext, artifact: Path, bundle: Path) -> None:
    """The verification gate: `artifact` must be signed by the target's identity, or the release stops here."""
    signing = ctx.target.signing
    if not bundle.is_file():
        raise ReleaseError(
            f"no signature for {artifact.name}: {bundle.name} is missing; run `invoke sign {ctx.version}`"
        )
    args = [
        "verify",
        "identity",
        "--bundle",
        str(bundle),
        "--cert-identity",
        signing.identity,
        "--cert-oidc-issuer",
        signing.issuer,
    ]
    if signing.instance == "public":
        args.append("--offline")  # the trust root shipped with the pinned client; no TUF refresh needed
    key = (sha256_file(artifact), sha256_file(bundle), signing.identity, signing.issuer, str(_trust_config(ctx)))
    if key in _verified:
        return
    result = _sigstore(ctx, *args, str(artifact))
    if result.returncode != 0:
        raise ReleaseError(f"signature check failed for {artifact.name} with {bundle.name}: {_reason(result)}")
    _verified.add(key)


def verify_all(ctx: ReleaseContext, artifacts: list[Path], bundle_dir: Path) -> None:
    for artifact in artifacts:
        verify(ctx, artifact, bundle_dir / bundle_name(artifact.name))
