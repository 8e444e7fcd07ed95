"""`invoke lines`: the release lines supported today as nightly.yml's job matrix; and step outputs of several
lines."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ac_release.clients.github_output import write_github_output
from ac_release.commands.ci_matrix import lines_matrix
from ac_release.core.errors import ReleaseError
from ac_release.model.catalog import Declared
from ac_release.model.support import read_support
from tests.helpers import REPO, write_config

INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]


SUPPORT = """
[lines."2.2.4"]
until = 2027-11-30
lts = true

[lines."2.3.0"]
until = 2026-06-30
"""


def _fleet(root: Path, support: str = SUPPORT) -> Declared:
    for line in ("2.3.0", "2.2.4", "notes"):
        (root / "wheel" / line).mkdir(parents=True)
    (root / "wheel" / "2.3.0" / "line.toml").write_text("")
    (root / "wheel" / "2.2.4" / "line.toml").write_text("")
    (root / "wheel" / "support.toml").write_text(support)
    (root / "products").mkdir()
    return Declared.under(root)


def test_every_directory_with_a_line_toml_is_a_line(tmp_path):
    assert lines_matrix(_fleet(tmp_path)) == {"include": [{"line": "2.2.4"}, {"line": "2.3.0"}]}


def test_scheduled_work_covers_the_lines_supported_that_day(tmp_path):
    fleet = _fleet(tmp_path)
    assert lines_matrix(fleet, dt.date(2026, 6, 30)) == {"include": [{"line": "2.2.4"}, {"line": "2.3.0"}]}
    assert lines_matrix(fleet, dt.date(2026, 7, 1)) == {"include": [{"line": "2.2.4"}]}
    with pytest.raises(ReleaseError, match=r"^no release line is supported on 2027-12-01: see .*support.toml$"):
        lines_matrix(fleet, dt.date(2027, 12, 1))


def test_a_line_without_a_support_entry_is_refused_naming_the_fix(tmp_path):
    fleet = _fleet(tmp_path, SUPPORT.split('[lines."2.3.0"]')[0])
    with pytest.raises(ReleaseError, match=r'release line 2.3.0 has no entry in .*support.toml: add \[lines."2.3.0"\]'):
        lines_matrix(fleet, dt.date(2026, 1, 1))


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('until = "2027-01-01"', "`until` must be a date"),
        ("until = 2027-01-01\nlts = 1", "`lts` must be true or false"),
        ("until = 2027-01-01\neol = 2027-01-01", "expected only `until`"),
        ("lts = true", "`until` must be a date"),
    ],
)
def test_a_malformed_support_entry_is_one_line(tmp_path, entry, problem):
    (tmp_path / "support.toml").write_text(f'[lines."2.2.4"]\n{entry}\n')
    with pytest.raises(ReleaseError, match=r'^support.toml \[lines."2.2.4"\]: ' + problem):
        read_support(tmp_path)


def test_no_line_is_refused(tmp_path):
    (tmp_path / "products").mkdir()
    with pytest.raises(ReleaseError, match=r"no release line: .* has no <airflow>/line.toml"):
        lines_matrix(Declared.under(tmp_path))


def test_every_line_of_the_repository_has_a_support_entry():
    lines = sorted(p.parent.name for p in REPO.glob("wheel/*/line.toml"))
    assert sorted(read_support(REPO / "wheel")) == lines


def _invoke(tmp_path: Path, *args: str, github_output: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_OUTPUT"}
    env["AC_RELEASE_CONFIG"] = str(write_config(tmp_path))
    if github_output:
        env["GITHUB_OUTPUT"] = str(github_output)
    return subprocess.run([*INVOKE, "lines", *args], capture_output=True, text=True, env=env, cwd=tmp_path)


def test_invoke_lines_prints_the_repositorys_lines_and_appends_the_step_output(tmp_path):
    output = tmp_path / "github_output"
    output.write_text("earlier=step\n")
    result = _invoke(tmp_path, "--github-output", github_output=output)
    assert (result.returncode, result.stderr) == (0, "")
    today = dt.datetime.now(dt.UTC).date()
    supported = [line for line, entry in sorted(read_support(REPO / "wheel").items()) if entry.supported_on(today)]
    assert supported, "the repository supports no line today: wheel/support.toml needs new dates"
    assert json.loads(result.stdout)["include"] == [{"line": line} for line in supported]
    assert output.read_text() == f"earlier=step\nmatrix={result.stdout}"
    every = _invoke(tmp_path, "--all")
    lines = sorted(p.parent.name for p in REPO.glob("wheel/*/line.toml"))
    assert json.loads(every.stdout)["include"] == [{"line": line} for line in lines]


def test_invoke_lines_github_output_outside_github_actions_is_one_line(tmp_path):
    result = _invoke(tmp_path, "--github-output")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "error: --github-output needs $GITHUB_OUTPUT (set by GitHub Actions in every step); unset here"
    ]


def _read_outputs(text: str) -> dict[str, str]:
    """The step outputs as the runner reads the file: `name=value`, or `name<<DELIMITER` ... `DELIMITER`."""
    outputs, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value = []
            for body in lines:
                if body == delimiter:
                    break
                value.append(body)
            else:
                raise AssertionError(f"{name}: delimiter {delimiter} never closes the value")
            outputs[name] = "\n".join(value)
        else:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


def test_a_value_of_several_lines_is_written_with_a_delimiter_no_line_of_it_can_end(tmp_path, monkeypatch):
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    body = "first=line\nEOF\nbody<<EOF\n```\n  indented\n"
    write_github_output({"build": "2.2.4-2", "body": body, "title": "a=b"})
    write_github_output({"body2": body})
    assert _read_outputs(output.read_text()) == {
        "build": "2.2.4-2",
        "body": body.rstrip("\n"),
        "title": "a=b",
        "body2": body.rstrip("\n"),
    }
