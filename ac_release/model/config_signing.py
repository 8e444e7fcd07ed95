"""A target's `[targets.<name>.signing]`: which Sigstore instance signs, and as whom; validated and built here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ac_release.model import config_schema as schema
from ac_release.model.config_schema import Reading, SchemaError
from ac_release.model.config_services import ServicesSettings

SIGNING_INSTANCES = ("local", "public", "custom")
GITHUB = "https://github.com"
GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"

_EMAIL = re.compile(r"[^@\s/:]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", re.ASCII)
_WORKFLOW_REF = re.compile(r"[A-Za-z0-9._-]+\.ya?ml@refs/(heads|tags)/[A-Za-z0-9._/-]+", re.ASCII)
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", re.ASCII)


@dataclass(frozen=True)
class Signer:
    """Who must have signed an artifact: the certificate's identity (SAN) and OIDC issuer; for GitHub Actions'
    ambient identity also the repository and ref the certificate's GitHub extensions must name (the SAN names the
    workflow file)."""

    identity: str
    issuer: str
    repository: str | None = None
    ref: str | None = None

    @property
    def github(self) -> bool:
        return self.repository is not None


@dataclass(frozen=True)
class SigningSettings:
    """`local` signs as `identity` with tokens its own Sigstore mints. Every other instance signs with GitHub Actions'
    ambient identity, fetched per signature: `releases` and `nightlies` name the workflow of `repository` that signs
    each (`release.yml@refs/heads/main`), and a certificate of one never passes the other's gate."""

    instance: str  # "local": the pipeline's own instance; "public": public-good Sigstore; "custom": trust_config
    issuer: str
    identity: str | None = None  # the local instance's fixed identity (an email address)
    repository: str | None = None  # OWNER/REPO of the workflows that sign
    releases: str | None = None  # WORKFLOW_FILE@REF
    nightlies: str | None = None
    trust_config: Path | None = None

    @property
    def ambient(self) -> bool:
        return self.instance != "local"

    def signer(self, nightly: bool = False) -> Signer:
        if not self.ambient:
            assert self.identity is not None
            return Signer(self.identity, self.issuer)
        assert self.repository and self.releases and self.nightlies
        workflow_ref = self.nightlies if nightly else self.releases
        ref = workflow_ref.split("@", 1)[1]
        return Signer(f"{GITHUB}/{self.repository}/.github/workflows/{workflow_ref}", self.issuer, self.repository, ref)


def signing(value: Any, key: str, reading: Reading, services: ServicesSettings | None, own: bool) -> SigningSettings:
    """The signing table of a target; `services` are the target's (`own`: its own, else [services]), whose Sigstore
    trust config is the target's unless it names a custom one."""
    local_services = services is not None and not own
    table = schema.table(
        value,
        key,
        ("instance", "identity", "issuer", "trust_config", "repository", "releases", "nightlies"),
        ("instance", "issuer"),
    )
    instance = schema.choice(table, key, "instance", SIGNING_INSTANCES)
    if instance == "local" and not local_services:
        raise SchemaError(f"{key}.instance", "'local' is the pipeline's own Sigstore: it needs local_services = true")
    trust_config = schema.string(table, key, "trust_config")
    if own and instance != "custom":
        raise SchemaError(
            f"{key}.instance", "a target with services of its own signs with their Sigstore: instance = 'custom'"
        )
    if own and trust_config is not None:
        raise SchemaError(f"{key}.trust_config", "derived from the target's services: remove it")
    if instance == "custom" and trust_config is None and not own:
        raise SchemaError(
            f"{key}.trust_config",
            "missing: instance = 'custom' names its Sigstore with trust_config = \"<ClientTrustConfig JSON>\"",
        )
    if instance != "custom" and trust_config is not None:
        raise SchemaError(f"{key}.trust_config", "only instance = 'custom' reads a trust config; remove it")
    issuer = schema.string(table, key, "issuer", required=True)
    parts = schema.url(issuer, f"{key}.issuer", "")
    if parts.scheme != "https" or not parts.hostname:
        raise SchemaError(f"{key}.issuer", f"expected an https:// URL, got {schema.quoted(issuer)}")
    if instance == "local":
        if schema.same_location(issuer) == schema.same_location(GITHUB_ACTIONS_ISSUER):
            raise SchemaError(
                f"{key}.issuer",
                f"the local instance mints its own tokens: it may not claim GitHub Actions' issuer "
                f"({GITHUB_ACTIONS_ISSUER}); name one of its own, e.g. https://oidc.ac-release.local",
            )
        identity = {"identity": _local_identity(table, key)}
    else:
        identity = _workflow_identity(table, key, issuer)
    if trust_config is not None:
        trust_config_path = reading.path(trust_config, f"{key}.trust_config")
    else:
        trust_config_path = services.trust_config if services else None
    return SigningSettings(instance=instance, issuer=issuer, trust_config=trust_config_path, **identity)


def _local_identity(table: dict, key: str) -> str:
    """The local instance mints tokens for one fixed identity (an email address)."""
    for name in ("repository", "releases", "nightlies"):
        if name in table:
            raise SchemaError(
                f"{key}.{name}", "the local instance signs as its fixed identity, not a workflow's: remove it"
            )
    identity = schema.string(table, key, "identity", required=True)
    if not _EMAIL.fullmatch(identity):
        raise SchemaError(f"{key}.identity", f"expected an email address, got {schema.quoted(identity)}")
    return identity


def _workflow_identity(table: dict, key: str, issuer: str) -> dict[str, str]:
    """Every instance but `local` signs with GitHub Actions' ambient identity: which workflow at which ref signs
    releases, and which signs nightlies."""
    if "identity" in table:
        raise SchemaError(
            f"{key}.identity",
            "only the local instance signs as a fixed identity; this one signs as the workflow that runs: name it "
            'with repository = "OWNER/REPO", releases = "release.yml@refs/heads/main" and nightlies = '
            '"nightly.yml@refs/heads/main"',
        )
    if issuer != GITHUB_ACTIONS_ISSUER:
        raise SchemaError(
            f"{key}.issuer",
            f"GitHub Actions' tokens are issued by {GITHUB_ACTIONS_ISSUER}, got {schema.quoted(issuer)}",
        )
    repository = schema.string(table, key, "repository", required=True)
    if not _REPOSITORY.fullmatch(repository):
        raise SchemaError(f"{key}.repository", f"expected OWNER/REPO, got {schema.quoted(repository)}")
    named = {"repository": repository}
    for name in ("releases", "nightlies"):
        workflow_ref = schema.string(table, key, name, required=True)
        if not _WORKFLOW_REF.fullmatch(workflow_ref):
            raise SchemaError(
                f"{key}.{name}",
                "expected WORKFLOW_FILE@refs/heads/BRANCH (e.g. release.yml@refs/heads/main), "
                f"got {schema.quoted(workflow_ref)}",
            )
        named[name] = workflow_ref
    if named["releases"].split("@")[0] == named["nightlies"].split("@")[0]:
        raise SchemaError(
            f"{key}.nightlies", "the same workflow as releases: a nightly's certificate would pass a release's gate"
        )
    return named
