"""Release-line data: everything a line (`wheel/<airflow-version>/`) declares, read from one place."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import read_utf8
from ac_release.model.version import ACVersion

LINE_FILE = "line.toml"
LOCK_FILE = "constraints.txt"
BUILD_REQUIREMENTS_FILE = "build-requirements.txt"
PATCHES_DIR = "patches"
# A line's name, its Airflow version X.Y.Z: ASCII digits, no leading zeros, at most 4 digits each (version.MAX_DIGITS).
LINE_NAME = re.compile(r"(?:0|[1-9][0-9]{0,3})\.(?:0|[1-9][0-9]{0,3})\.(?:0|[1-9][0-9]{0,3})", re.ASCII)
_SERIES_FILE = re.compile(
    r"(?P<number>[0-9]{4})-(?P<slug>[a-z0-9][a-z0-9._-]*?)(?P<kind>\.patch|\.check\.py)", re.ASCII
)
# Names that look like they belong to the series (a number first, or a series suffix) must be well-formed.
_SERIES_LIKE = re.compile(r"[0-9].*|.*\.patch|.*\.check\.py")


@dataclass(frozen=True)
class Sdist:
    filename: str
    url: str
    sha256: str


@dataclass(frozen=True)
class ReleaseLine:
    directory: Path
    airflow: str
    release_date: dt.date
    lock_cutoff: dt.date
    build_python: str
    build_distro: str
    sdist: Sdist
    extras: tuple[str, ...]
    providers: Mapping[str, str]
    lock_requirements: tuple[str, ...]
    build_requirements: tuple[str, ...]
    build_tools: tuple[str, ...]
    tools_cutoff: dt.date
    # Where the lock lives: the line's directory for AC, whose providers the line declares; a product version with
    # providers of its own (Astro Runtime) has its lock in products/<product>/<version>/ (with_pins).
    lock_dir: Path | None = None
    lock_name: str = ""  # what `invoke lock` is given to regenerate it: the line, or the product version
    packages: tuple[str, ...] = ()  # a product version's own packages beside the providers (astronomer-providers)
    meta_pins: tuple[str, ...] = ()  # what its meta wheel pins besides the Airflow build: its providers and packages
    text: str = field(default="", repr=False, compare=False)  # line.toml as it was read (the wheel's fingerprint)

    @property
    def source_date_epoch(self) -> int:
        """Every artifact of the line carries the upstream release date (midnight UTC) as its timestamp."""
        midnight = dt.datetime.combine(self.release_date, dt.time(), tzinfo=dt.UTC)
        return int(midnight.timestamp())

    @property
    def all_extras(self) -> tuple[str, ...]:
        """The extras an AC install asks for: the plain extras plus one extra per provider."""
        return tuple(sorted({*self.extras, *self.providers}))

    @property
    def airflow_requirement(self) -> str:
        return f"apache-airflow[{','.join(self.all_extras)}]=={self.airflow}"

    @property
    def provider_requirements(self) -> tuple[str, ...]:
        return tuple(f"{provider_distribution(name)}=={version}" for name, version in sorted(self.providers.items()))

    @property
    def patches(self) -> tuple[Path, ...]:
        return tuple(sorted((self.directory / PATCHES_DIR).glob("[0-9][0-9][0-9][0-9]-*.patch")))

    @property
    def lock_file(self) -> Path:
        return (self.lock_dir or self.directory) / LOCK_FILE

    @property
    def line_lock_file(self) -> Path:
        """The line's own lock, whatever product version the line is seen through (`lock_file` is that version's)."""
        return self.directory / LOCK_FILE

    def with_pins(
        self, providers: dict[str, str], packages: tuple[str, ...], lock_dir: Path, cutoff: dt.date, name: str
    ) -> ReleaseLine:
        """The line as a product version installs it: its Airflow build with that version's providers and packages,
        locked in `lock_dir` as of `cutoff`. The Airflow wheel's inputs (sdist, patches, toolchain) stay the line's."""
        return dataclasses.replace(
            self,
            providers=MappingProxyType(dict(providers)),
            packages=tuple(packages),
            meta_pins=(*(f"{provider_distribution(n)}=={v}" for n, v in sorted(providers.items())), *packages),
            lock_cutoff=cutoff,
            lock_dir=lock_dir,
            lock_name=name,
        )

    @property
    def build_requirements_file(self) -> Path:
        return self.directory / BUILD_REQUIREMENTS_FILE


def provider_distribution(extra: str) -> str:
    """`cncf.kubernetes` -> `apache-airflow-providers-cncf-kubernetes`."""
    return "apache-airflow-providers-" + extra.replace(".", "-")


def known_lines(wheel_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in wheel_dir.glob(f"*/{LINE_FILE}"))


def load_line(wheel_dir: Path, version: ACVersion) -> ReleaseLine:
    if not (wheel_dir / version.airflow_version / LINE_FILE).is_file():
        raise no_line(wheel_dir, version)
    return read_line(wheel_dir, version.airflow_version)


def no_line(wheel_dir: Path, version: ACVersion) -> ReleaseError:
    known = ", ".join(known_lines(wheel_dir)) or "none"
    path = wheel_dir / version.airflow_version / LINE_FILE
    return ReleaseError(
        f"no release line for Airflow {version.airflow_version} ({version}): "
        f"known lines are {known}; add {path.relative_to(wheel_dir.parent)} to start a new line"
    )


def read_line(wheel_dir: Path, airflow: str) -> ReleaseLine:
    """The line wheel/<airflow>/ declares (its line.toml, read once, and its patch series checked)."""
    directory = wheel_dir / airflow
    path = directory / LINE_FILE
    text = read_utf8(path)
    try:
        data = tomllib.loads(text)
        line = ReleaseLine(
            directory=directory,
            airflow=data["airflow"],
            release_date=data["release_date"],
            lock_cutoff=data["lock_cutoff"],
            build_python=data["build_python"],
            build_distro=data["build_distro"],
            sdist=Sdist(**data["sdist"]),
            extras=tuple(data["extras"]),
            providers=MappingProxyType(dict(data["providers"])),
            lock_requirements=tuple(data.get("lock", {}).get("requirements", ())),
            build_requirements=tuple(data["build"]["requirements"]),
            build_tools=tuple(data["build"]["tools"]),
            tools_cutoff=data["build"]["tools_cutoff"],
            lock_name=data["airflow"],
            text=text,
        )
    except (KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseError(f"{path}: malformed line data ({exc!r}); compare with wheel/2.2.4/{LINE_FILE}") from exc
    if line.airflow != airflow:
        raise ReleaseError(
            f"{path} declares airflow = {line.airflow!r} but lives in {directory.name}/; fix one of them"
        )
    check_series(directory / PATCHES_DIR, wheel_dir.parent)
    return line


def check_series(patches: Path, root: Path) -> None:
    """The patch series of a line: NNNN-<slug>.patch files numbered from 0001 without gaps or duplicates, each a
    UTF-8 diff inside the source tree with its NNNN-<slug>.check.py beside it. Refused at load, before any build."""
    if not patches.is_dir():
        return

    def shown(path: Path) -> str:
        return path.relative_to(root).as_posix()

    numbers: dict[str, Path] = {}
    for path in sorted(patches.iterdir()):
        if not _SERIES_LIKE.fullmatch(path.name):
            continue
        match = _SERIES_FILE.fullmatch(path.name)
        if match is None or not path.is_file():
            raise ReleaseError(
                f"{shown(path)}: a series file is named NNNN-<slug>.patch or NNNN-<slug>.check.py "
                f"(4 digits, lowercase slug)"
            )
        stem = path.name.removesuffix(match["kind"])
        if match["kind"] == ".check.py":
            if not (patches / f"{stem}.patch").is_file():
                raise ReleaseError(f"{shown(path)} has no patch: add {shown(patches / (stem + '.patch'))} or remove it")
            continue
        check = patches / f"{stem}.check.py"
        if not check.is_file():
            raise ReleaseError(
                f"{shown(path)} has no check: add {shown(check)}, which passes only when the fix is in the "
                f"built Airflow"
            )
        if match["number"] in numbers:
            raise ReleaseError(
                f"{shown(path)}: number {match['number']} is also {numbers[match['number']].name}: "
                f"give each patch its own number"
            )
        expected = f"{len(numbers) + 1:04d}"
        if match["number"] != expected:
            raise ReleaseError(
                f"{shown(path)}: the series has no {expected}: number the patches 0001, 0002, ... without gaps"
            )
        numbers[match["number"]] = path
        check_patch(path, shown(path))


# -- a patch's headers: every file name and mode GNU patch acts on -----------------------------------------------

_REGULAR_MODES = ("100644", "100755")
_MODE_KINDS = {"120000": "a symlink", "160000": "a gitlink, a submodule"}
_MODE_LINE = re.compile(r"(?:old mode|new mode|deleted file mode|new file mode) (?P<mode>\S*)\s*")
_INDEX_LINE = re.compile(r"index [0-9a-f]+\.\.[0-9a-f]+(?: (?P<mode>\S*))?\s*", re.ASCII)
_NAME_LINE = re.compile(r"(?:rename from|rename to|copy from|copy to|Index:|\*\*\*|---|\+\+\+) (?P<name>.*)")
_BINARY_LINE = re.compile(r"GIT binary patch|Binary files .* differ")
_HUNK = re.compile(r"@@ -[0-9]+(?:,(?P<old>[0-9]+))? \+[0-9]+(?:,(?P<new>[0-9]+))? @@.*", re.ASCII)
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_NAME_CONTROL = re.compile("[\x00-\x1f\x7f]")
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def check_patch(path: Path, shown: str) -> None:
    """A patch's headers, read as GNU patch reads them: outside its hunks (read by their line counts), every line
    may be a header, the commit message's too. A patch changes regular files (100644, 100755) inside the source
    tree, named under a/ and b/; no symlink, gitlink, other mode or binary patch, nothing absolute or with `..`."""
    lines = [line.removesuffix("\r") for line in read_utf8(path, shown).split("\n")]
    has_file, has_hunk, index = False, False, 0
    while index < len(lines):
        line, following, number = lines[index], lines[index + 1] if index + 1 < len(lines) else "", index + 1
        if (hunk := _HUNK.fullmatch(line)) and has_file:
            has_hunk = True
            index = _hunk_end(lines, index + 1, int(hunk["old"] or 1), int(hunk["new"] or 1))
        elif line.startswith("--- ") and following.startswith("+++ "):
            has_file = True
            _check_file_header(line[4:], "a/", shown, number)
            _check_file_header(following[4:], "b/", shown, number + 1)
            index += 2
        else:
            _check_header_line(line, shown, number)
            index += 1
    if not has_hunk:
        raise ReleaseError(
            f"{shown} holds no diff (no ---/+++ file header with an @@ hunk): make it with git format-patch"
        )


def _hunk_end(lines: list[str], index: int, old: int, new: int) -> int:
    """Where a unified hunk of `old` and `new` lines ends. A line the counts do not allow ends it early: it is read
    as a header, so that a malformed hunk hides nothing."""
    while index < len(lines) and (old or new):
        line = lines[index]
        if (line == "" or line.startswith(" ")) and old and new:
            old, new = old - 1, new - 1
        elif line.startswith("-") and old:
            old -= 1
        elif line.startswith("+") and new:
            new -= 1
        elif not line.startswith("\\"):  # `\ No newline at end of file` counts for neither side
            break
        index += 1
    while index < len(lines) and lines[index].startswith("\\"):
        index += 1
    return index


def _check_header_line(line: str, shown: str, number: int) -> None:
    """A line outside the hunks that is not a ---/+++ pair: git's extended headers, or a lone name header."""
    if line.startswith("diff --git "):
        _check_git_names(line.removeprefix("diff --git "), shown, number)
    elif (mode := _MODE_LINE.fullmatch(line) or _INDEX_LINE.fullmatch(line)) and mode["mode"] is not None:
        _check_mode(mode["mode"], shown, number)
    elif _BINARY_LINE.fullmatch(line):
        raise ReleaseError(
            f"{shown}:{number}: a binary patch: a patch may change text files only; leave binary files out"
        )
    elif header := _NAME_LINE.fullmatch(line):
        name = _header_name(header["name"], shown, number)
        for reading in _readings(name) if name.text != "/dev/null" else []:
            _check_tree_path(reading, shown, number)


