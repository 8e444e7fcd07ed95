"""The changelog validator: what a release refuses in changelog/<airflow>.md."""

import pytest

from ac_release.core.errors import ReleaseError
from ac_release.model.changelog import SECTIONS, builds, parse, release_entry_in
from ac_release.model.version import ACVersion
from tests.helpers import REPO

GOOD = """# Astronomer Certified 2.2.4

## 2.2.4-2, TBD

### Security
- Bump something.

## 2.2.4-1, 2026-11-22

### Bug Fixes
- A fix
  spanning two lines.

### Dependencies
- A pin.
"""


def _write(tmp_path, text):
    (tmp_path / "2.2.4.md").write_text(text)
    return tmp_path


def release_entry(changelog_dir, version):
    """The entry the release of an AC `version` takes from the changelog in `changelog_dir`."""
    return release_entry_in(parse(changelog_dir / f"{version.airflow_version}.md", version.airflow_version), version)


def test_repository_changelog_is_valid_and_has_the_release():
    entry = release_entry(REPO / "changelog", ACVersion.parse("2.2.4-1"))
    assert (entry.version, entry.date) == ("2.2.4-1", "2026-11-22")
    assert set(entry.sections) <= set(SECTIONS)
    assert builds(REPO / "changelog", "2.2.4")[0] == "2.2.4-1"


def test_builds_lists_every_build_newest_first(tmp_path):
    assert builds(_write(tmp_path, GOOD), "2.2.4") == ["2.2.4-2", "2.2.4-1"]
    (tmp_path / "2.2.4.md").write_text("# Astronomer Certified 2.2.4\n")
    with pytest.raises(ReleaseError, match=r"^changelog/2.2.4.md has no build entry"):
        builds(tmp_path, "2.2.4")


def test_entries_newest_first_with_their_sections(tmp_path):
    entries = parse(_write(tmp_path, GOOD) / "2.2.4.md", "2.2.4")
    assert [(e.version, e.date, list(e.sections)) for e in entries] == [
        ("2.2.4-2", "TBD", ["Security"]),
        ("2.2.4-1", "2026-11-22", ["Bug Fixes", "Dependencies"]),
    ]
    assert entries[1].markdown() == "### Bug Fixes\n- A fix\n  spanning two lines.\n\n### Dependencies\n- A pin."


def test_tbd_date_is_refused_at_release_time(tmp_path):
    with pytest.raises(ReleaseError) as error:
        release_entry(_write(tmp_path, GOOD), ACVersion.parse("2.2.4-2"))
    assert str(error.value) == (
        "changelog/2.2.4.md:3: 2.2.4-2 is dated 'TBD': set the release date (YYYY-MM-DD) before releasing"
    )


def test_missing_entry_is_refused_at_release_time(tmp_path):
    with pytest.raises(ReleaseError) as error:
        release_entry(_write(tmp_path, GOOD), ACVersion.parse("2.2.4-3"))
    assert str(error.value) == (
        "changelog/2.2.4.md has no entry for 2.2.4-3: add `## 2.2.4-3, YYYY-MM-DD` with its sections before releasing"
    )


