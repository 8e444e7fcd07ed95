"""`changelog/<airflow>.md`: one file per Airflow version, newest build first, a fixed set of sections.

# Astronomer Certified 2.2.4
## 2.2.4-1, 2026-11-22
### Bug Fixes
- ...
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import read_utf8
from ac_release.model.version import NIGHTLY_YEARS, ACVersion, ProductVersion

# "Upgrade Notes": what a user upgrading to the build must know first (providers it downgrades, say).
SECTIONS = ("Upgrade Notes", "Security", "Bug Fixes", "Features", "Improvements", "Dependencies")
_BUILD = re.compile(r"^## (?P<version>\S+), (?P<date>\S+)$")
_SECTION = re.compile(r"^### (?P<name>.+)$")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
UNDATED = "TBD"
# The years an entry may be dated: those of a nightly (a four-digit year a build machine can have).
ENTRY_YEARS = NIGHTLY_YEARS
# Tabs and newlines are text; other control characters (Cc: NUL, ESC, C1) and the Unicode line separators (Zl, Zp)
# are refused, and so are the invisible format characters (Cf: bidi controls that reorder what a reader sees,
# zero-width characters, the BOM, the soft hyphen).
_CONTROL_CATEGORIES = {"Cc", "Zl", "Zp"}
# Entries are GitHub release text and git tag messages. Outside code spans (`...`, closed on their line), GitHub
# renders as HTML a `<` directly followed by a letter, `/`, `!` or `?` (a tag, a closing tag, a comment or
# declaration, a processing instruction; an autolink too) and a character reference (`&#x202E;`); `a < b` and `<2.3`
# stay text. `@name` after anything but a letter, digit or `_` notifies that account (an e-mail address does not).
_RAW_HTML = re.compile(r"<[A-Za-z/!?][^\s>]*>?")
_CHARACTER_REFERENCE = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_MENTION = re.compile(r"(?<![A-Za-z0-9_])@(?P<name>[A-Za-z0-9][A-Za-z0-9-]*)")
_BACKTICKS = re.compile(r"`+")
_MARKUP = (
    (_RAW_HTML, "raw HTML {0!r}: GitHub would render it in the release text; write it in backticks or leave it out"),
    (_CHARACTER_REFERENCE, "HTML character reference {0!r}: write the character itself or put it in backticks"),
    (_MENTION, "{0} would notify that GitHub account from the release text: write it in backticks (`{0}`)"),
)


@dataclass(frozen=True)
class Entry:
    version: str
    date: str
    line: int
    sections: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def markdown(self) -> str:
        return "\n\n".join(f"### {name}\n" + "\n".join(items) for name, items in self.sections.items())


def parse(path: Path, airflow: str, title: str = "Astronomer Certified", version_of=ACVersion.parse) -> list[Entry]:
    """The entries of a changelog, newest first; any malformed line is refused naming file and line. AC's changelog of
    a line by default; a product's changelog of a series (`# Astro Runtime 4.2`, `## runtime-4.2.0, 2022-03-10`)
    with its `title` and its versions' parser."""
    where = f"changelog/{path.name}"
    lines = _read_lines(path, airflow, where)
    if not lines or lines[0] != f"# {title} {airflow}":
        raise ReleaseError(f"{where}:1: the first line must be `# {title} {airflow}`")
    entries: list[_Draft] = []
    section: list[str] | None = None
    for number, text in enumerate(lines[1:], start=2):
        if match := _BUILD.match(text):
            version = match["version"]
            try:
                parsed = version_of(version)
            except ReleaseError as exc:
                raise ReleaseError(f"{where}:{number}: {exc}") from None
            if parsed.series != airflow:
                raise ReleaseError(f"{where}:{number}: {version} does not belong in the changelog of {airflow}")
            if not is_date(match["date"]) and match["date"] != UNDATED:
                raise ReleaseError(
                    f"{where}:{number}: {version} is dated {match['date']!r}: write the date as YYYY-MM-DD "
                    f"(a real calendar date), or {UNDATED} until the release"
                )
            if is_date(match["date"]) and dt.date.fromisoformat(match["date"]).year not in ENTRY_YEARS:
                raise ReleaseError(
                    f"{where}:{number}: {version} is dated {match['date']}: entry dates are from "
                    f"{ENTRY_YEARS.start} to {ENTRY_YEARS.stop - 1}"
                )
            if any(e.version == version for e in entries):
                raise ReleaseError(f"{where}:{number}: duplicate entry for {version}")
            if entries and version_of(entries[-1].version) < parsed:
                raise ReleaseError(f"{where}:{number}: {version} is listed below {entries[-1].version}: newest first")
            entries.append(_Draft(version, match["date"], number, {}))
            section = None
        elif match := _SECTION.match(text):
            if not entries:
                raise ReleaseError(f"{where}:{number}: a section before the first `## <version>, <date>` heading")
            if match["name"] not in SECTIONS:
                raise ReleaseError(
                    f"{where}:{number}: unknown section {match['name']!r}: use one of {', '.join(SECTIONS)}"
                )
            section = entries[-1].sections.setdefault(match["name"], [])
        elif text.startswith("#"):
            raise ReleaseError(f"{where}:{number}: unexpected heading {text!r}")
        elif text.strip():
            if section is None:
                raise ReleaseError(f"{where}:{number}: text outside a section")
            if text.startswith("- "):
                if not text[2:].strip():
                    raise ReleaseError(f"{where}:{number}: empty bullet: write the entry after `- `")
                section.append(text)
            elif text.startswith("  ") and section:
                section[-1] += "\n" + text
            else:
                raise ReleaseError(f"{where}:{number}: entries are `- ` bullets")
    for entry in entries:
        empty = [name for name, items in entry.sections.items() if not items]
        if not entry.sections or empty:
            raise ReleaseError(
                f"{where}:{entry.line}: {entry.version} has an empty entry or section {empty or ''}".strip()
            )
    _check_date_order(entries, where)
    _check_release_text(lines, where)
    return [entry.frozen() for entry in entries]


