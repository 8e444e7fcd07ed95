"""Keyless image signatures and attestations with cosign (Debian's 2.5, see .ci/install-cosign), run offline.

cosign never reaches a TUF repository here: `TUF_ROOT` is an empty temporary directory and the trust material
(Fulcio root, CT log key, Rekor key) comes from the target's trusted root, written to files named by
`SIGSTORE_ROOT_FILE`, `SIGSTORE_CT_LOG_PUBLIC_KEY_FILE` and `SIGSTORE_REKOR_PUBLIC_KEY`. Signatures and
attestations use cosign's classic layout (`sha256-<digest>.sig` / `.att` tags next to the image, which `cosign copy`
carries to another registry); `--trusted-root` works only with `--new-bundle-format`, which `cosign sign` 2.5 lacks.

The OIDC token reaches cosign through the environment (`SIGSTORE_ID_TOKEN`), never its command line. A registry is
reached as its access settings say (config.RegistryAccess): plain HTTP (`--allow-http-registry`) only for a registry
that has no TLS (the local target's loopback registry); over TLS with the target's own CA in SSL_CERT_FILE (a bundle
with the machine's CAs) and the registry's login in a private DOCKER_CONFIG for the call (tlsclients.registry_env),
never an insecure flag and never a password on the command line.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ac_release.clients import proc
from ac_release.clients.registry import registry_of
from ac_release.clients.tlsclients import registry_env
from ac_release.clients.tools import env_tool
from ac_release.core.errors import ReleaseError
from ac_release.model.config import Registry, RegistryAccess, Signer, is_loopback_registry

COSIGN_TOKEN_ENV = "SIGSTORE_ID_TOKEN"
TIMEOUT_S = 300

# cosign's short predicate names and the in-toto predicateType each one stands for.
PREDICATE_TYPES = {
    "cyclonedx": "https://cyclonedx.org/bom",
    "spdxjson": "https://spdx.dev/Document",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
}

_REFERENCE = re.compile(
    r"(?P<host>[^/@]+)/(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*)@(?P<digest>sha256:[0-9a-f]{64})"
)


@dataclass(frozen=True)
class ImageReference:
    """`HOST[:PORT]/REPOSITORY@sha256:<hex>`: what is signed and verified is always a manifest digest. `access` says
    how its registry is reached; a parsed string without one gets a bare repository's (plain HTTP on loopback only)."""

    host: str
    repository: str
    digest: str
    access: RegistryAccess | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.access is None:
            object.__setattr__(self, "access", registry_of(self.name).access)

    @classmethod
    def parse(cls, reference: str, access: RegistryAccess | None = None) -> ImageReference:
        match = _REFERENCE.fullmatch(reference)
        if not match or not ("." in match["host"] or ":" in match["host"] or match["host"] == "localhost"):
            raise ReleaseError(
                f"image reference {reference!r} is not REGISTRY/REPOSITORY@sha256:<64 hex>: name the registry, "
                f"and sign and verify by digest"
            )
        return cls(match["host"], match["repository"], match["digest"], access)

    @classmethod
    def of(cls, repository: str, digest: str) -> ImageReference:
        """`repository@digest`, reached as the target's registry `repository` (a config.Registry) says."""
        return cls.parse(f"{repository}@{digest}", registry_of(repository).access)

    @classmethod
    def coerce(cls, reference: str | ImageReference) -> ImageReference:
        return reference if isinstance(reference, ImageReference) else cls.parse(reference)

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repository}"

    @property
    def registry(self) -> Registry:
        """The repository with how to reach it (tlsclients and registry.py take this)."""
        return Registry(self.name, self.access)

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}"

    @property
    def is_loopback(self) -> bool:
        """True only for `localhost`, a loopback IP literal or `[::1]`, each with an optional port."""
        return is_loopback_registry(f"{self.host}/x")