def test_impossible_date_is_refused(tmp_path):
    with pytest.raises(ReleaseError, match=r"^changelog/2.2.4.md:8: 2.2.4-1 is dated '2026-13-01'"):
        release_entry(_write(tmp_path, GOOD.replace("2026-11-22", "2026-13-01")), ACVersion.parse("2.2.4-1"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("### Security", "### Fixes"),
            "changelog/2.2.4.md:5: unknown section 'Fixes': use one of Upgrade Notes, Security, Bug Fixes, Features, "
            "Improvements, Dependencies",
        ),
        (("## 2.2.4-2, TBD", "## 2.2.4-1, TBD"), "changelog/2.2.4.md:8: duplicate entry for 2.2.4-1"),
        (("- Bump something.\n", ""), "changelog/2.2.4.md:3: 2.2.4-2 has an empty entry or section ['Security']"),
        (("### Security\n- Bump something.\n", ""), "changelog/2.2.4.md:3: 2.2.4-2 has an empty entry or section"),
        (
            ("## 2.2.4-2, TBD", "## 2.2.3-2, TBD"),
            "changelog/2.2.4.md:3: 2.2.3-2 does not belong in the changelog of 2.2.4",
        ),
        (
            ("## 2.2.4-2, TBD", "## 2.2.4-0, TBD"),
            "changelog/2.2.4.md:3: invalid AC version '2.2.4-0': expected X.Y.Z-N (release, N >= 1 without leading "
            "zeros), X.Y.Z-N-dev (dev) or X.Y.Z-N-devYYYYMMDDKK (nightly), "
            "e.g. 2.2.4-1",
        ),
        (
            ("# Astronomer Certified 2.2.4", "# Changelog"),
            "changelog/2.2.4.md:1: the first line must be `# Astronomer Certified 2.2.4`",
        ),
        (("- A pin.", "A pin."), "changelog/2.2.4.md:15: entries are `- ` bullets"),
    ],
)
def test_malformed_changelogs_are_refused_naming_the_line(tmp_path, change, message):
    with pytest.raises(ReleaseError) as error:
        parse(_write(tmp_path, GOOD.replace(*change)) / "2.2.4.md", "2.2.4")
    assert str(error.value) == message


def test_older_build_above_a_newer_one_is_refused(tmp_path):
    swapped = (
        "# Astronomer Certified 2.2.4\n\n## 2.2.4-1, 2026-11-22\n\n### Security\n- x\n\n"
        "## 2.2.4-2, TBD\n\n### Security\n- y\n"
    )
    with pytest.raises(ReleaseError, match=r"^changelog/2.2.4.md:8: 2.2.4-2 is listed below 2.2.4-1: newest first$"):
        parse(_write(tmp_path, swapped) / "2.2.4.md", "2.2.4")


@pytest.mark.parametrize(
    "date", ["20261122", "2026-W47-7", "2026-02-30", "2026-11-22T00:00", "26-11-22", "２０２６-11-22"]
)
def test_dates_are_real_calendar_dates_written_yyyy_mm_dd(tmp_path, date):
    with pytest.raises(ReleaseError) as error:
        parse(_write(tmp_path, GOOD.replace("2026-11-22", date)) / "2.2.4.md", "2.2.4")
    assert str(error.value) == (
        f"changelog/2.2.4.md:8: 2.2.4-1 is dated {date!r}: write the date as YYYY-MM-DD (a real calendar date), "
        f"or TBD until the release"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("- A pin.", "- "), "changelog/2.2.4.md:15: empty bullet: write the entry after `- `"),
        (("- A pin.", "-   \t"), "changelog/2.2.4.md:15: empty bullet: write the entry after `- `"),
        (("- A pin.", "- A\x00pin."), "changelog/2.2.4.md:15: control character U+0000: remove it"),
        (("- A pin.", "- A\x1bpin."), "changelog/2.2.4.md:15: control character U+001B: remove it"),
        (("- A fix", "- A\u2028fix"), "changelog/2.2.4.md:11: control character U+2028: remove it"),
        (
            ("## 2.2.4-2, TBD", "## 2.2.4-" + "9" * 5000 + ", TBD"),
            "changelog/2.2.4.md:3: invalid AC version '2.2.4-99999999999999999999999999'… (5006 characters): "
            "X, Y, Z and N have at most 4 digits each (N from 1 to 9999), e.g. 2.2.4-1",
        ),
    ],
)
def test_empty_bullets_control_characters_and_huge_numbers_are_refused(tmp_path, change, message):
    with pytest.raises(ReleaseError) as error:
        parse(_write(tmp_path, GOOD.replace(*change)) / "2.2.4.md", "2.2.4")
    assert str(error.value) == message


