"""`invoke backport <line> <patch>` through the real CLI, on a scratch repository whose line pins a small sdist that
is already in the cache (no network): what it writes, and every refusal (one line, exit 1, nothing written)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ac_release.commands.backport import _changelog_with, read_patch, section_for
from tests.helpers import REPO, write_config

INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]
SDIST = "apache-airflow-2.2.4-unit.tar.gz"
UPSTREAM = {
    "airflow/greeting.py": (
        "def greet(name):\n    return 'hello ' + name\n\n\ndef bye(name):\n    return 'bye ' + name\n"
    ),
    "airflow/parse.py": "def pair(line):\n    key, value = line.split('=', 2)\n    return key, value\n",
}
CHANGELOG = """# Astronomer Certified 2.2.4

## 2.2.4-1, 2026-11-22

### Bug Fixes
- The first fix.

### Dependencies
- A pin.
"""


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _sdist(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            info = tarfile.TarInfo(f"apache-airflow-2.2.4/{name}")
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
    return buffer.getvalue()


def format_patch(directory: Path, change: dict[str, str], subject: str, body: str = "", *options: str) -> Path:
    """A real `git format-patch` of `change` against the upstream tree, with the mail header git writes."""
    source = directory / f"source-{len(list(directory.glob('source-*')))}"
    source.mkdir(parents=True)
    _git(source, "init", "-q")
    for name, text in UPSTREAM.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    _git(source, "add", "-A")
    _git(source, "commit", "-qm", "upstream")
    for name, (old, new) in change.items():
        (source / name).write_text((source / name).read_text().replace(old, new))
    _git(source, "commit", "-qam", f"{subject}\n\n{body}".strip())
    (patch,) = _git(source, "format-patch", "-1", *options, "-o", str(directory)).split()
    return Path(patch)


FIRST = {"airflow/parse.py": ("line.split('=', 2)", "line.split('=', 1)")}
SECOND = {"airflow/greeting.py": ("return 'hello ' + name", "return 'hello ' + (name or 'world')")}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed repository with line 2.2.4 (pinning the small sdist, one patch in its series) and its changelog."""
    root = tmp_path / "repo"
    (root / "wheel" / "2.2.4" / "patches").mkdir(parents=True)
    (root / "changelog").mkdir()
    data = _sdist(UPSTREAM)
    (tmp_path / "cache" / "sdists").mkdir(parents=True)
    (tmp_path / "cache" / "sdists" / SDIST).write_bytes(data)
    line = (REPO / "wheel" / "2.2.4" / "line.toml").read_text()
    line = re.sub(r'(?m)^filename = ".*"$', f'filename = "{SDIST}"', line)
    line = re.sub(r'(?m)^url = ".*"$', 'url = "http://127.0.0.1:9/never-downloaded.tar.gz"', line)
    line = re.sub(r'(?m)^sha256 = ".*"$', f'sha256 = "{hashlib.sha256(data).hexdigest()}"', line)
    (root / "wheel" / "2.2.4" / "line.toml").write_text(line)
    first = format_patch(tmp_path / "patches", FIRST, "Split a pair on the first '=' only (#100)")
    (root / "wheel" / "2.2.4" / "patches" / "0001-split-a-pair.patch").write_bytes(first.read_bytes())
    (root / "wheel" / "2.2.4" / "patches" / "0001-split-a-pair.check.py").write_text("print('ok: split')\n")
    (root / "changelog" / "2.2.4.md").write_text(CHANGELOG)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "line 2.2.4")
    return root


def backport(tmp_path: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    config = write_config(tmp_path, root=root)
    env = {**os.environ, "AC_RELEASE_CONFIG": str(config), "AC_RELEASE_CACHE": str(tmp_path / "cache")}
    return subprocess.run([*INVOKE, "backport", *args], capture_output=True, text=True, env=env, cwd=tmp_path)


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.parts
    }


