"""What the workflows hand their jobs: no stored identity token, and each job only its own target's secrets.

The jobs of release.yml and nightly.yml are bound to the GitHub environment of their target (`staging`,
`production`), which holds that target's secrets under the same names as the other's: a job can only ever receive
its own target's. So every secret a step names is one each target uses (its release.toml settings, or a step run
for that target alone), and a secret one target alone uses is named only in a step run for that target alone."""

import re

import pytest
import yaml

from ac_release.model.config import load_settings
from tests.helpers import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
DEPLOY_TARGETS = ("staging", "production")
TARGET_ENVIRONMENTS = {"${{ inputs.target }}", "${{ inputs.target || 'production' }}"}
SECRET = re.compile(r"secrets\.([A-Za-z0-9_]+)")
ONLY_FOR = re.compile(r"inputs\.target(?: \|\| 'production'\))? == '(\w+)'")


def _secrets(value) -> set[str]:
    return set(SECRET.findall(str(value)))


def _configured(target: str) -> set[str]:
    """The environment variables release.toml reads this target's secrets from."""
    chosen = load_settings(REPO / "release.toml").target(target)
    secrets = [chosen.index.password, *(r.access.password for r in chosen.registries)]
    return {secret.env for secret in secrets if secret is not None and secret.env}


def _steps(workflow: dict):
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, job, step


def secret_problems(workflows: dict[str, dict]) -> list[str]:
    used = {target: _configured(target) for target in DEPLOY_TARGETS}
    for workflow in workflows.values():
        for _, _, step in _steps(workflow):
            if match := ONLY_FOR.search(str(step.get("if", ""))):
                used[match[1]] |= _secrets(step.get("env", {}))
    problems = []
    for name, workflow in workflows.items():
        for job_id, job, step in _steps(workflow):
            named = _secrets(step.get("env", {})) | _secrets(step.get("with", {})) | _secrets(step.get("run", ""))
            if not named:
                continue
            where = f"{name} {job_id} {step.get('name', step.get('run', ''))[:40]!r}"
            if job.get("environment") not in TARGET_ENVIRONMENTS:
                problems.append(f"{where}: names {sorted(named)} outside its target's environment")
            match = ONLY_FOR.search(str(step.get("if", "")))
            targets = [match[1]] if match else DEPLOY_TARGETS
            for secret in sorted(named):
                if not all(secret in used[target] for target in targets):
                    owners = [target for target in DEPLOY_TARGETS if secret in used[target]] or ["no target"]
                    problems.append(f"{where}: {secret} is {' and '.join(owners)}'s, the step runs for {targets}")
    return problems


def _workflows() -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in WORKFLOWS}


def test_each_job_gets_only_its_own_targets_secrets():
    assert secret_problems(_workflows()) == []


def test_the_check_finds_another_targets_secret_and_a_stored_identity_token():
    """The workflows as they were: every target's secrets in every job, and the identity token a secret."""
    workflows = _workflows()
    step = next(s for _, _, s in _steps(workflows["release.yml"]) if "--stages wheel" in s.get("run", ""))
    step["env"] |= {
        "AC_STAGING_INDEX_TOKEN": "${{ secrets.AC_STAGING_INDEX_TOKEN }}",
        "SIGSTORE_IDENTITY_TOKEN": "${{ secrets.SIGSTORE_IDENTITY_TOKEN }}",
    }
    problems = secret_problems(workflows)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "AC_STAGING_INDEX_TOKEN is no target's, the step runs for ('staging', 'production')",
        "SIGSTORE_IDENTITY_TOKEN is no target's, the step runs for ('staging', 'production')",
    ]
    del workflows["release.yml"]["jobs"]["plan"]["environment"]
    assert any("outside its target's environment" in p for p in secret_problems(workflows))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_workflow_reads_a_stored_identity_token(path):
    """Signing asks GitHub Actions' provider for a token each time; none is ever stored."""
    text = path.read_text()
    assert not re.search(r"SIGSTORE_ID(ENTITY)?_TOKEN|ID_TOKEN|secrets\.\w*TOKEN", text), path.name