@dataclass(frozen=True)
class Trust:
    """A Sigstore instance as cosign needs it: the trusted root, and where to get certificates and log entries."""

    trusted_root: dict
    fulcio_url: str
    rekor_url: str

    @classmethod
    def from_client_trust_config(cls, config: dict) -> Trust:
        """From a ClientTrustConfig (`sigstore --trust-config`): its trustedRoot and signingConfig's v1 services."""
        try:
            signing = config["signingConfig"]
            fulcio_url = _service_url(signing["caUrls"], "caUrls")
            rekor_url = _service_url(signing["rekorTlogUrls"], "rekorTlogUrls")
            return cls(config["trustedRoot"], fulcio_url, rekor_url)
        except (KeyError, TypeError) as exc:
            raise ReleaseError(f"Sigstore trust config has no {exc}: expected a ClientTrustConfig JSON") from None

    @classmethod
    def load(cls, path: Path) -> Trust:
        try:
            config = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReleaseError(
                f"Sigstore trust config {path} is missing: run `invoke services.up` (local target) "
                f"or fix [signing] trust_config"
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ReleaseError(f"Sigstore trust config {path} is not JSON: {exc}") from None
        return cls.from_client_trust_config(config)

    @classmethod
    def public(cls) -> Trust:
        """Public-good Sigstore, from the trusted root and signing config shipped in the pinned `sigstore` wheel."""
        import sigstore

        store = Path(sigstore.__file__).parent / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
        trusted_root = json.loads((store / "trusted_root.json").read_text(encoding="utf-8"))
        signing_config = json.loads((store / "signing_config.v0.2.json").read_text(encoding="utf-8"))
        return cls.from_client_trust_config({"trustedRoot": trusted_root, "signingConfig": signing_config})

    def write_material(self, directory: Path, now: dt.datetime | None = None) -> dict[str, str]:
        """Write the PEM files cosign reads; return the environment that points cosign at them."""
        now = now or dt.datetime.now(dt.UTC)
        # Every CA, also those that no longer issue: a signature is checked against the time it was logged.
        roots = [
            x509.load_der_x509_certificate(base64.b64decode(cert["rawBytes"]))
            for authority in self.trusted_root.get("certificateAuthorities", [])
            for cert in authority["certChain"]["certificates"]
        ]
        rekor = [log for log in self.trusted_root.get("tlogs", []) if log.get("baseUrl") == self.rekor_url]
        files = {
            "SIGSTORE_ROOT_FILE": b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in roots),
            "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE": _newest_key(self.trusted_root.get("ctlogs", []), now, "CT log"),
            "SIGSTORE_REKOR_PUBLIC_KEY": _newest_key(rekor, now, f"Rekor log {self.rekor_url}"),
        }
        if not roots:
            raise ReleaseError("the trusted root has no certificate authority: check the trust config")
        env = {}
        for variable, data in files.items():
            path = directory / f"{variable.lower()}.pem"
            path.write_bytes(data)
            env[variable] = str(path)
        tuf_root = directory / "tuf"
        tuf_root.mkdir()
        env["TUF_ROOT"] = str(tuf_root)  # empty: cosign has no TUF repository to refresh from
        return env


def trust_of(ctx) -> Trust:
    """The trust material of the release target's Sigstore instance (local, custom or public)."""
    from ac_release.supply_chain.signing import trust_config_path  # the same mapping as the wheel bundles

    path = trust_config_path(ctx)
    return Trust.public() if path is None else Trust.load(path)


def cosign_binary() -> str:
    """The cosign that .ci/install-cosign put beside the venv's Python."""
    return str(env_tool("cosign", "run .ci/bootstrap (it calls .ci/install-cosign)"))


# --- signing ------------------------------------------------------------------------------------------------------


def sign_image(trust: Trust, reference: str | ImageReference, identity_token: str | None) -> None:
    """Keyless signature of the manifest digest, pushed as `sha256-<hex>.sig` beside the image. Without a token,
    cosign asks GitHub Actions' identity provider itself (its `github-actions` provider)."""
    image = ImageReference.coerce(reference)
    _cosign(trust, ["sign", "--yes", *_signing_args(trust, image), str(image)], image, token=identity_token)