def test_backport_writes_the_numbered_patch_a_failing_check_and_the_undated_entry(tmp_path, repo):
    patch = format_patch(tmp_path / "patches", SECOND, "Greet the world when no name is given (#12345)")
    result = backport(tmp_path, repo, "2.2.4", str(patch))
    assert result.returncode == 0, result.stderr
    name = "0002-greet-the-world-when-no-name-is-given"
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        f"wrote wheel/2.2.4/patches/{name}.patch: the series of 2 patches applies to {SDIST}",
        f"wrote wheel/2.2.4/patches/{name}.check.py: it fails until you fill it in",
        "wrote changelog/2.2.4.md: 2.2.4-2, TBD, Bug Fixes: Backport of apache/airflow#12345: Greet the world when no "
        f"name is given (`patches/{name}.patch`).",
        "next:",
        f"  $EDITOR wheel/2.2.4/patches/{name}.check.py  # print ok: ... only when the fix is in the installed Airflow",
        "  $EDITOR changelog/2.2.4.md  # review the 2.2.4-2 entry, replace TBD with the release date",
        "  invoke wheel 2.2.4-2  # builds the wheel and runs every check",
        f"  git add wheel/2.2.4/patches/{name}.patch wheel/2.2.4/patches/{name}.check.py changelog/2.2.4.md && "
        "git commit -m 'Backport apache/airflow#12345 to 2.2.4 (2.2.4-2)'",
        "  invoke release 2.2.4-2",
    ]
    assert sorted(_git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()) == [
        " M changelog/2.2.4.md",
        f"?? wheel/2.2.4/patches/{name}.check.py",
        f"?? wheel/2.2.4/patches/{name}.patch",
    ]
    assert (repo / "wheel" / "2.2.4" / "patches" / f"{name}.patch").read_bytes() == patch.read_bytes()
    assert (repo / "changelog" / "2.2.4.md").read_text() == CHANGELOG.replace(
        "## 2.2.4-1,",
        "## 2.2.4-2, TBD\n\n### Bug Fixes\n- Backport of apache/airflow#12345: Greet the world when no name is given\n"
        f"  (`patches/{name}.patch`).\n\n## 2.2.4-1,",
    )
    check = repo / "wheel" / "2.2.4" / "patches" / f"{name}.check.py"
    ran = subprocess.run([sys.executable, str(check)], capture_output=True, text=True)
    assert ran.returncode == 1  # the wheel stage runs every check: an unfilled one fails the build
    assert ran.stdout.splitlines() == [
        f"TODO: this check is not written yet: fill in wheel/2.2.4/patches/{name}.check.py to prove Greet the world "
        "when no name is given (apache/airflow#12345) is in the installed Airflow"
    ]
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--line-length=120", str(check)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--line-length=120", str(check)],
        capture_output=True,
        text=True,
    )
    assert formatted.returncode == 0, formatted.stdout  # the repository's own lint passes once it is committed


def test_a_second_backport_joins_the_still_undated_build(tmp_path, repo):
    first = format_patch(tmp_path / "patches", SECOND, "Greet the world when no name is given (#12345)")
    assert backport(tmp_path, repo, "2.2.4", str(first)).returncode == 0
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "backport")
    second = format_patch(
        tmp_path / "patches",
        {"airflow/greeting.py": ("return 'bye ' + name", "return 'bye ' + name.title()")},
        "[PATCH] Add a title case farewell to the greeting module, which is a long subject for one line",
        "A fix of the fork.\n\n(cherry picked from commit 0123456789abcdef0123456789abcdef01234567)",
    )
    result = backport(tmp_path, repo, "2.2.4", str(second))
    assert result.returncode == 0, result.stderr
    name = "0003-add-a-title-case-farewell-to-the-greeting-module"
    assert (repo / "wheel" / "2.2.4" / "patches" / f"{name}.patch").is_file()
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "second backport")
    third = format_patch(tmp_path / "patches", {"airflow/parse.py": ("return key", "return key.strip()")}, "Strip keys")
    assert backport(tmp_path, repo, "2.2.4", str(third)).returncode == 0
    assert (repo / "changelog" / "2.2.4.md").read_text() == CHANGELOG.replace(
        "## 2.2.4-1,",
        """## 2.2.4-2, TBD

### Bug Fixes
- Backport of apache/airflow#12345: Greet the world when no name is given
  (`patches/0002-greet-the-world-when-no-name-is-given.patch`).
- Strip keys (`patches/0004-strip-keys.patch`).

### Features
- Backport of apache/airflow@0123456789ab: Add a title case farewell to the greeting module, which is a long subject
  for one line (`patches/0003-add-a-title-case-farewell-to-the-greeting-module.patch`).

## 2.2.4-1,""",
    )


