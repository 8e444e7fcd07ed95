"""`invoke backport <line> <patch>`: a `git format-patch` file joins a line's series, proven to apply.

The patch is refused, with nothing written, unless the line exists, its series and changelog are committed, the
file is a format-patch with a subject and a diff, no patch of the series makes the same change, and the whole series
with the new patch applies in order to the line's pristine hash-pinned sdist. Then three files are written: the
numbered patch, a check that fails until the maintainer fills it in (the wheel stage runs every check, so the
release cannot pass with it), and the bullet of the line's next build in the changelog, undated (the release
refuses an undated entry: that is the review gate).
"""

from __future__ import annotations

import email.policy
import re
import shlex
import shutil
import tarfile
import tempfile
import textwrap
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

from ac_release.building.patches import apply_series
from ac_release.building.sdist import fetch_sdist
from ac_release.clients import github_output as step_output
from ac_release.clients.git import git
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_bytes, atomic_write_text
from ac_release.model import changelog
from ac_release.model.changelog import UNDATED
from ac_release.model.config import Settings, load_settings
from ac_release.model.line import LINE_NAME, PATCHES_DIR, ReleaseLine, check_series, known_lines, load_line
from ac_release.model.version import ACVersion

UPSTREAM = "apache/airflow"
_SUBJECT_TAG = re.compile(r"^(?:\[[^\]]*\]\s*)+")  # `[PATCH v2 1/3] [astro] ` in front of the title
_PR = re.compile(r"\s*\(#(?P<number>[0-9]+)\)\s*$")
_CHERRY_PICK = re.compile(r"^\(cherry picked from commit (?P<sha>[0-9a-f]{7,40})\)\s*$", re.MULTILINE)
_DIFF_START = re.compile(r"^(?:diff --git |--- (?:a/|/dev/null))", re.MULTILINE)
_INDEX = re.compile(r"^index [0-9a-f]+\.\.[0-9a-f]+(?: [0-7]+)?$")
_HUNK = re.compile(r"^(@@ -[0-9,]+ \+[0-9,]+ @@).*$")
_MAIL_START = re.compile(r"^From [0-9a-f]{40} Mon Sep 17 00:00:00 2001$", re.MULTILINE)  # format-patch's mbox line

# The section of the changelog a subject goes to; the first rule that matches wins, Bug Fixes otherwise.
_SECTION_RULES = (
    ("Security", re.compile(r"\b(?:security|CVE-[0-9]{4}-[0-9]+|vulnerab\w*|XSS|CSRF)\b", re.IGNORECASE)),
    ("Dependencies", re.compile(r"^(?:bump|pin|upgrade|downgrade)\b", re.IGNORECASE)),
    ("Features", re.compile(r"^(?:add|support|allow|introduce|feat\w*)\b", re.IGNORECASE)),
    ("Improvements", re.compile(r"^(?:improve|speed up|optimi[sz]e|refactor)\b", re.IGNORECASE)),
)


@dataclass(frozen=True)
class FormatPatch:
    path: Path
    subject: str  # the commit title: `[PATCH]` tags, folding and RFC 2047 encoding undone
    message: str  # the commit message body, between the headers and the `---` line
    diff: str  # from the first `diff --git` to the end, format-patch's `-- ` signature left out

    @property
    def title(self) -> str:
        """The subject without a trailing `(#NNNNN)`."""
        return _PR.sub("", self.subject).strip()

    @property
    def upstream(self) -> str | None:
        """`apache/airflow#12345` from a subject ending in `(#12345)`, else `apache/airflow@<sha>` from a
        `(cherry picked from commit <sha>)` line; None for a fix of the fork itself."""
        if match := _PR.search(self.subject):
            return f"{UPSTREAM}#{match['number']}"
        if match := _CHERRY_PICK.search(self.message):
            return f"{UPSTREAM}@{match['sha'][:12]}"
        return None

    @property
    def change(self) -> str:
        """What the patch changes, for comparing two patches (see _normalized)."""
        return _normalized(self.diff)

    @property
    def slug(self) -> str:
        """A file name from the title, as `git format-patch` makes one: `Fix Resources __eq__ check` ->
        `fix-resources-eq-check`."""
        words = re.sub(r"[^a-z0-9]+", " ", self.title.lower()).split()
        slug = ""
        for word in words:
            if slug and len(slug) + 1 + len(word) > 52:
                break
            slug = f"{slug}-{word}" if slug else word[:52]
        return slug or "patch"


