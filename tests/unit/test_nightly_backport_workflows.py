"""nightly.yml and backport.yml pinned: triggers, jobs, permissions, inputs reaching `run:` only through `env:`,
and the exact commands (the run-step and matrix rules of every workflow are in test_workflow_shape.py)."""

import pytest
import yaml

from ac_release.commands.workflow_lint import WORKFLOWS as LINTED
from ac_release.commands.workflow_lint import actionlint_command, workflow_files, zizmor_command
from tests.helpers import REPO
from tests.unit.test_workflow_shape import BRANCH_GUARD_IF, DOWNLOAD, WORKFLOWS

NIGHTLY = REPO / ".github" / "workflows" / "nightly.yml"
BACKPORT = REPO / ".github" / "workflows" / "backport.yml"
CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683"
TARGET = "${{ inputs.target || 'production' }}"  # a scheduled run has no inputs


def load(path):
    # PyYAML reads the key `on` as True (YAML 1.1); the workflow means the string.
    workflow = yaml.safe_load(path.read_text())
    workflow["on"] = workflow.pop(True)
    return workflow


def commands(job: dict) -> list[str]:
    return [line for step in job["steps"] for line in step.get("run", "").splitlines()]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_is_interpolated_into_a_run_script(path):
    """Inputs, outputs and secrets reach a script only as environment variables: `${{ }}` in `run:` would paste a
    caller's text into the shell (a patch URL or a branch name holding `"; curl ...`)."""
    for job_id, job in yaml.safe_load(path.read_text())["jobs"].items():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), (job_id, step.get("name"))


def test_both_workflows_are_linted():
    linted = workflow_files(REPO / LINTED)
    assert {NIGHTLY, BACKPORT} <= {REPO / p for p in linted}
    assert {str(LINTED / "nightly.yml"), str(LINTED / "backport.yml")} <= set(actionlint_command(LINTED))
    assert str(LINTED) in zizmor_command(LINTED)  # the directory: every workflow in it


def test_backport_is_a_dispatch_with_line_and_patch_url():
    workflow = load(BACKPORT)
    assert workflow["on"] == {
        "workflow_dispatch": {
            "inputs": {
                "line": {"description": "release line (its Airflow version), e.g. 2.2.4", "required": True,
                         "type": "string"},
                "patch": {"description": "https URL of a `git format-patch` file, e.g. "
                          "https://github.com/apache/airflow/commit/<sha>.patch", "required": True, "type": "string"},
            }
        }
    }  # fmt: skip
    assert workflow["permissions"] == {}
    assert workflow["concurrency"] == {"group": "backport-${{ inputs.line }}", "cancel-in-progress": False}


def test_backport_downloads_backports_commits_dry_runs_then_opens_the_pull_request():
    (job_id, job), *others = load(BACKPORT)["jobs"].items()
    assert (job_id, others) == ("backport", [])
    # write access to push the branch, open the pull request and dispatch CI on it; no environment, so no release
    # secret
    assert job["permissions"] == {"contents": "write", "pull-requests": "write", "actions": "write"}
    assert "environment" not in job and "secrets." not in BACKPORT.read_text()
    steps = job["steps"]
    assert steps[0] == {"uses": CHECKOUT, "with": {"persist-credentials": False}}
    assert [s.get("id") for s in steps].count("backport") == 1
    patch_file = "${{ runner.temp }}/backport.patch"
    outputs = "${{ steps.backport.outputs.%s }}"
    assert [(s["run"].splitlines(), s["env"]) for s in steps[1:] if "env" in s] == [
        (
            [
                "curl --fail --silent --show-error --location --proto =https --proto-redir =https "
                '--max-filesize 1048576 --max-time 60 --output "$PATCH_FILE" "$PATCH_URL"'
            ],
            {"PATCH_URL": "${{ inputs.patch }}", "PATCH_FILE": patch_file},
        ),
        (
            ['.venv/bin/invoke backport "$LINE" "$PATCH_FILE" --github-output'],
            {"LINE": "${{ inputs.line }}", "PATCH_FILE": patch_file},
        ),
        (
            [
                'git switch --create "$BRANCH"',
                'git add -- "wheel/$LINE" "changelog/$LINE.md"',
                'git -c "user.name=github-actions[bot]" '
                '-c "user.email=41898282+github-actions[bot]@users.noreply.github.com" commit --message "$TITLE"',
            ],
            {"LINE": "${{ inputs.line }}", "BRANCH": outputs % "branch", "TITLE": outputs % "title"},
        ),
        (['.venv/bin/invoke release "$BUILD" --dry-run'], {"BUILD": outputs % "build"}),
        (
            [
                "gh auth setup-git",
                'git push origin "$BRANCH"',
                'gh pr create --base "$BASE" --head "$BRANCH" --title "$TITLE" --body "$BODY"',
                # its pull request gets CI: a dispatch starts a workflow where GITHUB_TOKEN's push and PR do not
                'gh workflow run ci.yml --ref "$BRANCH"',
            ],
            {
                "GH_TOKEN": "${{ github.token }}",  # the job's token, in the one step that talks to GitHub
                "BASE": "${{ github.ref_name }}",
                "BRANCH": outputs % "branch",
                "TITLE": outputs % "title",
                "BODY": outputs % "body",
            },
        ),
    ]
    assert DOWNLOAD.fullmatch(steps[2]["run"].strip())
    assert steps[1]["run"] == ".ci/bootstrap"
    assert [s.get("name", s.get("uses")).split()[0] for s in steps] == [
        CHECKOUT, "Set", "Download", "Backport", "Commit", "Release", "Push"
    ]  # fmt: skip


