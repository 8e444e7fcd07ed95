"""`invoke services.actions-env`: the environment GitHub gives a job with `id-token: write`, served by a target's own
Sigstore (its Actions identity provider), so that a run here takes production's signing path."""

from __future__ import annotations

import re
import shlex

from ac_release.clients.git import head
from ac_release.core.errors import ReleaseError
from ac_release.model.config import Settings
from ac_release.services import actions_identity
from ac_release.services.manager import LocalServices
from ac_release.services.sigstore_local import ACTIONS_TOKEN_PATH, LocalSigstore, check_actions_job_lifetime


def export_lines(settings: Settings, target: str, job: dict, environment: str | None, lifetime: int) -> list[str]:
    """Three `export` lines; the request token (a secret) is in the last one and nowhere else."""
    check_actions_job_lifetime(lifetime, "--lifetime")
    chosen = settings.target(target)
    if chosen.services is None or chosen.signing.instance == "local":
        why = (
            "it runs no services here"
            if chosen.services is None
            else "it signs with tokens the pipeline mints itself (signing instance = local)"
        )
        raise ReleaseError(f"target {chosen.name} has no Actions identity provider here: {why}; use staging")
    workflow, ref, repository, event, sha = (job[key] for key in ("workflow", "ref", "repository", "event", "sha"))
    workflow_file = settings.root / ".github" / "workflows" / workflow
    for wrong, message in (
        (
            not re.fullmatch(r"[\w.-]+\.ya?ml", workflow) or not workflow_file.is_file(),
            f"--workflow {workflow}: no such file in .github/workflows/ of the checkout",
        ),
        (not re.fullmatch(r"[\w.-]+/[\w.-]+", repository), f"--repository {repository}: expected OWNER/REPO"),
        (not re.fullmatch(r"refs/(heads|tags)/\S+", ref), f"--ref {ref}: expected refs/heads/BRANCH or refs/tags/TAG"),
        (not re.fullmatch(r"[a-z_]+", event), f"--event {event}: expected an event name, e.g. workflow_dispatch"),
        (sha is not None and not re.fullmatch(r"[0-9a-f]{40}", sha), f"--sha {sha}: expected a full commit id"),
    ):
        if wrong:
            raise ReleaseError(message)
    services = LocalServices(chosen.services)
    if not all(state.startswith("up") for state in services.status().values()):
        raise ReleaseError(
            f"the services of {chosen.name} are not running: run `invoke services.up --target {chosen.name}`"
        )
    actions_job = actions_identity.ActionsJob(
        repository=repository,
        workflow_file=workflow,
        workflow_name=actions_identity.workflow_name(workflow_file),
        ref=ref,
        sha=sha or head(settings.root),
        event_name=event,
        environment=chosen.name if environment is None else environment or None,
        run_id=actions_identity.new_run_id(),
    )
    state = services.sigstore_dir / "state"
    request_token = LocalSigstore(state).register_actions_job(actions_identity.job_claims(actions_job), lifetime)
    sigstore = next(service for service in services.services() if service.name == "sigstore")
    # With its query already: cosign appends `&audience=sigstore` to the URL as it is.
    url = f"{sigstore.url(chosen.services.host)}{ACTIONS_TOKEN_PATH}?api-version=2.0"
    return [
        "export GITHUB_ACTIONS=true",
        f"export ACTIONS_ID_TOKEN_REQUEST_URL={shlex.quote(url)}",
        f"export ACTIONS_ID_TOKEN_REQUEST_TOKEN={shlex.quote(request_token)}",
    ]