def read_patch(path: Path) -> FormatPatch:
    """A `git format-patch` file: mail headers with a Subject, the message, and a unified diff."""
    if not path.is_file():
        raise ReleaseError(f"{path}: no such file: pass a patch made by `git format-patch -1 <commit>`")
    data = path.read_bytes()
    head, separator, rest = data.partition(b"\n\n")
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(head + b"\n")
    subject = " ".join(str(headers.get("Subject") or "").split())
    try:
        text = rest.decode()
    except UnicodeDecodeError:
        raise ReleaseError(f"{path}: not a git format-patch file (not UTF-8 text)") from None
    diff_start = _DIFF_START.search(text)
    if not separator or not subject or diff_start is None or "\n@@ " not in text[diff_start.start() :]:
        missing = "Subject: header" if not separator or not subject else "unified diff"
        raise ReleaseError(
            f"{path}: not a git format-patch file (no {missing}): make one with `git format-patch -1 <commit>`"
        )
    if (mails := len(_MAIL_START.findall(data.decode(errors="replace")))) > 1:
        raise ReleaseError(f"{path}: holds {mails} patches (a series in one mbox): backport them one file at a time")
    message, diff = text[: diff_start.start()], _diff_part(text)
    title = _SUBJECT_TAG.sub("", subject).strip()
    if not title:
        raise ReleaseError(f"{path}: the Subject: header has no title after {subject!r}")
    return FormatPatch(path, title, message.split("\n---\n", 1)[0], diff)


def _diff_part(text: str) -> str:
    """From the first file header of the diff to its end, without format-patch's `-- \n<git version>` signature."""
    start = _DIFF_START.search(text)
    diff = text[start.start() :] if start else ""
    return re.split(r"^-- \n", diff, maxsplit=1, flags=re.MULTILINE)[0]


def _normalized(diff: str) -> str:
    """What a diff changes: the `---`/`+++` lines name the files, so the `diff ...` and `index ...` lines that tools
    write differently go, and so do the function names git prints after a hunk's line ranges."""
    lines = [
        _HUNK.sub(r"\1", line) for line in diff.splitlines() if not (_INDEX.match(line) or line.startswith("diff "))
    ]
    return "\n".join(lines).strip()


def section_for(subject: str) -> str:
    return next((name for name, rule in _SECTION_RULES if rule.search(subject)), "Bug Fixes")


@dataclass(frozen=True)
class Backport:
    line: ReleaseLine
    patch: FormatPatch
    number: int
    build: ACVersion  # the build whose changelog entry gets the bullet
    section: str
    bullet: str
    changelog_text: str  # the whole new changelog/<line>.md

    @property
    def name(self) -> str:
        return f"{self.number:04d}-{self.patch.slug}"

    @property
    def patch_path(self) -> Path:
        return self.line.directory / PATCHES_DIR / f"{self.name}.patch"

    @property
    def check_path(self) -> Path:
        return self.line.directory / PATCHES_DIR / f"{self.name}.check.py"