def _check_date_order(entries: Sequence[_Draft], where: str) -> None:
    """Newest first: a build is dated no earlier than the one below it (TBD builds are not dated yet)."""
    dated = [entry for entry in entries if entry.date != UNDATED]
    for newer, older in itertools.pairwise(dated):
        if newer.date < older.date:  # YYYY-MM-DD sorts as the calendar does
            raise ReleaseError(
                f"{where}:{newer.line}: {newer.version} is dated {newer.date}, before {older.version} ({older.date}) "
                f"listed below it: a later build cannot be dated earlier; fix the dates"
            )


def _check_release_text(lines: list[str], where: str) -> None:
    """No raw HTML, character reference or @mention outside the code spans of a line."""
    for number, line in enumerate(lines, start=1):
        visible = _without_code_spans(line, where, number)
        found = [(m.start(), message.format(m[0])) for pattern, message in _MARKUP for m in pattern.finditer(visible)]
        if found:
            raise ReleaseError(f"{where}:{number}: {min(found)[1]}")


def _without_code_spans(line: str, where: str, number: int) -> str:
    """The line with its code spans blanked. As CommonMark reads them, a run of n backticks opens one and the next
    run of exactly n closes it; each must close on its own line, and not open with an escaped backtick, so that the
    line reads the same whatever paragraph GitHub makes of it."""
    visible, at = line, 0
    while opening := _BACKTICKS.search(line, at):
        closing = next((m for m in _BACKTICKS.finditer(line, opening.end()) if len(m[0]) == len(opening[0])), None)
        if closing is None or line[: opening.start()].endswith("\\"):
            raise ReleaseError(
                f"{where}:{number}: a code span that does not close on its line (column {opening.start() + 1}): "
                f"close each code span on the line it opens, without escaping its backticks"
            )
        visible = visible[: opening.start()] + " " * (closing.end() - opening.start()) + visible[closing.end() :]
        at = closing.end()
    return visible


@dataclass
class _Draft:
    """An entry while its lines are parsed."""

    version: str
    date: str
    line: int
    sections: dict[str, list[str]]

    def frozen(self) -> Entry:
        sections = MappingProxyType({name: tuple(items) for name, items in self.sections.items()})
        return Entry(self.version, self.date, self.line, sections)


def is_date(text: str) -> bool:
    """YYYY-MM-DD and a real calendar date; `date.fromisoformat` alone also takes 20261122 and 2026-W47-7."""
    try:
        return _DATE.fullmatch(text) is not None and dt.date.fromisoformat(text) is not None
    except ValueError:
        return False


def _read_lines(path: Path, airflow: str, where: str) -> list[str]:
    if not path.exists():
        raise ReleaseError(f"no changelog for Airflow {airflow}: add {path.name} to changelog/")
    if not path.is_file():
        raise ReleaseError(f"{where} is not a file: make it the changelog of Airflow {airflow}")
    text = read_utf8(path, where).replace("\r\n", "\n")
    _check_characters(text, where)
    return text.split("\n")


def _check_characters(text: str, where: str) -> None:
    for at, char in enumerate(text):
        category = unicodedata.category(char)
        if char in "\n\t" or category not in {*_CONTROL_CATEGORIES, "Cf"}:
            continue
        line = text.count("\n", 0, at) + 1
        if category == "Cf":
            name = unicodedata.name(char, "unnamed")
            raise ReleaseError(f"{where}:{line}: invisible character U+{ord(char):04X} ({name}): remove it")
        raise ReleaseError(f"{where}:{line}: control character U+{ord(char):04X}: remove it")


def release_entry_in(entries: Sequence[Entry], version: ACVersion | ProductVersion) -> Entry:
    """The entry of the build being released: present, dated (not TBD), well-formed."""
    name = version.changelog_name
    entry = next((e for e in entries if e.version == str(version)), None)
    if entry is None:
        raise ReleaseError(
            f"changelog/{name}.md has no entry for {version}: add `## {version}, YYYY-MM-DD` "
            f"with its sections before releasing"
        )
    if not is_date(entry.date):
        raise ReleaseError(
            f"changelog/{name}.md:{entry.line}: {version} is dated {entry.date!r}: "
            f"set the release date (YYYY-MM-DD) before releasing"
        )
    return entry


def dev_build_entry_in(entries: Sequence[Entry], version: ACVersion) -> Entry | None:
    return next((e for e in entries if e.version == f"{version.airflow_version}-{version.build}"), None)


def next_build_in(entries: Sequence[Entry], airflow: str) -> int:
    builds_in(entries, airflow)  # refuses a changelog without a build entry
    newest = entries[0]
    build = ACVersion.parse(newest.version).build
    return build if newest.date == UNDATED else build + 1


def builds(changelog_dir: Path, airflow: str) -> list[str]:
    """Every build of a line in its changelog, newest first."""
    return builds_in(parse(changelog_dir / f"{airflow}.md", airflow), airflow)


def builds_in(entries: Sequence[Entry], airflow: str) -> list[str]:
    if not entries:
        raise ReleaseError(f"changelog/{airflow}.md has no build entry (`## {airflow}-1, YYYY-MM-DD`)")
    return [entry.version for entry in entries]