def attest_image(
    trust: Trust, reference: str | ImageReference, predicate_file: Path, predicate_type: str, identity_token: str | None
) -> None:
    """Keyless in-toto attestation (subject: the manifest digest) pushed beside the image; one per predicate type."""
    image = ImageReference.coerce(reference)
    if not Path(predicate_file).is_file():
        raise ReleaseError(f"predicate file {predicate_file} is missing")
    args = ["attest", "--yes", "--replace", "--type", predicate_type, "--predicate", str(predicate_file)]
    _cosign(trust, [*args, *_signing_args(trust, image), str(image)], image, token=identity_token)


def _signing_args(trust: Trust, image: ImageReference) -> list[str]:
    return ["--fulcio-url", trust.fulcio_url, "--rekor-url", trust.rekor_url, *_registry_args(image)]


# --- verification -------------------------------------------------------------------------------------------------


def verify_image(trust: Trust, reference: str | ImageReference, signer: Signer) -> list[dict]:
    """The image's signatures by `signer`, verified offline; returns their simple-signing payloads."""
    image = ImageReference.coerce(reference)
    result = _cosign(trust, ["verify", *certificate_args(signer), *_registry_args(image), str(image)], image)
    payloads = json.loads(result.stdout)
    signed = [
        p for p in payloads if p.get("critical", {}).get("image", {}).get("docker-manifest-digest") == image.digest
    ]
    if not signed:
        raise ReleaseError(f"no signature of {image} by {signer.identity}: the verified signatures name other digests")
    return signed


def verify_attestation(
    trust: Trust, reference: str | ImageReference, predicate_type: str, signer: Signer
) -> list[dict]:
    """The in-toto statements of `predicate_type` attested for this digest by `signer`, verified offline."""
    image = ImageReference.coerce(reference)
    args = [
        "verify-attestation",
        "--type",
        predicate_type,
        *certificate_args(signer),
        *_registry_args(image),
        str(image),
    ]
    result = _cosign(trust, args, image)
    expected_type = PREDICATE_TYPES.get(predicate_type, predicate_type)
    statements = []
    for line in result.stdout.splitlines():
        if not line.strip():
            continue
        envelope = json.loads(line)
        statement = json.loads(base64.b64decode(envelope["payload"]))
        if statement.get("predicateType") == expected_type and _names_digest(statement, image.digest):
            statements.append(statement)
    if not statements:
        raise ReleaseError(
            f"no {expected_type} attestation for {image} by {signer.identity}: the verified ones are for other digests"
        )
    return statements


def verify_attested_predicate(
    trust: Trust, reference: str | ImageReference, predicate_type: str, predicate_file: Path, signer: Signer
) -> dict:
    """The verified statement whose predicate is exactly the JSON of `predicate_file` (e.g. the published SBOM)."""
    expected = json.loads(Path(predicate_file).read_text(encoding="utf-8"))
    statements = verify_attestation(trust, reference, predicate_type, signer)
    for statement in statements:
        if statement.get("predicate") == expected:
            return statement
    raise ReleaseError(
        f"the {predicate_type} attested for {reference} is not {Path(predicate_file).name}: "
        f"the file differs from what {signer.identity} signed"
    )


def verify_blob(trust: Trust, artifact: Path, bundle: Path, signer: Signer) -> None:
    """A file's Sigstore bundle (e.g. a wheel's, made by sigstore-python), checked by cosign as a user would."""
    with tempfile.TemporaryDirectory(prefix="ac-cosign-root-") as tmp:
        trusted_root = Path(tmp) / "trusted_root.json"
        trusted_root.write_text(json.dumps(trust.trusted_root), encoding="utf-8")
        args = ["verify-blob", "--new-bundle-format", "--trusted-root", str(trusted_root), "--bundle", str(bundle)]
        _cosign(trust, [*args, *certificate_args(signer), str(artifact)], None)


