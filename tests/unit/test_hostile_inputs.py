"""The hostile-input suite: every bad input a release engineer (or an attacker's file) can hand the CLI is refused
in exactly one line on stderr starting with `error: `, with a non-zero exit, and without changing anything under
the config's dist/, services and cache directories.

Each case runs the real CLI (`python -m invoke`) as a subprocess, with its own config, dist, services and cache
directories (each non-empty, so that a deletion would show). The cases run in parallel once per module; each one
is then reported as its own test. No case reaches Docker, the network or a local service: each is refused while
the inputs are read, and the config points the Docker CLI at a path that does not exist, so that a case that is
wrongly let through fails on its message instead of starting anything.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO, write_config
from tests.unit.conftest import HOSTILE_SUMMARY
from tests.unit.test_config import BAD_VALUES, PRODUCTION

INVOKE = [sys.executable, "-m", "invoke", "--search-root"]
DRY_RUN = ("release", "2.2.4-1", "--dry-run")
NO_DOCKER = 'docker = "/nonexistent/ac-release-hostile/docker"'
UNSET = None
# The production-like target of the secret cases: nothing answers at an .invalid host.
SECRET_TARGET = (('url = "https://pip.example.com/"', 'url = "https://pip.example.invalid/"'),)
V2 = b'{"schema": 2, "version": "2.2.4-1", "wheel": null, "targets": {}}'  # a valid manifest with no record yet


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    expect: str  # a part of the one error line: the case is refused for the reason it tests, not another
    config: tuple[tuple[str, str], ...] = ()  # (old, new) edits of the test config
    config_bytes: bytes | None = None  # the whole config file instead
    env: tuple[tuple[str, str | None], ...] = ()  # environment changes; `{dir}` is the case's directory
    repo: Callable[[Path], None] | None = None  # an edit of a committed copy of the repository (changelog, patches)
    files: tuple[tuple[str, bytes | None], ...] = ()  # files (None: a directory) made below the case's directory


# -- versions --------------------------------------------------------------------------------------------------

COMMANDS = [DRY_RUN[:1], ("status",), ("verify",), ("wheel",), ("sign",), ("publish",), ("build",)]
BAD_VERSIONS = [
    "",
    "v2.2.4-1",
    "2.2.4",
    "2.2.4-0",
    "2.2.4-01",
    "02.2.4-1",
    "2.02.4-1",
    "2.2.04-1",
    "2.2.4-10000",
    "10000.2.4-1",
    "2.2.4-99999999999999999999999",
    "2.2.4-" + "1" * 4400,
    "2" * 4400 + ".2.4-1",
    "２.2.4-1",
    "2.2.4-١",
    "2.2.4-1;id",
    "2.2.4-1$(id)",
    "2.2.4-1 ",
    " 2.2.4-1",
    "2.2.4-1\n",
    "2.2.4-1\nx",
    "2.2.4-dev",
    "2.2.4-1-dev-dev",
    "2.2.4-dev-1",
    "2.2.4--dev",
    "2.2.4-1-DEV",
    "2.2.4-1-rc1",
    "2.2.4.post1",
    "2.2.4+astro.1",
    "../2.2.4-1",
    "2.2.4-1/..",
    "2.2-1",
    "2.2.4.5-1",
    "2.2.4-1-dev0001010101",  # a nightly of year 1: read back as ...-dev1010101
    "2.2.4-1-dev9999123101",
]
VERSION_CASES = [
    Case(
        f"version-{number}-{COMMANDS[number % len(COMMANDS)][0]}",
        (*COMMANDS[number % len(COMMANDS)], version, *(("--dry-run",) if number % len(COMMANDS) == 0 else ())),
        "invalid AC version ",
    )
    for number, version in enumerate(BAD_VERSIONS)
] + [
    Case("version-unknown-line", ("wheel", "9.9.9-1"), "no release line for Airflow 9.9.9"),
    Case("version-unknown-line-dry-run", ("release", "3.0.0-1", "--dry-run"), "no release line for Airflow 3.0.0"),
    Case("lock-path-like-line", ("lock", "../2.2.4"), "no release line '../2.2.4'"),
    Case("lock-bad-line", ("lock", "2.2.4;id"), "no release line '2.2.4;id'"),
]

# -- flags and target names -----------------------------------------------------------------------------------

FLAG_CASES = [
    Case("flag-missing-version", ("release",), "did not receive required positional arguments: 'version'"),
    Case("flag-missing-version-wheel", ("wheel",), "did not receive required positional arguments: 'version'"),
    Case("flag-missing-line", ("lock",), "did not receive required positional arguments: 'line'"),
    Case("flag-unknown", ("release", "2.2.4-1", "--frobnicate"), "No idea what '--frobnicate' is!"),
    Case("flag-unknown-short", ("release", "-x", "2.2.4-1"), "No idea what "),
    Case("flag-dry-run-on-status", ("status", "2.2.4-1", "--dry-run"), "No idea what '--dry-run' is!"),
    Case("flag-target-without-value", ("release", "2.2.4-1", "--target"), "needed value and was not given one"),
    Case("flag-extra-positional", ("release", "2.2.4-1", "2.2.4-2", "--dry-run"), "No idea what '2.2.4-2' is!"),
    Case("flag-version-like-option", ("release", "-1"), "invalid AC version '-1'"),
    Case("flag-unknown-task", ("relaese", "2.2.4-1"), "No idea what 'relaese' is!"),
    Case("flag-unknown-stage", ("release", "2.2.4-1", "--stages", "images,tests"), "unknown stage 'tests': --stages"),
    Case("flag-empty-stages", ("release", "2.2.4-1", "--stages="), "--stages is empty: name one or more of"),
    Case("flag-unknown-flavour", (*DRY_RUN, "--flavour", "trixie"), "no flavour 'trixie' for Airflow 2.2.4"),
    Case(
        "flag-token-lifetime-zero", ("services.actions-env", "--lifetime", "0"), "--lifetime 0: give a positive number"
    ),
]
TARGET_CASES = [
    Case("target-empty", (*DRY_RUN, "--target", ""), "empty target name: choose one of local, production"),
    Case("target-empty-status", ("status", "2.2.4-1", "--target="), "empty target name"),
    Case("target-empty-wheel", ("wheel", "2.2.4-1", "--target", ""), "empty target name"),
    Case("target-unknown", (*DRY_RUN, "--target", "staging"), "unknown target 'staging'"),
    Case("target-option-like", (*DRY_RUN, "--target=-x"), "unknown target '-x'"),
    Case("target-path-like", (*DRY_RUN, "--target", "../local"), "unknown target '../local'"),
    Case("target-absolute-path", ("publish", "2.2.4-1", "--target", "/etc/passwd"), "unknown target '/etc/passwd'"),
    Case("target-case", ("verify", "2.2.4-1", "--target", "LOCAL"), "unknown target 'LOCAL'"),
    Case("target-trailing-space", ("sign", "2.2.4-1", "--target", "local "), "unknown target 'local '"),
    Case("target-newline", ("build", "2.2.4-1", "--target", "local\nx"), "unknown target 'local\\nx'"),
]

# -- release.toml ---------------------------------------------------------------------------------------------

CONFIG_COMMANDS = [DRY_RUN, ("status", "2.2.4-1"), ("services.status",), ("wheel", "2.2.4-1"), ("publish", "2.2.4-1")]
CONFIG_CASES = [
    Case(f"config-{number}-{message.split(':')[0]}", CONFIG_COMMANDS[number % len(CONFIG_COMMANDS)], message, (edit,))
    for number, (edit, message) in enumerate(BAD_VALUES)
] + [
    Case("config-not-toml", DRY_RUN, "not valid TOML", config_bytes=b"default_target = [\n"),
    Case("config-empty", ("status", "2.2.4-1"), "default_target: missing", config_bytes=b""),
    Case("config-not-utf8", ("services.status",), "not UTF-8", config_bytes=b'default_target = "\xff"\n'),
    Case(
        "config-top-level-types",
        DRY_RUN,
        "services: expected a table, got an integer",
        config_bytes=b'default_target = "local"\nservices = 1\ntargets = "x"\n',
    ),
    Case(
        "config-targets-not-a-table",
        DRY_RUN,
        "targets: expected a table of [targets.<name>] tables, got a string",
        config_bytes=b'default_target = "local"\ntargets = "x"\n'
        b'[services]\ndir = "s"\npypi_port = 1\nsigstore_port = 2\nregistry_port = 3\n',
    ),
    Case(
        "config-missing-tables",
        ("status", "2.2.4-1"),
        "targets: missing",
        config_bytes=b'default_target = "local"\n[services]\ndir = "s"\npypi_port = 1\nsigstore_port = 2\n'
        b"registry_port = 3\n",
    ),
    Case(
        "config-target-is-a-list",
        DRY_RUN,
        "targets.local: expected a table, got a list",
        config_bytes=b'default_target = "local"\ntargets = {local = [1]}\n'
        b'[services]\ndir = "s"\npypi_port = 1\nsigstore_port = 2\nregistry_port = 3\n',
    ),
    Case(
        "config-dist-dir-is-a-file",
        DRY_RUN,
        "dist_dir is not a directory",
        config=(('dist_dir = "{dir}/dist"', 'dist_dir = "{dir}/dist/keep.txt"'),),
    ),
    Case(
        "config-services-dir-is-a-file",
        ("services.status",),
        "services.dir is not a directory",
        config=(('dir = "{dir}/services"', 'dir = "{dir}/services/keep.txt"'),),
    ),
    Case(
        "config-cache-dir-is-a-file",
        ("status", "2.2.4-1"),
        "cache_dir is not a directory",
        config=(('cache_dir = "cache"', 'cache_dir = "{dir}/cache/keep.txt"'),),
        env=(("AC_RELEASE_CACHE", UNSET),),
    ),
    Case(
        "config-trust-config-option-like",
        DRY_RUN,
        "must not start with '-'",
        config=(('instance = "public"', 'instance = "custom"\ntrust_config = "--offline"'),),
    ),
    Case(
        "config-registry-newline",
        DRY_RUN,
        "control characters",
        config=(('registries = ["quay.io/astronomer/ap-airflow"]', 'registries = ["quay.io/a\\nb"]'),),
    ),
    Case(
        "config-registry-duplicate",
        DRY_RUN,
        "is listed twice",
        config=(('registries = ["quay.io/astronomer/ap-airflow"]', 'registries = ["quay.io/a/b", "quay.io/a/b"]'),),
    ),
    Case(
        "config-git-remote-password",
        DRY_RUN,
        "credentials do not belong in a URL",
        config=(('git_remote = "origin"', 'git_remote = "ssh://git:hunter2@github.com/a/b.git"'),),
    ),
    Case(
        "config-index-query",
        DRY_RUN,
        "the index URL takes no query or fragment",
        config=(('url = "https://pip.example.com/"', 'url = "https://pip.example.com/?token=x"'),),
    ),
    Case(
        "config-index-bad-port",
        DRY_RUN,
        "invalid port",
        config=(('url = "https://pip.example.com/"', 'url = "https://pip.example.com:99999/"'),),
    ),
    Case(
        "config-no-targets",
        DRY_RUN,
        "targets: no target",
        config_bytes=b'default_target = "local"\ntargets = {}\n'
        b'[services]\ndir = "s"\npypi_port = 1\nsigstore_port = 2\nregistry_port = 3\n',
    ),
    Case(
        "config-dist-dir-root",
        DRY_RUN,
        "dist_dir: '/' is the filesystem root",
        config=(('dist_dir = "{dir}/dist"', 'dist_dir = "/"'),),
    ),
    Case(
        "config-services-dir-root",
        ("services.status",),
        "services.dir: '/' is the filesystem root",
        config=(('dir = "{dir}/services"', 'dir = "/"'),),
    ),
    Case(
        "config-nested-too-deeply",
        ("status", "2.2.4-1"),
        "nested too deeply",
        config_bytes=b"x = " + b"[" * 3000 + b"]" * 3000 + b"\n",
    ),
]

# -- changelog (read by `invoke release` before anything starts) ------------------------------------------------


def _changelog(old: str | bytes, new: str | bytes) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / "changelog" / "2.2.4.md"
        old_b, new_b = (v.encode() if isinstance(v, str) else v for v in (old, new))
        content = path.read_bytes()
        assert content.count(old_b) == 1, old
        path.write_bytes(content.replace(old_b, new_b))

    return edit


def _remove(relative: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return edit


def _replace_with_directory(relative: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        (root / relative).unlink()
        (root / relative).mkdir()
        (root / relative / "keep").write_text("x")

    return edit


RELEASE = ("release", "2.2.4-1")
HEADING = "## 2.2.4-1, 2026-11-22"
CHANGELOG_CASES = [
    Case("changelog-date-basic-format", RELEASE, "dated '20261122'", repo=_changelog(HEADING, "## 2.2.4-1, 20261122")),
    Case("changelog-date-iso-week", RELEASE, "dated '2026-W47-7'", repo=_changelog(HEADING, "## 2.2.4-1, 2026-W47-7")),
    Case(
        "changelog-date-impossible", RELEASE, "dated '2026-02-30'", repo=_changelog(HEADING, "## 2.2.4-1, 2026-02-30")
    ),
    Case("changelog-date-time", RELEASE, "dated '2026-11-22T10:00'", repo=_changelog("2026-11-22", "2026-11-22T10:00")),
    Case("changelog-undated", RELEASE, "is dated 'TBD': set the release date", repo=_changelog("2026-11-22", "TBD")),
    Case(
        "changelog-missing-entry",
        RELEASE,
        "has no entry for 2.2.4-1",
        repo=_changelog(HEADING, "## 2.2.4-2, 2026-11-22"),
    ),
    Case("changelog-missing-file", RELEASE, "no changelog for Airflow 2.2.4", repo=_remove("changelog/2.2.4.md")),
    Case(
        "changelog-a-directory",
        RELEASE,
        "changelog/2.2.4.md is not a file",
        repo=_replace_with_directory("changelog/2.2.4.md"),
    ),
    Case("changelog-not-utf8", RELEASE, "not UTF-8 (byte 0xe9)", repo=_changelog("Deviation", b"D\xe9viation")),
    Case("changelog-nul-byte", RELEASE, "control character U+0000", repo=_changelog("Deviation", "Devi\x00ation")),
    Case("changelog-escape", RELEASE, "control character U+001B", repo=_changelog("Deviation", "\x1b[31mDeviation")),
    Case(
        "changelog-empty-bullet",
        RELEASE,
        "empty bullet",
        repo=_changelog("### Dependencies\n", "### Dependencies\n- \n"),
    ),
    Case(
        "changelog-huge-number",
        RELEASE,
        "at most 4 digits",
        repo=_changelog(HEADING, HEADING + "\n\n### Security\n- x\n\n## 2.2.4-" + "7" * 4400 + ", TBD"),
    ),
    Case(
        "changelog-unknown-section",
        RELEASE,
        "unknown section 'Fixes'",
        repo=_changelog("### Bug Fixes", "### Fixes"),
    ),
    Case(
        "changelog-first-line",
        RELEASE,
        "the first line must be `# Astronomer Certified 2.2.4`",
        repo=_changelog("# Astronomer Certified 2.2.4", "# Changelog"),
    ),
    Case(
        "changelog-text-outside-a-section",
        RELEASE,
        "text outside a section",
        repo=_changelog(HEADING + "\n", HEADING + "\nloose text\n"),
    ),
    Case(
        "changelog-duplicate-entry",
        RELEASE,
        "duplicate entry for 2.2.4-1",
        repo=_changelog(
            "### Dependencies", "### Dependencies\n- x\n\n" + HEADING + "\n\n### Security\n- y\n\n### Dependencies"
        ),
    ),
    Case("changelog-bidi-override", RELEASE, "U+202E", repo=_changelog("Deviation", "\u202eDeviation")),
    Case("changelog-zero-width", RELEASE, "invisible character U+200B", repo=_changelog("Deviation", "Dev\u200bi")),
    Case("changelog-c1-control", RELEASE, "control character U+009B", repo=_changelog("Deviation", "\x9bDeviation")),
    Case("changelog-raw-html", RELEASE, "raw HTML '<script>'", repo=_changelog("Deviation", "<script>x</script>")),
    Case("changelog-html-comment", RELEASE, "raw HTML '<!--'", repo=_changelog("Deviation", "<!-- hidden -->")),
    Case("changelog-character-reference", RELEASE, "character reference", repo=_changelog("Deviation", "&#x202E;")),
    Case("changelog-mention", RELEASE, "@octocat would notify", repo=_changelog("Deviation", "@octocat Deviation")),
    Case("changelog-unclosed-code-span", RELEASE, "does not close on its line", repo=_changelog("Deviation", "`Dev")),
    Case("changelog-year-0001", RELEASE, "dates are from 2000 to 2099", repo=_changelog("2026-11-22", "0001-11-22")),
    Case("changelog-year-9999", RELEASE, "dates are from 2000 to 2099", repo=_changelog("2026-11-22", "9999-11-22")),
    Case(
        "changelog-date-order",
        RELEASE,
        "2.2.4-2 is dated 2026-11-01, before 2.2.4-1 (2026-11-22)",
        repo=_changelog(HEADING, "## 2.2.4-2, 2026-11-01\n\n### Security\n- y\n\n" + HEADING),
    ),
]

# -- the patch series of a copied line (checked when the line loads) -------------------------------------------

PATCHES = "wheel/2.2.4/patches"
SERIES = f"{PATCHES}/0001-localfs-secrets-multiple-equals"


def _patches(*writes: tuple[str, bytes | str | None]) -> Callable[[Path], None]:
    """Write (name, content) below the patches directory; content None removes the file, `copy:NAME` copies one."""

    def edit(root: Path) -> None:
        for name, content in writes:
            path = root / PATCHES / name
            if content is None:
                path.unlink()
            elif isinstance(content, str) and content.startswith("copy:"):
                shutil.copy(root / PATCHES / content.removeprefix("copy:"), path)
            elif content == "dir":
                path.mkdir()
            else:
                path.write_bytes(content.encode() if isinstance(content, str) else content)

    return edit


def _patch_text(old: bytes, new: bytes) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / f"{SERIES}.patch"
        path.write_bytes(path.read_bytes().replace(old, new, 1))

    return edit


FIRST = "0001-localfs-secrets-multiple-equals"
PATCH_CASES = [
    Case("patch-without-check", DRY_RUN, "has no check", repo=_patches((f"{FIRST}.check.py", None))),
    Case("patch-check-without-patch", DRY_RUN, "has no patch", repo=_patches(("0002-x.check.py", "print('ok')\n"))),
    Case(
        "patch-not-a-diff",
        DRY_RUN,
        "holds no diff",
        repo=_patches(("0002-notes.patch", "some notes\n"), ("0002-notes.check.py", "print('ok')\n")),
    ),
    Case(
        "patch-gap",
        DRY_RUN,
        "the series has no 0002",
        repo=_patches(("0003-x.patch", f"copy:{FIRST}.patch"), ("0003-x.check.py", f"copy:{FIRST}.check.py")),
    ),
    Case(
        "patch-duplicate-number",
        DRY_RUN,
        "number 0001 is also",
        repo=_patches(("0001-again.patch", f"copy:{FIRST}.patch"), ("0001-again.check.py", f"copy:{FIRST}.check.py")),
    ),
    Case("patch-not-utf8", DRY_RUN, "not UTF-8 (byte 0xe9)", repo=_patch_text(b"Original author", b"Original \xe9")),
    Case(
        "patch-outside-the-tree",
        DRY_RUN,
        "outside the source tree",
        repo=_patch_text(b"+++ b/airflow/", b"+++ b/../../../etc/"),
    ),
    Case("patch-misnamed", DRY_RUN, "a series file is named NNNN-<slug>.patch", repo=_patches(("2-fix.patch", "x"))),
    Case(
        "patch-uppercase-slug", ("status", "2.2.4-1"), "a series file is named", repo=_patches(("0002-Fix.patch", "x"))
    ),
    Case("patch-a-directory", DRY_RUN, "a series file is named", repo=_patches(("0002-fix.patch", "dir"))),
    Case(
        "patch-git-quoted-dot-dot",
        DRY_RUN,
        "patches ../x, outside the source tree",
        repo=_patch_text(b"diff --git a/airflow/secrets/local_filesystem.py b/", b'diff --git "a/\\056\\056/x" b/'),
    ),
    Case(
        "patch-rename-outside",
        DRY_RUN,
        "patches ../../y, outside the source tree",
        repo=_patch_text(b"index d23969f", b"rename from airflow/x.py\nrename to ../../y\nindex d23969f"),
    ),
    Case(
        "patch-copy-outside",
        DRY_RUN,
        "patches ../y, outside the source tree",
        repo=_patch_text(b"index d23969f", b"copy from airflow/x.py\ncopy to ../y\nindex d23969f"),
    ),
    Case(
        "patch-new-symlink",
        DRY_RUN,
        "file mode 120000 (a symlink)",
        repo=_patch_text(b"index d23969f", b"new file mode 120000\nindex d23969f"),
    ),
    Case(
        "patch-gitlink",
        DRY_RUN,
        "file mode 160000 (a gitlink, a submodule)",
        repo=_patch_text(b"227a77c 100644", b"227a77c 160000"),
    ),
    Case(
        "patch-mode-777",
        DRY_RUN,
        "file mode 100777 (not a regular file's)",
        repo=_patch_text(b"index d23969f", b"old mode 100644\nnew mode 100777\nindex d23969f"),
    ),
    Case(
        "patch-binary",
        DRY_RUN,
        "a binary patch",
        repo=_patch_text(b"index d23969f..227a77c 100644\n", b"index d23969f..227a77c 100644\nGIT binary patch\n"),
    ),
    Case("patch-no-b-prefix", DRY_RUN, "is not under b/", repo=_patch_text(b"+++ b/airflow/", b"+++ airflow/")),
    Case(
        "patch-unterminated-quote",
        DRY_RUN,
        "malformed quoted file name",
        repo=_patch_text(b"+++ b/airflow/", b'+++ "b/airflow/'),
    ),
    Case(
        "patch-control-character-in-name",
        DRY_RUN,
        "has a control character",
        repo=_patch_text(b"+++ b/airflow/", b'+++ "b/air\\033flow/" b/airflow/'),
    ),
    Case(
        "line-toml-not-utf8",
        DRY_RUN,
        "line.toml:1: not UTF-8",
        repo=lambda root: (root / "wheel/2.2.4/line.toml").write_bytes(b"\xff\xfe"),
    ),
    Case(
        "line-toml-not-toml",
        ("status", "2.2.4-1"),
        "malformed line data",
        repo=lambda root: (root / "wheel/2.2.4/line.toml").write_text("airflow = [\n"),
    ),
]

# -- release.json -----------------------------------------------------------------------------------------------

MANIFEST = "dist/2.2.4-1/release.json"
MANIFEST_CASES = [
    Case(f"manifest-{name}-{args[0]}", args, expect, files=((MANIFEST, content),))
    for name, content, expect in [
        ("list", b"[]", "(a JSON list, not an object)"),
        ("empty-object", b"{}", "(no schema, version, wheel, targets)"),
        ("no-targets", b'{"schema": 2, "version": "2.2.4-1", "wheel": null}', "(no targets)"),
        ("not-utf8", b'{"schema": 2, "version": "2.2.4-\xff"}', "(not UTF-8: byte 0xff at offset 32)"),
        ("old-schema", b'{"schema": 1, "version": "2.2.4-1", "stages": {}}', "(no wheel, targets)"),
        ("wrong-schema", V2.replace(b'"schema": 2', b'"schema": 99'), "(schema 99, this pipeline reads schema 2)"),
        ("targets-list", V2.replace(b'"targets": {}', b'"targets": []'), "targets is not an object"),
        ("record-not-object", V2.replace(b'"targets": {}', b'"targets": {"local": {"sign": 1}}'), "is not an object"),
        ("unknown-stage", V2.replace(b'"targets": {}', b'"targets": {"local": {"x": {}}}'), "unknown stage 'x'"),
        ("wheel-record-malformed", V2.replace(b'"wheel": null', b'"wheel": {"inputs": 1}'), "is not a wheel record"),
        ("not-json", b"{", "(not JSON: "),
        ("empty-file", b"", "(not JSON: Expecting value"),
        ("null", b"null", "(a JSON null, not an object)"),
        ("a-directory", None, "(a directory)"),
        ("other-version", V2.replace(b"2.2.4-1", b"2.2.4-2"), "belongs to '2.2.4-2'"),
    ]
    for args in (DRY_RUN, ("status", "2.2.4-1"))
]

# -- environment ------------------------------------------------------------------------------------------------

ENV_CASES = [
    Case(
        "env-config-nowhere",
        DRY_RUN,
        "does not exist: point it at a release.toml",
        env=(("AC_RELEASE_CONFIG", "{dir}/missing.toml"),),
    ),
    Case("env-config-a-directory", ("status", "2.2.4-1"), "is a directory", env=(("AC_RELEASE_CONFIG", "{dir}"),)),
    Case(
        "env-config-empty", ("services.status",), "AC_RELEASE_CONFIG is set but empty", env=(("AC_RELEASE_CONFIG", ""),)
    ),
    Case("env-cache-empty", DRY_RUN, "AC_RELEASE_CACHE is set but empty", env=(("AC_RELEASE_CACHE", ""),)),
    Case(
        "env-cache-a-file",
        ("status", "2.2.4-1"),
        "is not a directory: name a directory or unset it",
        env=(("AC_RELEASE_CACHE", "{dir}/cache/keep.txt"),),
    ),
    Case(
        "env-password-env-unset",
        (*DRY_RUN, "--target", "production"),
        "secret not set: export AC_INDEX_PASSWORD",
        config=SECRET_TARGET,
        env=(("AC_INDEX_PASSWORD", UNSET),),
        files=((MANIFEST, V2),),
    ),
    Case(
        "env-password-env-empty",
        ("status", "2.2.4-1", "--target", "production"),
        "secret not set: export AC_INDEX_PASSWORD",
        config=SECRET_TARGET,
        env=(("AC_INDEX_PASSWORD", ""),),
        files=((MANIFEST, V2),),
    ),
    Case(
        "env-password-file-missing",
        (*DRY_RUN, "--target", "production"),
        "is missing",
        config=(*SECRET_TARGET, ('password_env = "AC_INDEX_PASSWORD"', 'password_file = "{dir}/no-such-password"')),
        files=((MANIFEST, V2),),
    ),
    Case(
        "env-password-file-readable-by-others",
        (*DRY_RUN, "--target", "production"),
        "is readable by others: run `chmod 600",
        config=(*SECRET_TARGET, ('password_env = "AC_INDEX_PASSWORD"', 'password_file = "{dir}/password"')),
        files=((MANIFEST, V2), ("password", b"hunter2\n")),
    ),
]

CASES = VERSION_CASES + FLAG_CASES + TARGET_CASES + CONFIG_CASES + CHANGELOG_CASES + PATCH_CASES + MANIFEST_CASES
CASES += ENV_CASES
assert len({case.id for case in CASES}) == len(CASES), "case ids are unique"


# -- running them ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    changed: list[str]
    seconds: float


def _snapshot(*roots: Path) -> dict[str, tuple[int, int, int]]:
    """Every path below the roots (and the roots) with its type, and a file's size and mtime: a write, a new file or
    a deletion changes it. A directory's own mtime is left out: a writing command's lock file (dist/<version>.lock)
    comes and goes. Git's own index cache (`git status` refreshes it) is not the pipeline's writing."""
    state = {}
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))] if root.exists() else [root]:
            if ".git" in path.relative_to(root).parts:
                continue
            try:
                info = path.lstat()
            except FileNotFoundError:
                state[str(path)] = (0, 0, 0)
                continue
            kind = stat.S_IFMT(info.st_mode)
            state[str(path)] = (kind, 0, 0) if kind == stat.S_IFDIR else (kind, info.st_size, info.st_mtime_ns)
    return state


def _base_repo(directory: Path) -> Path:
    """What a dry run and a release read from the repository: line data, changelog, images."""
    root = directory / "base-repo"
    for part in ("wheel", "changelog", "images", "products"):
        shutil.copytree(REPO / part, root / part)
    return root


def _committed_copy(base: Path, root: Path, edit: Callable[[Path], None]) -> None:
    shutil.copytree(base, root)
    edit(root)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "--quiet", str(root)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "hostile input"], check=True)


def _run(case: Case, directory: Path, base_repo: Path) -> Outcome:
    directory.mkdir()
    for part in ("dist/keep.txt", "dist/2.2.4-2/release.json", "services/keep.txt", "cache/keep.txt"):
        (directory / part).parent.mkdir(parents=True, exist_ok=True)
        (directory / part).write_text("keep\n")
    watched = [directory / "dist", directory / "services", directory / "cache"]
    root = REPO
    if case.repo is not None:
        root = directory / "repo"
        _committed_copy(base_repo, root, case.repo)
        watched.append(root)
    config = write_config(  # the cache: `directory / "cache"`, watched, as AC_RELEASE_CACHE names it
        directory, pypi_port=8765, sigstore_port=8766, registry_port=5000, root=root, cache_dir="cache"
    )
    text = config.read_text() + PRODUCTION
    for old, new in case.config:
        old, new = (part.replace("{dir}", str(directory)) for part in (old, new))
        assert text.count(old) == 1, f"{case.id}: {old!r} is not once in the config"
        text = text.replace(old, new)
    config.write_text(text.replace('docker = "auto"', NO_DOCKER))
    if case.config_bytes is not None:
        config.write_bytes(case.config_bytes)
    for relative, content in case.files:
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir() if content is None else path.write_bytes(content)
    if (directory / "password").exists():
        (directory / "password").chmod(0o644)  # a secret file others can read
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AC_", "SIGSTORE_"))}
    env |= {"AC_RELEASE_CONFIG": str(config), "AC_RELEASE_CACHE": str(directory / "cache"), "COLUMNS": "200"}
    for key, value in case.env:
        env.pop(key, None)
        if value is not None:
            env[key] = value.replace("{dir}", str(directory))
    before = _snapshot(*watched)
    started = time.monotonic()
    result = subprocess.run([*INVOKE, str(REPO), *case.args], capture_output=True, env=env, cwd=directory, timeout=120)
    seconds = time.monotonic() - started
    after = _snapshot(*watched)
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    return Outcome(
        result.returncode,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
        changed,
        seconds,
    )


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[str, Outcome]:
    """Every selected case, run in parallel once: the subprocesses wait on I/O and imports, so a few per core."""
    selected = {
        item.callspec.id
        for item in request.session.items
        if item.nodeid.startswith(request.node.nodeid) and hasattr(item, "callspec")
    }
    cases = [case for case in CASES if case.id in selected]
    directory = tmp_path_factory.mktemp("hostile")
    base_repo = _base_repo(directory)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 2)) as pool:
        futures = {case.id: pool.submit(_run, case, directory / f"case-{n}", base_repo) for n, case in enumerate(cases)}
        results = {case_id: future.result() for case_id, future in futures.items()}
    request.config.stash[HOSTILE_SUMMARY] = (len(cases), time.monotonic() - started)
    return results


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_refused_in_one_line_nothing_changed(outcomes, case):
    outcome = outcomes[case.id]
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.stderr[-2000:]
    assert case.expect in lines[0]
    assert outcome.returncode != 0
    assert outcome.changed == []


def test_the_suite_covers_every_kind_of_input():
    kinds = {case.id.split("-")[0] for case in CASES}
    assert kinds == {"version", "lock", "flag", "target", "config", "changelog", "patch", "line", "manifest", "env"}
    assert len(CASES) >= 100


def test_the_checks_can_fail(tmp_path):
    """The harness sees an accepted input (exit 0, no error line), and a write, a new file or a deletion."""
    base_repo = _base_repo(tmp_path)
    accepted = _run(Case("accepted", ("services.status",), ""), tmp_path / "accepted", base_repo)
    assert accepted.returncode == 0 and accepted.stderr == "" and "down" in accepted.stdout
    watched = tmp_path / "accepted" / "dist"
    before = _snapshot(watched)
    (watched / "keep.txt").write_text("changed\n")
    assert _snapshot(watched) != before
    before = _snapshot(watched)
    (watched / "keep.txt").unlink()
    assert _snapshot(watched) != before
    before = _snapshot(watched)
    (watched / "2.2.4-1.lock").write_text("")
    assert _snapshot(watched) != before