def backport(settings: Settings, line_name: str, patch_file: Path, log=print) -> Backport:
    """Check everything, then write the patch, its check scaffold and the changelog bullet; print what comes next."""
    _require_line(settings, line_name)
    _require_committed(settings.root, line_name)
    line = load_line(settings.wheel_dir, ACVersion.parse(f"{line_name}-1"))  # refuses a malformed series too
    patch = read_patch(patch_file)
    _refuse_duplicate(line, patch)
    number = 1 + max((int(p.name[:4]) for p in line.patches), default=0)
    name, section = f"{number:04d}-{patch.slug}", section_for(patch.title)
    bullet = _bullet(patch, name)
    build, text = _changelog_with(settings.root / "changelog", line.airflow, section, bullet)
    planned = Backport(line, patch, number, build, section, bullet, text)
    for path in (planned.patch_path, planned.check_path):
        if path.exists():
            raise ReleaseError(f"{path.relative_to(settings.root)} exists already: remove it or commit it first")
    check = check_scaffold(planned)
    _require_valid_series(settings, planned, check)
    applied = _prove_series_applies(settings, line, patch_file, planned.patch_path.name)

    atomic_write_bytes(planned.patch_path, patch_file.read_bytes())
    atomic_write_text(planned.check_path, check)
    atomic_write_text(settings.root / "changelog" / f"{line.airflow}.md", text)
    _report(settings.root, planned, applied, log)
    return planned


def _require_line(settings: Settings, name: str) -> None:
    if not LINE_NAME.fullmatch(name) or not (settings.wheel_dir / name / "line.toml").is_file():
        known = ", ".join(known_lines(settings.wheel_dir)) or "none"
        raise ReleaseError(
            f"no release line {name!r}: known lines are {known}; a new line starts with wheel/<airflow>/line.toml"
        )


def _require_committed(root: Path, line: str) -> None:
    """The series and the changelog are written by this command: start from their committed state, so that the
    diff it leaves is exactly the backport."""
    changes = git(root, "status", "--porcelain", "--untracked-files=all", "--", f"wheel/{line}", f"changelog/{line}.md")
    if changes:
        first = changes.splitlines()[0].strip()
        raise ReleaseError(
            f"the series of {line} has uncommitted changes ({first}): commit or stash wheel/{line}/ "
            f"and changelog/{line}.md before a backport"
        )


def _refuse_duplicate(line: ReleaseLine, patch: FormatPatch) -> None:
    for existing in line.patches:
        # A series member need not be a format-patch (a hand-made diff): compare its diff part all the same.
        if _normalized(_diff_part(existing.read_text(errors="replace"))) == patch.change:
            raise ReleaseError(
                f"{patch.path.name} makes the same change as wheel/{line.airflow}/patches/{existing.name} "
                f"(diffs compared without mail headers, diff and index lines): it is in the series already"
            )


def _require_valid_series(settings: Settings, planned: Backport, check: str) -> None:
    """The series with the new patch and its check, as load_line will read it: copied to a scratch tree, so that a
    patch the line would refuse (a path outside the source tree, ...) is refused now, with nothing written. A new
    line has no patches/ yet: its series starts with this patch."""
    with tempfile.TemporaryDirectory() as scratch:
        patches = Path(scratch) / planned.patch_path.parent.relative_to(settings.root)
        if (planned.line.directory / PATCHES_DIR).is_dir():
            shutil.copytree(planned.line.directory / PATCHES_DIR, patches)
        else:
            patches.mkdir(parents=True)
        shutil.copyfile(planned.patch.path, patches / planned.patch_path.name)
        (patches / planned.check_path.name).write_text(check)
        check_series(patches, Path(scratch))


def _prove_series_applies(settings: Settings, line: ReleaseLine, patch_file: Path, name: str) -> int:
    """Apply the series plus the new patch (under its series name) to the pristine sdist in a scratch directory.
    On failure the reject file the message names is kept in the cache; the repository is untouched."""
    sdist = fetch_sdist(line.sdist, settings.cache_dir)
    (settings.cache_dir / "work").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"backport-{line.airflow}-", dir=settings.cache_dir / "work"))
    try:
        with tarfile.open(sdist) as archive:
            archive.extractall(work, filter="data")
        (tree,) = work.iterdir()
        shutil.copyfile(patch_file, work / name)
        series = (*line.patches, work / name)
        apply_series(series, tree)  # rejects go to work/<patch>.rej
    except ReleaseError as exc:
        shutil.rmtree(tree, ignore_errors=True)
        (work / name).unlink(missing_ok=True)
        raise ReleaseError(f"{exc}; nothing was written") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return len(series)


