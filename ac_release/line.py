"""Release-line data: everything a line (`wheel/<airflow-version>/`) declares, read from one place."""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ac_release.errors import ReleaseError
from ac_release.version import ACVersion

LINE_FILE = "line.toml"
LOCK_FILE = "constraints.txt"
BUILD_REQUIREMENTS_FILE = "build-requirements.txt"


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
    providers: dict[str, str]
    lock_requirements: tuple[str, ...]
    build_requirements: tuple[str, ...]
    build_tools: tuple[str, ...]
    tools_cutoff: dt.date

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
        return tuple(sorted((self.directory / "patches").glob("[0-9][0-9][0-9][0-9]-*.patch")))

    @property
    def lock_file(self) -> Path:
        return self.directory / LOCK_FILE

    @property
    def build_requirements_file(self) -> Path:
        return self.directory / BUILD_REQUIREMENTS_FILE


def provider_distribution(extra: str) -> str:
    """`cncf.kubernetes` -> `apache-airflow-providers-cncf-kubernetes`."""
    return "apache-airflow-providers-" + extra.replace(".", "-")


def known_lines(wheel_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in wheel_dir.glob(f"*/{LINE_FILE}"))


def load_line(wheel_dir: Path, version: ACVersion) -> ReleaseLine:
    directory = wheel_dir / version.airflow_version
    path = directory / LINE_FILE
    if not path.is_file():
        known = ", ".join(known_lines(wheel_dir)) or "none"
        raise ReleaseError(
            f"no release line for Airflow {version.airflow_version} (AC {version}): "
            f"known lines are {known}; add {path.relative_to(wheel_dir.parent)} to start a new line"
        )
    try:
        data = tomllib.loads(path.read_text())
        line = ReleaseLine(
            directory=directory,
            airflow=data["airflow"],
            release_date=data["release_date"],
            lock_cutoff=data["lock_cutoff"],
            build_python=data["build_python"],
            build_distro=data["build_distro"],
            sdist=Sdist(**data["sdist"]),
            extras=tuple(data["extras"]),
            providers=dict(data["providers"]),
            lock_requirements=tuple(data.get("lock", {}).get("requirements", ())),
            build_requirements=tuple(data["build"]["requirements"]),
            build_tools=tuple(data["build"]["tools"]),
            tools_cutoff=data["build"]["tools_cutoff"],
        )
    except (KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseError(f"{path}: malformed line data ({exc!r}); compare with wheel/2.2.4/{LINE_FILE}") from exc
    if line.airflow != version.airflow_version:
        raise ReleaseError(
            f"{path} declares airflow = {line.airflow!r} but lives in {directory.name}/; fix one of them"
        )
    return line