def _check_file_header(text: str, prefix: str, shown: str, number: int) -> None:
    """`--- a/x` or `+++ b/x`: under `patch -p1` the file x, inside the tree; or /dev/null."""
    _check_name(_header_name(text, shown, number), prefix, shown, number)


def _check_name(name: _Name, prefix: str, shown: str, number: int) -> None:
    if name.text == "/dev/null":
        return
    if not name.text.startswith(prefix):
        raise ReleaseError(
            f"{shown}:{number}: {name.text!r} is not under {prefix}: make the patch with git format-patch "
            f"(a/ and b/ prefixes)"
        )
    for reading in _readings(name):
        _check_tree_path(reading.removeprefix(prefix), shown, number)


def _check_git_names(text: str, shown: str, number: int) -> None:
    """`diff --git a/x b/y`: each name may be quoted; unquoted, a name with spaces makes the line ambiguous, so every
    way to split it is checked."""
    if text.startswith('"'):
        old, rest = _unquote(text, shown, number)
        splits = [(_Name(old, quoted=True), rest[1:])] if rest.startswith(" ") else []
    else:
        splits = [(_Name(text[:at], quoted=False), text[at + 1 :]) for at in range(len(text)) if _splits_at(text, at)]
    if not splits:
        raise ReleaseError(
            f"{shown}:{number}: cannot read the two file names of `diff --git`: make the patch with git format-patch"
        )
    for old, new in splits:
        _check_name(old, "a/", shown, number)
        _check_file_header(new, "b/", shown, number)