def _bullet(patch: FormatPatch, name: str) -> str:
    what = f"Backport of {patch.upstream}: {patch.title}" if patch.upstream else patch.title
    text = f"- {what} (`patches/{name}.patch`)."
    return textwrap.fill(text, width=118, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)


def _changelog_with(directory: Path, airflow: str, section: str, bullet: str) -> tuple[ACVersion, str]:
    """The changelog with the patch's bullet in the undated entry of the line's next build: the newest entry when it
    is still undated (a second backport into the same build), else a new `## <line>-<N+1>, TBD` on top."""
    path = directory / f"{airflow}.md"
    entries = changelog.parse(path, airflow)
    if not entries:
        raise ReleaseError(f"changelog/{airflow}.md has no build entry: the line's first build is released by hand")
    lines = path.read_text().splitlines()
    newest = entries[0]
    if newest.date == UNDATED:
        build = ACVersion.parse(newest.version)
        lines = _add_to_entry(lines, newest.line - 1, section, bullet.splitlines())
    else:
        current = ACVersion.parse(newest.version)
        build = ACVersion(current.airflow, current.build + 1)
        entry = [f"## {build}, {UNDATED}", "", f"### {section}", *bullet.splitlines(), ""]
        lines[newest.line - 1 : newest.line - 1] = entry
    text = "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory() as scratch:  # what is written must read back as the changelog grammar says
        (Path(scratch) / path.name).write_text(text)
        changelog.parse(Path(scratch) / path.name, airflow)
    return build, text


