"""`invoke lines`: the release lines as nightly.yml's job matrix; and step outputs of several lines."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ac_release.clients.github_output import write_github_output
from ac_release.commands.ci_matrix import lines_matrix
from ac_release.core.errors import ReleaseError
from tests.helpers import REPO, write_config

INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]


def test_every_directory_with_a_line_toml_is_a_line(tmp_path):
    for line in ("2.3.0", "2.2.4", "notes"):
        (tmp_path / line).mkdir()
    (tmp_path / "2.3.0" / "line.toml").write_text("")
    (tmp_path / "2.2.4" / "line.toml").write_text("")
    assert lines_matrix(tmp_path) == {"include": [{"line": "2.2.4"}, {"line": "2.3.0"}]}


def test_no_line_is_refused(tmp_path):
    with pytest.raises(ReleaseError, match=r"no release line: .* has no <airflow>/line.toml"):
        lines_matrix(tmp_path)


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
    assert result.stdout == '{"include": [{"line": "2.2.4"}, {"line": "2.3.0"}]}\n'
    assert output.read_text() == 'earlier=step\nmatrix={"include": [{"line": "2.2.4"}, {"line": "2.3.0"}]}\n'
    lines = sorted(p.parent.name for p in REPO.glob("wheel/*/line.toml"))
    assert json.loads(result.stdout)["include"] == [{"line": line} for line in lines]


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