def test_crlf_line_ends_are_read(tmp_path):
    entries = parse(_write(tmp_path, GOOD.replace("\n", "\r\n")) / "2.2.4.md", "2.2.4")
    assert [e.version for e in entries] == ["2.2.4-2", "2.2.4-1"]


def test_non_utf8_changelog_is_one_line(tmp_path):
    (tmp_path / "2.2.4.md").write_bytes(GOOD.replace("A pin.", "A pin \xe9.").encode("latin-1"))
    with pytest.raises(ReleaseError) as error:
        parse(tmp_path / "2.2.4.md", "2.2.4")
    assert str(error.value) == "changelog/2.2.4.md:15: not UTF-8 (byte 0xe9): save it as UTF-8"


def test_changelog_that_is_a_directory_is_one_line(tmp_path):
    (tmp_path / "2.2.4.md").mkdir()
    with pytest.raises(ReleaseError) as error:
        parse(tmp_path / "2.2.4.md", "2.2.4")
    assert str(error.value) == "changelog/2.2.4.md is not a file: make it the changelog of Airflow 2.2.4"


# -- release text (issue 29, item 9): entries become git tag messages and GitHub release text ------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("- A pin.", "- A \u202epin."),
            "changelog/2.2.4.md:15: invisible character U+202E (RIGHT-TO-LEFT OVERRIDE): remove it",
        ),
        (
            ("- A pin.", "- A \u2066pin.\u2069"),
            "changelog/2.2.4.md:15: invisible character U+2066 (LEFT-TO-RIGHT ISOLATE): remove it",
        ),
        (
            ("- A pin.", "- A\u200bpin."),
            "changelog/2.2.4.md:15: invisible character U+200B (ZERO WIDTH SPACE): remove it",
        ),
        (
            ("- A pin.", "- A\u200dpin."),
            "changelog/2.2.4.md:15: invisible character U+200D (ZERO WIDTH JOINER): remove it",
        ),
        (
            ("- A fix", "- A\ufefffix"),
            "changelog/2.2.4.md:11: invisible character U+FEFF (ZERO WIDTH NO-BREAK SPACE): remove it",
        ),
        (
            ("- A pin.", "- A\u061cpin."),
            "changelog/2.2.4.md:15: invisible character U+061C (ARABIC LETTER MARK): remove it",
        ),
        (("- A pin.", "- A\x9bpin."), "changelog/2.2.4.md:15: control character U+009B: remove it"),
    ],
    ids=["rlo", "isolate", "zero-width-space", "zero-width-joiner", "bom", "arabic-letter-mark", "c1-control"],
)
def test_invisible_and_control_characters_are_refused(tmp_path, change, message):
    with pytest.raises(ReleaseError) as error:
        parse(_write(tmp_path, GOOD.replace(*change)) / "2.2.4.md", "2.2.4")
    assert str(error.value) == message


HTML = "raw HTML {tag!r}: GitHub would render it in the release text; write it in backticks or leave it out"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("- A pin.", "- A <script>alert(1)</script> pin."), "changelog/2.2.4.md:15: " + HTML.format(tag="<script>")),
        (("- A pin.", '- A pin <img src="x">.'), "changelog/2.2.4.md:15: " + HTML.format(tag="<img")),
        (("- A pin.", "- A pin <!-- hidden -->."), "changelog/2.2.4.md:15: " + HTML.format(tag="<!--")),
        (
            ("  spanning two lines.", "  spanning </details> lines."),
            "changelog/2.2.4.md:12: " + HTML.format(tag="</details>"),
        ),
        (
            ("- A pin.", "- A pin &#x202E;."),
            "changelog/2.2.4.md:15: HTML character reference '&#x202E;': write the character itself or put it in "
            "backticks",
        ),
        (
            ("- A pin.", "- A pin, thanks @octocat."),
            "changelog/2.2.4.md:15: @octocat would notify that GitHub account from the release text: write it in "
            "backticks (`@octocat`)",
        ),
        (
            ("- A pin.", "- A pin (@apache/airflow-committers)."),
            "changelog/2.2.4.md:15: @apache would notify that GitHub account from the release text: write it in "
            "backticks (`@apache`)",
        ),
        (  # GitHub would pair it with a backtick of the next line: what is shown would depend on the paragraph
            ("- A pin.", "- A `pin.\n- B @octocat `."),
            "changelog/2.2.4.md:15: a code span that does not close on its line (column 5): close each code span on "
            "the line it opens, without escaping its backticks",
        ),
        (
            ("- A pin.", "- A \\`@octocat` pin."),
            "changelog/2.2.4.md:15: a code span that does not close on its line (column 6): close each code span on "
            "the line it opens, without escaping its backticks",
        ),
    ],
    ids=[
        "script",
        "img",
        "comment",
        "closing-tag-continuation",
        "character-reference",
        "mention",
        "team",
        "code-span-over-two-lines",
        "escaped-backtick",
    ],
)
def test_raw_html_and_mentions_are_refused(tmp_path, change, message):
    with pytest.raises(ReleaseError) as error:
        parse(_write(tmp_path, GOOD.replace(*change)) / "2.2.4.md", "2.2.4")
    assert str(error.value) == message