def test_the_first_backport_into_a_new_line_makes_its_series(tmp_path, repo):
    """A new line (no patches/ yet, its first build's entry still undated): the fix becomes 0001 of a new series and
    joins the entry of build 1."""
    _git(repo, "rm", "-rq", "wheel/2.2.4/patches")
    first_build = "# Astronomer Certified 2.2.4\n\n## 2.2.4-1, TBD\n\n### Dependencies\n- A pin.\n"
    (repo / "changelog" / "2.2.4.md").write_text(first_build)
    _git(repo, "commit", "-qam", "a new line without a series")
    assert not (repo / "wheel" / "2.2.4" / "patches").exists()
    patch = format_patch(tmp_path / "patches", FIRST, "Split a pair on the first '=' only (#100)")
    result = backport(tmp_path, repo, "2.2.4", str(patch))
    assert (result.returncode, result.stderr) == (0, "")
    name = "0001-split-a-pair-on-the-first-only"
    first_line = f"wrote wheel/2.2.4/patches/{name}.patch: the series of 1 patches applies to {SDIST}"
    assert result.stdout.splitlines()[0] == first_line
    assert sorted(_git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()) == [
        " M changelog/2.2.4.md",
        f"?? wheel/2.2.4/patches/{name}.check.py",
        f"?? wheel/2.2.4/patches/{name}.patch",
    ]
    assert (repo / "changelog" / "2.2.4.md").read_text() == first_build.replace(
        "### Dependencies",
        "### Bug Fixes\n- Backport of apache/airflow#100: Split a pair on the first '=' only\n"
        f"  (`patches/{name}.patch`).\n\n### Dependencies",
    )