def _signed_digest(payload: dict) -> str | None:
    return payload.get("critical", {}).get("image", {}).get("docker-manifest-digest")


def _names_digest(statement: dict, digest: str) -> bool:
    algorithm, hex_digest = digest.split(":", 1)
    return any(subject.get("digest", {}).get(algorithm) == hex_digest for subject in statement.get("subject", []))


def certificate_args(signer: Signer) -> list[str]:
    """Who must have signed, as `cosign verify` takes it: the identity and issuer, and for GitHub Actions' identity
    the repository and ref the certificate's GitHub extensions name."""
    args = ["--certificate-identity", signer.identity, "--certificate-oidc-issuer", signer.issuer]
    if signer.github:
        assert signer.repository and signer.ref
        args += ["--certificate-github-workflow-repository", signer.repository]
        args += ["--certificate-github-workflow-ref", signer.ref]
    return args


# --- running cosign -----------------------------------------------------------------------------------------------


def _registry_args(image: ImageReference) -> list[str]:
    """Plain HTTP only for a registry without TLS; a TLS registry's CA and login go through the environment."""
    return [] if image.access.tls_verify else ["--allow-http-registry"]


@contextmanager
def environment(trust: Trust, image: ImageReference | None, token: str | None = None) -> Iterator[dict[str, str]]:
    """cosign's environment for one call: the trust material, the registry's CA bundle and private login (for the
    call only), the identity token. Secrets are here, never in the arguments."""
    with (
        tempfile.TemporaryDirectory(prefix="ac-cosign-") as tmp,
        registry_env(image.registry) if image else nullcontext({}) as registry_entries,
    ):
        env = proc.tool_env(also=(*proc.AMBIENT_IDENTITY_ENV, "DOCKER_CONFIG"))  # no SIGSTORE_, TUF_, COSIGN_
        env |= trust.write_material(Path(tmp)) | registry_entries
        if token is not None:
            env[COSIGN_TOKEN_ENV] = token
        yield env


def _cosign(
    trust: Trust, args: list[str], image: ImageReference | None, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    with environment(trust, image, token) as env:
        try:
            result = subprocess.run(
                [cosign_binary(), *args], env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise ReleaseError(f"cosign {args[0]} did not finish in {TIMEOUT_S} s") from None
    if result.returncode != 0:
        raise ReleaseError(f"cosign {args[0]} {args[-1]} failed: {_reason(result.stderr)}")
    return result


def _reason(stderr: str) -> str:
    """cosign's own error line, without its repetition as `error during command execution`."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Error: "):
            return line[len("Error: ") :]
    return lines[-1] if lines else "no output"


def _service_url(services: list[dict], field: str) -> str:
    """The first v1 service (cosign 2.5 speaks Fulcio v1/v2 and Rekor v1 only)."""
    for service in services:
        if service.get("majorApiVersion", 1) == 1:
            return service["url"].rstrip("/")
    raise ReleaseError(f"the signing config lists no v1 service in {field}: cosign 2.5 needs one")


def _valid(entries: list[dict], now: dt.datetime, validity_field: str) -> list[dict]:
    def valid(entry: dict) -> bool:
        period = entry.get(validity_field, {})
        start = _parse_time(period.get("start"))
        end = _parse_time(period.get("end"))
        return (start is None or start <= now) and (end is None or now <= end)

    return [entry for entry in entries if valid(entry)]


def _newest_key(logs: list[dict], now: dt.datetime, what: str) -> bytes:
    """cosign takes one key per log kind: the log whose key became valid last among those valid now."""
    keys = [log["publicKey"] for log in logs]
    valid = _valid(keys, now, "validFor")
    if not valid:
        raise ReleaseError(f"the trusted root has no {what} key valid now: check the trust config")
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    newest = max(valid, key=lambda key: _parse_time(key.get("validFor", {}).get("start")) or oldest)
    public_key = serialization.load_der_public_key(base64.b64decode(newest["rawBytes"]))
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