@pytest.mark.parametrize(
    "text",
    [
        "- Requires kubernetes < 12 and apache-airflow<2.3, a<=b, 1 <2.",
        "- The `<script>` tag and `@task` decorator, in backticks.",
        "- A ``double `<b>` span`` and ``` `@c` ```.",
        "- Mail humans@astronomer.io; a & b; apache/airflow#21694.",
    ],
    ids=["less-than", "backticks", "nested-backticks", "mail-and-ampersand"],
)
def test_text_that_github_shows_as_written_is_accepted(tmp_path, text):
    entries = parse(_write(tmp_path, GOOD.replace("- A pin.", text)) / "2.2.4.md", "2.2.4")
    assert entries[1].sections["Dependencies"] == (text,)


@pytest.mark.parametrize("date", ["0001-01-01", "9999-12-31", "1999-12-31", "2100-01-01"])
def test_dates_outside_2000_to_2099_are_refused(tmp_path, date):
    with pytest.raises(ReleaseError) as error:
        parse(_write(tmp_path, GOOD.replace("2026-11-22", date)) / "2.2.4.md", "2.2.4")
    assert str(error.value) == f"changelog/2.2.4.md:8: 2.2.4-1 is dated {date}: entry dates are from 2000 to 2099"


def test_a_later_build_dated_before_an_earlier_one_is_refused(tmp_path):
    text = GOOD.replace("## 2.2.4-2, TBD", "## 2.2.4-3, 2026-11-30\n\n### Security\n- z\n\n## 2.2.4-2, 2026-11-20")
    with pytest.raises(ReleaseError) as error:
        parse(_write(tmp_path, text) / "2.2.4.md", "2.2.4")
    assert str(error.value) == (
        "changelog/2.2.4.md:8: 2.2.4-2 is dated 2026-11-20, before 2.2.4-1 (2026-11-22) listed below it: "
        "a later build cannot be dated earlier; fix the dates"
    )


def test_builds_of_the_same_day_and_undated_ones_keep_their_order(tmp_path):
    text = GOOD.replace("## 2.2.4-2, TBD", "## 2.2.4-3, TBD\n\n### Security\n- z\n\n## 2.2.4-2, 2026-11-22")
    entries = parse(_write(tmp_path, text) / "2.2.4.md", "2.2.4")
    assert [(e.version, e.date) for e in entries] == [
        ("2.2.4-3", "TBD"),
        ("2.2.4-2", "2026-11-22"),
        ("2.2.4-1", "2026-11-22"),
    ]


def test_every_changelog_of_the_repository_is_valid(tmp_path):
    from ac_release.model.catalog import load_catalog
    from tests.helpers import write_config

    catalog = load_catalog(write_config(tmp_path))
    names = sorted(path.stem for path in (REPO / "changelog").glob("*.md"))
    assert names and all(catalog.entries(name) for name in names)