def _add_to_entry(lines: list[str], heading: int, section: str, bullet: list[str]) -> list[str]:
    """Append the bullet to `section` of the entry whose heading is at index `heading`, adding the section (in the
    order of changelog.SECTIONS) when the entry has none."""
    end = next((i for i in range(heading + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    sections = {lines[i][4:]: i for i in range(heading + 1, end) if lines[i].startswith("### ")}
    if section in sections:
        start = sections[section]
        following = [i for i in sections.values() if i > start]
        stop = min(following, default=end)
        last = max(i for i in range(start, stop) if lines[i].strip())
        return lines[: last + 1] + bullet + lines[last + 1 :]
    later = [i for name, i in sections.items() if changelog.SECTIONS.index(name) > changelog.SECTIONS.index(section)]
    at = min(later, default=end)
    if at == end:  # after the entry's last text, before the blank lines that separate it from the next
        at = max(i for i in range(heading, end) if lines[i].strip()) + 1
        return lines[:at] + ["", f"### {section}", *bullet] + lines[at:]
    return lines[:at] + [f"### {section}", *bullet, ""] + lines[at:]


def check_scaffold(planned: Backport) -> str:
    what = planned.patch.title + (f" ({planned.patch.upstream})" if planned.patch.upstream else "")
    chunks = textwrap.wrap(what, width=90, drop_whitespace=False) or [what]
    literal = _literal(chunks[0]) if len(chunks) == 1 else "(\n" + "".join(f"    {_literal(c)}\n" for c in chunks) + ")"
    where = f"wheel/{planned.line.airflow}/patches/{planned.check_path.name}"
    return f'''"""Check for patch {planned.patch_path.name}: TO BE WRITTEN by the maintainer who backports it.

The wheel stage runs this with the python of a fresh venv holding the built Airflow. It must print `ok: ...` and
exit 0 only when the fix is in the installed Airflow, and print `missing: ...` and exit 1 when it is not. Exercise
the behaviour the patch changes (a function's result, not a grep of the source); no database, no network.
Until it is filled in it fails, and so does the release.
"""

import sys

WHAT = {literal}
CHECK = "{where}"


def main() -> int:
    # Replace these lines: import what the patch changes, call it, compare with the fixed behaviour.
    print(f"TODO: this check is not written yet: fill in {{CHECK}} to prove {{WHAT}} is in the installed Airflow")
    return 1


if __name__ == "__main__":
    sys.exit(main())
'''


def _literal(text: str) -> str:
    """A Python string literal as ruff format writes it: double quotes unless the text holds some."""
    literal = repr(text)
    return f'"{literal[1:-1]}"' if "'" not in text and '"' not in text else literal


def commit_message(planned: Backport) -> str:
    return f"Backport {planned.patch.upstream or planned.patch.title} to {planned.line.airflow} ({planned.build})"


def _report(root: Path, planned: Backport, applied: int, log) -> None:
    def rel(path: Path) -> str:
        return str(path.relative_to(root))

    changelog_file = f"changelog/{planned.line.airflow}.md"
    message = commit_message(planned)
    log(f"wrote {rel(planned.patch_path)}: the series of {applied} patches applies to {planned.line.sdist.filename}")
    log(f"wrote {rel(planned.check_path)}: it fails until you fill it in")
    log(
        f"wrote {changelog_file}: {planned.build}, {UNDATED}, {planned.section}: {' '.join(planned.bullet.split()[1:])}"
    )
    log("next:")
    log(f"  $EDITOR {rel(planned.check_path)}  # print ok: ... only when the fix is in the installed Airflow")
    log(f"  $EDITOR {changelog_file}  # review the {planned.build} entry, replace {UNDATED} with the release date")
    log(f"  invoke wheel {planned.build}  # builds the wheel and runs every check")
    log(
        f"  git add {rel(planned.patch_path)} {rel(planned.check_path)} {changelog_file} && "
        f"git commit -m {shlex.quote(message)}"
    )
    log(f"  invoke release {planned.build}")


def pull_request(planned: Backport, printed: list[str]) -> dict[str, str]:
    """What backport.yml commits and proposes: the build, a branch and a title, and a body carrying the command's
    output (what was written, what the maintainer still has to do)."""
    check = f"wheel/{planned.line.airflow}/{PATCHES_DIR}/{planned.check_path.name}"
    output = "\n".join(printed)
    body = f"""\
`invoke backport {planned.line.airflow}` added `{planned.patch_path.name}` to the series of {planned.line.airflow}:
the whole series applies to the pinned sdist. Its output:

```
{output}
```

This branch holds those three files, committed as they were written. Before {planned.build} can be released:

- [ ] fill in `{check}`: it fails until it proves the fix is in the installed Airflow, and so does the wheel stage;
- [ ] review the {planned.build} entry of `changelog/{planned.line.airflow}.md` and replace {UNDATED} with the release
date: the release refuses an undated entry, which is the expected state of a fresh backport;
- [ ] then `invoke release {planned.build}` (or dispatch release.yml with {planned.build}).

The workflow run's log shows the release dry run of {planned.build} from this branch: the plan of what it builds,
signs, uploads, pushes and tags.
"""
    return {
        "build": str(planned.build),
        "branch": f"backport/{planned.build}/{planned.name}",
        "title": commit_message(planned),
        "body": body,
    }


def backport_command(line: str, patch: str, github_output: bool) -> None:
    """`invoke backport`: the backport, and with `--github-output` the pull request of backport.yml (whose body
    carries what the command printed) appended to $GITHUB_OUTPUT."""
    if github_output:
        step_output.require_github_output()  # before anything is written
    printed: list[str] = []

    def log(text: str) -> None:
        print(text)
        printed.append(text)

    planned = backport(load_settings(), line, Path(patch).absolute(), log=log)
    if github_output:
        step_output.write_github_output(pull_request(planned, printed))