def test_nightly_runs_on_a_schedule_and_on_dispatch_to_production_or_staging():
    workflow = load(NIGHTLY)
    assert workflow["on"]["schedule"] == [{"cron": "30 2 * * *"}]
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert inputs["target"] | {"description": ""} == {
        "description": "", "required": True, "type": "choice", "options": ["production", "staging"],
        "default": "production",
    }  # fmt: skip
    assert inputs["dry_run"] | {"description": ""} == {
        "description": "",
        "required": False,
        "type": "boolean",
        "default": False,
    }
    assert set(inputs) == {"target", "dry_run"}
    assert workflow["permissions"] == {}
    assert workflow["concurrency"] == {"group": f"nightly-{TARGET}", "cancel-in-progress": False}


def test_nightly_computes_the_lines_then_runs_invoke_nightly_per_line():
    jobs = load(NIGHTLY)["jobs"]
    assert list(jobs) == ["lines", "nightly"]
    lines, nightly = jobs["lines"], jobs["nightly"]
    assert lines["permissions"] == {"contents": "read"} and "environment" not in lines
    # a dispatch from another branch stops first; a scheduled run (on the default branch, with no repository in
    # its event to compare with) is not refused
    assert lines["steps"][0]["if"] == f"github.event_name == 'workflow_dispatch' && {BRANCH_GUARD_IF}"
    assert "secrets." not in str(lines)
    assert commands(lines)[-1] == ".venv/bin/invoke lines --github-output"
    assert lines["outputs"] == {"matrix": "${{ steps.lines.outputs.matrix }}"}

    # signing only here, behind the target's environment, one line at a time per target
    assert nightly["needs"] == "lines"
    assert nightly["permissions"] == {"contents": "read", "id-token": "write"}
    assert nightly["environment"] == TARGET
    assert nightly["concurrency"] == {"group": f"nightly-${{{{ matrix.line }}}}-{TARGET}", "cancel-in-progress": False}
    assert nightly["strategy"] == {"fail-fast": False, "matrix": "${{ fromJSON(needs.lines.outputs.matrix) }}"}
    runs = {s["name"].split(" (")[0]: s for s in nightly["steps"] if "invoke" in s.get("run", "")}
    assert {name: (s["if"], s["run"]) for name, s in runs.items()} == {
        "Nightly build of the line": ("${{ !inputs.dry_run }}", '.venv/bin/invoke nightly "$LINE" --target "$TARGET"'),
        "Nightly dry run of the line": (
            "${{ inputs.dry_run }}",
            '.venv/bin/invoke nightly "$LINE" --target "$TARGET" --dry-run',
        ),
    }
    for step in runs.values():
        assert {k: step["env"][k] for k in ("LINE", "TARGET")} == {"LINE": "${{ matrix.line }}", "TARGET": TARGET}


def test_nightly_gets_the_secrets_release_yml_gives_its_publishing_jobs():
    release = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())["jobs"]
    (publishing,) = [s for s in release["images"]["steps"] if "--stages images" in s.get("run", "")]
    secrets = {k: v for k, v in publishing["env"].items() if "secrets." in v}
    steps = {s["name"].split(" (")[0]: s for s in load(NIGHTLY)["jobs"]["nightly"]["steps"] if "name" in s}
    assert {k: v for k, v in steps["Nightly build of the line"]["env"].items() if "secrets." in v} == secrets
    dry_run = {k: v for k, v in steps["Nightly dry run of the line"]["env"].items() if "secrets." in v}
    assert dry_run == secrets  # no identity token among them: signing asks GitHub Actions' provider
    (login,) = [s for s in release["images"]["steps"] if "docker login" in s.get("run", "")]
    assert steps["Log in to the registries"]["run"] == login["run"]
    assert steps["Log in to the registries"]["env"] == login["env"]
    login_if = steps["Log in to the registries"]["if"]
    assert login_if == "(inputs.target || 'production') == 'production' && !inputs.dry_run"


def test_the_ci_workflow_takes_the_dispatch_backport_makes_on_its_branch():
    """GitHub starts no workflow for a push or pull request made with GITHUB_TOKEN; ci.yml takes a dispatch on a ref."""
    triggers = load(REPO / ".github" / "workflows" / "ci.yml")["on"]
    assert set(triggers) == {"push", "pull_request", "workflow_dispatch"} and triggers["workflow_dispatch"] is None
