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
        _check_diff(path, shown(path))


def _check_patched_path(header: str, shown: str, number: int) -> None:
    """`a/airflow/x.py` under `patch -p1` is `airflow/x.py`: never absolute, never climbing out with `..`."""
    target = header.split("\t")[0].strip()
    if target == "/dev/null":
        return
    parts = target.split("/")[1:]
    if target.startswith("/") or ".." in parts:
        raise ReleaseError(
            f"{shown}:{number}: patches {'/'.join(parts)}, outside the source tree: "
            f"paths are relative to the sdist root"
        )


def _check_diff(path: Path, shown: str) -> None:
    text = read_utf8(path, shown)
    lines = text.splitlines()
    has_file, has_hunk = False, False
    for number, (line, following) in enumerate(zip(lines, [*lines[1:], ""], strict=True), start=1):
        if line.startswith("--- ") and following.startswith("+++ "):
            has_file = True
            for offset, header in enumerate((line, following)):
                _check_patched_path(header[4:], shown, number + offset)
        elif line.startswith("@@ ") and has_file:
            has_hunk = True
    if not has_hunk:
        raise ReleaseError(
            f"{shown} holds no diff (no ---/+++ file header with an @@ hunk): make it with git format-patch"
        )
