"""GitHub Actions' OIDC identity as the local Sigstore instance hands it out: a job's token claims, and the
certificate a GitHub-shaped token gets from Fulcio (SAN and extensions, as public Fulcio issues them).

Claims: GitHub's "About security hardening with OpenID Connect". Extensions: sigstore/fulcio docs/oid-info.md.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat import asn1

GITHUB = "https://github.com"
RUNNER_ENVIRONMENT = "self-hosted"  # act runs the jobs on this machine
_FULCIO_OID = "1.3.6.1.4.1.57264.1"


@dataclass(frozen=True)
class ActionsJob:
    """One job of a workflow run: what GitHub derives its token's claims from."""

    repository: str  # OWNER/REPO
    workflow_file: str  # release.yml, under .github/workflows/
    workflow_name: str  # the workflow's `name:`
    ref: str
    sha: str
    event_name: str
    environment: str | None
    run_id: str
    run_number: str = "1"
    run_attempt: str = "1"
    actor: str = "ac-release"
    visibility: str = "private"

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]


def job_claims(job: ActionsJob) -> dict[str, str]:
    """The job's claims as GitHub puts them in its token (all strings), without iss/aud/iat/nbf/exp/jti."""
    workflow_ref = f"{job.repository}/.github/workflows/{job.workflow_file}@{job.ref}"
    subject = f"environment:{job.environment}" if job.environment else f"ref:{job.ref}"
    claims = {
        "sub": f"repo:{job.repository}:{subject}",
        "repository": job.repository,
        "repository_owner": job.owner,
        "repository_id": _stable_id(f"repository:{job.repository}"),
        "repository_owner_id": _stable_id(f"owner:{job.owner}"),
        "repository_visibility": job.visibility,
        "ref": job.ref,
        "ref_type": "tag" if job.ref.startswith("refs/tags/") else "branch",
        "sha": job.sha,
        "workflow": job.workflow_name,
        "workflow_ref": workflow_ref,
        "workflow_sha": job.sha,
        # The job runs in the workflow that defines it (no reusable workflow): the same file at the same commit.
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": job.sha,
        "event_name": job.event_name,
        "run_id": job.run_id,
        "run_number": job.run_number,
        "run_attempt": job.run_attempt,
        "runner_environment": RUNNER_ENVIRONMENT,
        "actor": job.actor,
    }
    if job.environment:
        claims["environment"] = job.environment
    return claims


def new_run_id() -> str:
    return str(secrets.randbelow(9 * 10**9) + 10**9)


def workflow_name(workflow: Path) -> str:
    """The workflow's top-level `name:`; without one GitHub names it by its path."""
    match = re.search(r"^name:[ \t]*(.+?)[ \t]*$", workflow.read_text(encoding="utf-8"), re.MULTILINE)
    if match is None:
        return f".github/workflows/{workflow.name}"
    return match.group(1).strip("'\"")


# --- what Fulcio certifies for such a token --------------------------------------------------------------------


def is_actions_token(claims: Mapping[str, object]) -> bool:
    return "job_workflow_ref" in claims


def certificate_identity(claims: Mapping[str, object]) -> str:
    """The SAN (a URI): the workflow file at the ref that defined the job."""
    return f"{GITHUB}/{claims['job_workflow_ref']}"


def legacy_extensions(claims: Mapping[str, object]) -> dict[str, str]:
    """57264.1.2-.6, whose value is the raw string (what cosign's --certificate-github-workflow-* and
    `sigstore verify github` check)."""
    return {
        f"{_FULCIO_OID}.2": str(claims["event_name"]),
        f"{_FULCIO_OID}.3": str(claims["sha"]),
        f"{_FULCIO_OID}.4": str(claims["workflow"]),
        f"{_FULCIO_OID}.5": str(claims["repository"]),
        f"{_FULCIO_OID}.6": str(claims["ref"]),
    }


def build_extensions(claims: Mapping[str, object]) -> dict[str, str]:
    """57264.1.9-.22, each a DER UTF8String."""
    repository_uri = f"{GITHUB}/{claims['repository']}"
    return {
        f"{_FULCIO_OID}.9": certificate_identity(claims),
        f"{_FULCIO_OID}.10": str(claims["job_workflow_sha"]),
        f"{_FULCIO_OID}.11": str(claims["runner_environment"]),
        f"{_FULCIO_OID}.12": repository_uri,
        f"{_FULCIO_OID}.13": str(claims["sha"]),
        f"{_FULCIO_OID}.14": str(claims["ref"]),
        f"{_FULCIO_OID}.15": str(claims["repository_id"]),
        f"{_FULCIO_OID}.16": f"{GITHUB}/{claims['repository_owner']}",
        f"{_FULCIO_OID}.17": str(claims["repository_owner_id"]),
        f"{_FULCIO_OID}.18": f"{GITHUB}/{claims['workflow_ref']}",
        f"{_FULCIO_OID}.19": str(claims["workflow_sha"]),
        f"{_FULCIO_OID}.20": str(claims["event_name"]),
        f"{_FULCIO_OID}.21": f"{repository_uri}/actions/runs/{claims['run_id']}/attempts/{claims['run_attempt']}",
        f"{_FULCIO_OID}.22": str(claims["repository_visibility"]),
    }


def certificate_extensions(claims: Mapping[str, object]) -> dict[str, bytes]:
    """Every GitHub extension but the issuer's (.1/.8): dotted OID -> the extension's value bytes."""
    raw = {oid: value.encode() for oid, value in legacy_extensions(claims).items()}
    return raw | {oid: asn1.encode_der(value) for oid, value in build_extensions(claims).items()}


def _stable_id(name: str) -> str:
    """A numeric id like GitHub's, the same for the same name on every machine (the certificates carry it)."""
    return str(int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big"))