def _splits_at(text: str, at: int) -> bool:
    """An unquoted `diff --git` line may split between its names at a space before `b/` or a quoted name."""
    return text[at] == " " and text.startswith(("b/", '"'), at + 1)


@dataclass(frozen=True)
class _Name:
    text: str
    quoted: bool


def _header_name(text: str, shown: str, number: int) -> _Name:
    """A header's file name: git's C-style quoted form decoded, or an unquoted name up to a tab (a timestamp)."""
    if text.startswith('"'):
        name, _ = _unquote(text, shown, number)
        return _Name(name, quoted=True)
    return _Name(text.split("\t")[0], quoted=False)


def _readings(name: _Name) -> list[str]:
    """The names GNU patch may read: an unquoted name may end at any white space."""
    if name.quoted:
        return [name.text]
    return [name.text] + [name.text[:at] for at, char in enumerate(name.text) if char.isspace()]


def _unquote(text: str, shown: str, number: int) -> tuple[str, str]:
    """git's quoted name (`"a/\\303\\251\\t.py"`): its decoded text, and the text after the closing quote."""
    raw, at = bytearray(), 1
    while at < len(text) and text[at] != '"':
        if text[at] != "\\":
            raw += text[at].encode()
            at += 1
        elif octal := _OCTAL_ESCAPE.match(text, at):
            raw.append(int(octal[1], 8) & 0xFF)
            at += 4
        elif text[at + 1 : at + 2] in _C_ESCAPES:
            raw.append(_C_ESCAPES[text[at + 1]])
            at += 2
        else:
            break
    if at >= len(text) or text[at] != '"':
        raise ReleaseError(f"{shown}:{number}: malformed quoted file name {text}: make the patch with git format-patch")
    return raw.decode("utf-8", "replace"), text[at + 1 :]


def _check_tree_path(name: str, shown: str, number: int) -> None:
    """A file name under `patch -p1`: relative, with no `..` component, no control character."""
    if _NAME_CONTROL.search(name):
        raise ReleaseError(f"{shown}:{number}: file name {name!r} has a control character: rename the file")
    if name.startswith("/") or ".." in name.split("/"):
        raise ReleaseError(
            f"{shown}:{number}: patches {name}, outside the source tree: paths are relative to the sdist root"
        )


def _check_mode(mode: str, shown: str, number: int) -> None:
    if mode not in _REGULAR_MODES:
        kind = _MODE_KINDS.get(mode, "not a regular file's")
        raise ReleaseError(
            f"{shown}:{number}: file mode {mode} ({kind}): a patch may change regular files only "
            f"(100644 or 100755): leave that change out"
        )
