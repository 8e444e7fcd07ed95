"""Sigstore signing and the verification gate, through the real `sigstore` client.

Which instance signs is a setting of the target: the pipeline's own local instance, the public-good instance, or a
private one named by a trust config. Who signs too: the local instance's fixed identity, or on every other target
GitHub Actions' ambient identity of the workflow that runs (config.Signer). The code path is the same.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ac_release.clients import proc
from ac_release.clients.tlsclients import ca_env, trusting
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.config import Signer, Target
from ac_release.model.names import bundle_name
from ac_release.world.context import ReleaseContext

SIGSTORE_CLI_TOKEN_ENV = "SIGSTORE_IDENTITY_TOKEN"
# Bundles that verified in this process, by (artifact sha256, bundle sha256, signer, trust config): the
# preflight, the stage and the gate ask the same question of the same bytes.
_verified: set[tuple] = set()


def trust_config_path(ctx: ReleaseContext) -> Path | None:
    """The client trust config of the target's Sigstore instance; None for the public one (the clients' own)."""
    signing = ctx.target.signing
    if signing.instance in ("local", "custom"):  # local: derived from the target's services
        return signing.trust_config
    if signing.instance == "public":
        return None
    raise ReleaseError(f"unknown signing instance {signing.instance!r}: use local, public or custom in release.toml")


def _sigstore(ctx: ReleaseContext, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "sigstore"]
    trust_config = trust_config_path(ctx)
    if trust_config is not None:
        if not trust_config.is_file():
            raise ReleaseError(
                f"Sigstore trust config {trust_config} is missing: run `invoke services.up` "
                f"(local target) or fix [signing] trust_config"
            )
        argv += ["--trust-config", str(trust_config)]
    cache = ctx.cache / "sigstore"
    base_env = {
        **proc.tool_env(also=AMBIENT_ENV),  # no SIGSTORE_* from outside: a stored token is never what signs
        "XDG_CACHE_HOME": str(cache / "cache"),
        "XDG_DATA_HOME": str(cache / "data"),
        "COLUMNS": "1000",  # the client logs through rich: keep each message on one line
        **ca_env(services_ca(ctx)),  # staging's Sigstore and its identity provider serve https with the services' CA
    }
    result = proc.run([*argv, *args], kind="sigstore", env={**base_env, **(env or {})})
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    )


AMBIENT_ENV = proc.AMBIENT_IDENTITY_ENV


def services_ca(ctx: ReleaseContext) -> Path | None:
    """The CA of the target's own services when they serve https (staging), which its Sigstore clients trust; None
    before the services made it (nothing of theirs answers then: the preflight says so)."""
    ca_file = ctx.target.services.ca_file if ctx.target.services is not None else None
    return ca_file if ca_file is not None and ca_file.is_file() else None


def require_ambient_identity(ctx: ReleaseContext) -> None:
    """A target signing with GitHub Actions' identity signs only where a job can ask for it (never a stored token,
    never a browser login)."""
    if not ctx.target.signing.ambient:
        return
    missing = [name for name in AMBIENT_ENV if not os.environ.get(name)]
    if missing:
        raise ReleaseError(
            f"target {ctx.target.name} signs with GitHub Actions' identity and this job has none ({missing[0]} is not "
            f"set): run it in its workflow with `permissions: id-token: write`, or rehearse on staging after "
            f'`eval "$(invoke services.actions-env --target staging)"`'
        )


def client_token(ctx: ReleaseContext) -> str | None:
    """The token a client (the sigstore CLI, cosign) is handed, in its environment and never on a command line: one
    the local instance mints, or None, so that the client asks GitHub Actions' provider itself."""
    if not ctx.target.signing.ambient:
        return mint_identity_token(ctx.target)
    require_ambient_identity(ctx)
    return None


def identity_token(ctx: ReleaseContext) -> str:
    """A fresh identity token for an in-process signature: minted locally, or fetched from GitHub Actions' provider
    now (it expires in minutes: fetched per use, never kept)."""
    if (minted := client_token(ctx)) is not None:
        return minted
    from sigstore.oidc import IdentityError, detect_credential

    try:
        with trusting(services_ca(ctx)):
            token = detect_credential()
    except IdentityError as exc:
        raise ReleaseError(f"GitHub Actions' identity provider gave no token: {exc}") from None
    if not token:
        raise ReleaseError("GitHub Actions' identity provider gave no token: check `permissions: id-token: write`")
    return token


def mint_identity_token(target: Target, lifetime_s: int = 600) -> str:
    """An identity token of the local target's own Sigstore for its identity: what `local` signs with."""
    from ac_release.services.sigstore_local import LocalSigstore

    if target.signing.ambient or target.services is None or target.signing.identity is None:
        raise ReleaseError(f"target {target.name} signs with GitHub Actions' identity: no token is minted for it")
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
        ctx,
        "sign",
        "--output-directory",
        str(output_dir),
        *map(str, artifacts),
        env={SIGSTORE_CLI_TOKEN_ENV: token} if (token := client_token(ctx)) else {},
    )
    if result.returncode != 0:
        raise ReleaseError(f"sigstore sign failed: {_reason(result)}")


def verify_args(signer: Signer) -> list[str]:
    """`sigstore verify` as a stranger runs it: `github` with the workflow (the SAN), repository and ref for GitHub
    Actions' identity; `identity` for the local instance's."""
    if not signer.github:
        return ["identity", "--cert-identity", signer.identity, "--cert-oidc-issuer", signer.issuer]
    assert signer.repository and signer.ref
    return ["github", "--cert-identity", signer.identity, "--repository", signer.repository, "--ref", signer.ref]


def signer_policy(signer: Signer):
    """The same check as `verify_args`, for the client's API (attestations are verified in process)."""
    from sigstore.verify import policy

    identity = policy.Identity(identity=signer.identity, issuer=signer.issuer)
    if not signer.github:
        return identity
    assert signer.repository and signer.ref
    return policy.AllOf(
        [identity, policy.GitHubWorkflowRepository(signer.repository), policy.GitHubWorkflowRef(signer.ref)]
    )


def verify(ctx: ReleaseContext, artifact: Path, bundle: Path) -> None:
    """The verification gate: `artifact` must be signed by this build's signer, or the release stops here."""
    signer = ctx.signer
    if not bundle.is_file():
        raise ReleaseError(
            f"no signature for {artifact.name}: {bundle.name} is missing; run `invoke sign {ctx.version}`"
        )
    args = ["verify", *verify_args(signer), "--bundle", str(bundle)]
    if ctx.target.signing.instance == "public":
        args.append("--offline")  # the trust root shipped with the pinned client; no TUF refresh needed
    key = (sha256_file(artifact), sha256_file(bundle), signer, str(trust_config_path(ctx)))
    if key in _verified:
        return
    result = _sigstore(ctx, *args, str(artifact))
    if result.returncode != 0:
        raise ReleaseError(f"signature check failed for {artifact.name} with {bundle.name}: {_reason(result)}")
    _verified.add(key)


def verify_all(ctx: ReleaseContext, artifacts: list[Path], bundle_dir: Path) -> None:
    for artifact in artifacts:
        verify(ctx, artifact, bundle_dir / bundle_name(artifact.name))