def _refused(tmp_path: Path, root: Path, *args: str) -> str:
    before, status = snapshot(root), _git(root, "status", "--porcelain", "--untracked-files=all")
    result = backport(tmp_path, root, *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert snapshot(root) == before and _git(root, "status", "--porcelain", "--untracked-files=all") == status
    return result.stderr.rstrip("\n")


@pytest.mark.parametrize("line", ["9.9.9", "2.2", "../wheel/2.2.4", ""])
def test_a_line_that_does_not_exist_is_refused(tmp_path, repo, line):
    patch = format_patch(tmp_path / "patches", SECOND, "Greet the world (#1)")
    assert _refused(tmp_path, repo, line, str(patch)) == (
        f"error: no release line {line!r}: known lines are 2.2.4; a new line starts with wheel/<airflow>/line.toml"
    )


def test_a_file_that_is_not_a_format_patch_is_refused(tmp_path, repo):
    patch = format_patch(tmp_path / "patches", SECOND, "Greet the world (#1)")
    text = patch.read_text()
    bare_diff = tmp_path / "bare.diff"
    bare_diff.write_text(text[text.index("diff --git") :])
    no_diff = tmp_path / "message.patch"
    no_diff.write_text(text[: text.index("diff --git")])
    binary = tmp_path / "binary.patch"
    binary.write_bytes(b"Subject: [PATCH] x\n\n\xff\xfe")
    cases = {
        bare_diff: "no Subject: header",
        no_diff: "no unified diff",
        binary: "not UTF-8 text",
    }
    for path, why in cases.items():
        message = _refused(tmp_path, repo, "2.2.4", str(path))
        assert message.startswith(f"error: {path}: not a git format-patch file ({why})"), message
    missing = tmp_path / "missing.patch"
    assert _refused(tmp_path, repo, "2.2.4", str(missing)) == (
        f"error: {missing}: no such file: pass a patch made by `git format-patch -1 <commit>`"
    )


def test_a_patch_already_in_the_series_is_refused_under_any_name(tmp_path, repo):
    # The same change, from another commit: other subject, author, date, file name and full index lines.
    again = format_patch(tmp_path / "again", FIRST, "Another title for the same fix", "", "--full-index")
    assert "index " in again.read_text() and again.name != "0001-split-a-pair.patch"
    assert _refused(tmp_path, repo, "2.2.4", str(again)) == (
        f"error: {again.name} makes the same change as wheel/2.2.4/patches/0001-split-a-pair.patch (diffs compared "
        "without mail headers, diff and index lines): it is in the series already"
    )


def test_a_change_already_in_the_series_as_a_plain_diff_is_refused(tmp_path, repo):
    member = repo / "wheel" / "2.2.4" / "patches" / "0001-split-a-pair.patch"
    text = member.read_text()
    member.write_text(text[text.index("diff --git") :].replace("diff --git", "diff -u", 1))  # no mail header
    _git(repo, "commit", "-qam", "a hand-made diff in the series")
    again = format_patch(tmp_path / "again", FIRST, "Split on the first equals sign")
    assert _refused(tmp_path, repo, "2.2.4", str(again)).startswith(
        f"error: {again.name} makes the same change as wheel/2.2.4/patches/0001-split-a-pair.patch"
    )


def test_a_file_holding_several_patches_is_refused(tmp_path, repo):
    first = format_patch(tmp_path / "one", SECOND, "Greet the world (#1)")
    second = format_patch(tmp_path / "two", {"airflow/parse.py": ("return key", "return key.strip()")}, "Strip keys")
    series = tmp_path / "series.mbox"
    series.write_bytes(first.read_bytes() + second.read_bytes())
    assert _refused(tmp_path, repo, "2.2.4", str(series)) == (
        f"error: {series}: holds 2 patches (a series in one mbox): backport them one file at a time"
    )


def test_a_patch_the_series_would_refuse_is_refused_before_anything_is_written(tmp_path, repo):
    outside = format_patch(tmp_path / "patches", SECOND, "Greet the world (#1)")
    text = outside.read_text()
    outside.write_text(text.replace("--- a/airflow/greeting.py", "--- a/../greeting.py"))
    number = outside.read_text().splitlines().index("--- a/../greeting.py") + 1
    assert _refused(tmp_path, repo, "2.2.4", str(outside)) == (
        f"error: wheel/2.2.4/patches/0002-greet-the-world.patch:{number}: patches ../greeting.py, outside the source "
        "tree: paths are relative to the sdist root"
    )


def test_a_patch_that_does_not_apply_is_refused_naming_the_rejected_hunk(tmp_path, repo):
    stale = format_patch(tmp_path / "patches", SECOND, "Greet the world (#1)")
    stale.write_text(stale.read_text().replace("-    return 'hello ' + name", "-    return 'hi ' + name"))
    message = _refused(tmp_path, repo, "2.2.4", str(stale))
    match = re.fullmatch(
        r"error: patch 0002-greet-the-world\.patch does not apply: airflow/greeting\.py: hunk #1 FAILED at line 1, "
        r"rejected hunk @@ -1,5 \+1,5 @@ \(full reject: (?P<reject>\S+)\); nothing was written",
        message,
    )
    assert match, message
    assert "+    return 'hello ' + (name or 'world')" in Path(match["reject"]).read_text()  # kept for the maintainer


def test_a_patch_that_conflicts_with_the_series_is_refused(tmp_path, repo):
    # Applies to the pristine sdist alone, but not after 0001, which changed the same line.
    other = format_patch(tmp_path / "patches", {"airflow/parse.py": ("'=', 2", "'=', maxsplit=2")}, "Use maxsplit")
    message = _refused(tmp_path, repo, "2.2.4", str(other))
    assert message.startswith("error: patch 0002-use-maxsplit.patch does not apply: airflow/parse.py: hunk #1 FAILED")


@pytest.mark.parametrize(
    "dirty",
    [
        "changelog/2.2.4.md",
        "wheel/2.2.4/patches/0001-split-a-pair.check.py",
        "wheel/2.2.4/patches/0002-untracked.patch",
    ],
)
def test_a_dirty_series_is_refused(tmp_path, repo, dirty):
    path = repo / dirty
    path.write_text((path.read_text() if path.exists() else "") + "\nuncommitted\n")
    patch = format_patch(tmp_path / "patches", SECOND, "Greet the world (#1)")
    code = "??" if dirty.endswith("untracked.patch") else "M"
    assert _refused(tmp_path, repo, "2.2.4", str(patch)) == (
        f"error: the series of 2.2.4 has uncommitted changes ({code} {dirty}): commit or stash wheel/2.2.4/ and "
        "changelog/2.2.4.md before a backport"
    )


@pytest.mark.parametrize(
    ("subject", "section"),
    [
        ("Fix Resources __eq__ check (#21442)", "Bug Fixes"),
        ("Check and disallow a relative path for sqlite (#22530)", "Bug Fixes"),
        ("Fix XSS in the trigger view (CVE-2022-12345)", "Security"),
        ("Bump Flask-AppBuilder to 3.4.5", "Dependencies"),
        ("Add the new Airflow Trove Classifier to setup.cfg (#22241)", "Features"),
        ("Improve the scheduler's query on task instances", "Improvements"),
    ],
)
def test_the_section_follows_the_subject(subject, section):
    assert section_for(subject) == section


def test_subject_reference_and_slug_of_a_real_upstream_patch():
    patch = read_patch(REPO / "tests" / "data" / "backport" / "0001-Fix-Resources-__eq__-check-21442.patch")
    assert (patch.subject, patch.title, patch.upstream, patch.slug) == (
        "Fix Resources __eq__ check (#21442)",
        "Fix Resources __eq__ check",
        "apache/airflow#21442",
        "fix-resources-eq-check",
    )
    assert patch.change.splitlines()[:2] == [
        "--- a/airflow/utils/operator_resources.py",
        "+++ b/airflow/utils/operator_resources.py",
    ]
    assert "\nindex " not in patch.change and "2.39" not in patch.change  # no index line, no format-patch signature


def test_a_section_the_pending_entry_lacks_goes_in_the_order_of_the_sections(tmp_path):
    (tmp_path / "2.2.4.md").write_text(
        "# Astronomer Certified 2.2.4\n\n## 2.2.4-2, TBD\n\n### Bug Fixes\n- A fix.\n\n"
        "## 2.2.4-1, 2026-11-22\n\n### Bug Fixes\n- The first fix.\n"
    )
    build, text = _changelog_with(tmp_path, "2.2.4", "Security", "- Escape the name.")
    assert str(build) == "2.2.4-2"
    assert text == (
        "# Astronomer Certified 2.2.4\n\n## 2.2.4-2, TBD\n\n### Security\n- Escape the name.\n\n### Bug Fixes\n"
        "- A fix.\n\n## 2.2.4-1, 2026-11-22\n\n### Bug Fixes\n- The first fix.\n"
    )


def test_github_output_carries_the_pull_request_with_the_commands_output(tmp_path, repo, monkeypatch):
    """backport.yml commits on `branch` with `title`, dry-runs `build` and opens the pull request with `body`."""
    from tests.unit.test_lines import _read_outputs

    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    patch = format_patch(tmp_path / "patches", SECOND, "Greet the world when no name is given (#12345)")
    result = backport(tmp_path, repo, "2.2.4", str(patch), "--github-output")
    assert result.returncode == 0, result.stderr
    outputs = _read_outputs(output.read_text())
    name = "0002-greet-the-world-when-no-name-is-given"
    assert {k: v for k, v in outputs.items() if k != "body"} == {
        "build": "2.2.4-2",
        "branch": f"backport/2.2.4-2/{name}",
        "title": "Backport apache/airflow#12345 to 2.2.4 (2.2.4-2)",
    }
    body = outputs["body"]
    assert f"```\n{result.stdout.rstrip()}\n```" in body  # the command's whole output, as it printed it
    assert f"- [ ] fill in `wheel/2.2.4/patches/{name}.check.py`" in body
    assert "replace TBD with the release\ndate: the release refuses an undated entry" in body
    assert "the expected state of a fresh backport" in body


def test_github_output_outside_github_actions_is_refused_before_anything_is_written(tmp_path, repo, monkeypatch):
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    patch = format_patch(tmp_path / "patches", SECOND, "Greet the world when no name is given (#12345)")
    assert _refused(tmp_path, repo, "2.2.4", str(patch), "--github-output") == (
        "error: --github-output needs $GITHUB_OUTPUT (set by GitHub Actions in every step); unset here"
    )
