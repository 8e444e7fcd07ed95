"""The AC version model: one input (`2.2.4-1`), every other spelling derived here and nowhere else."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from packaging.version import Version

from ac_release.core.errors import ReleaseError

ACCEPTED_FORMS = (
    "X.Y.Z-N (release, N >= 1 without leading zeros), X.Y.Z-N-dev (dev) or X.Y.Z-N-devYYYYMMDDKK "
    "(nightly), e.g. 2.2.4-1"
)
MAX_DIGITS = 4  # every number of a version: Python refuses int() of 4300+ digits, and nothing needs more than 4

# Anchored, ASCII digits only: anything else ("v2.2.4-1", "2.2.4-1;id", "2.2.4-01") is refused, never normalised.
_AC_VERSION = re.compile(
    r"(?P<airflow>(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*))"
    r"-(?P<build>[1-9][0-9]*)(?P<dev>-dev(?P<nightly>(?P<date>[0-9]{8})(?P<sequence>[0-9]{2}))?)?",
    re.ASCII,
)


def _shown(text: str) -> str:
    """The input as the message quotes it: whole when short, its start and length when huge."""
    return repr(text) if len(text or "") <= 40 else f"{text[:32]!r}… ({len(text)} characters)"


@dataclass(frozen=True, order=True)
class ACVersion:
    airflow: Version
    build: int
    dev: bool = False
    nightly: int = 0  # a nightly's dev number YYYYMMDDKK (date and sequence); 0 for a release or a plain dev build

    @classmethod
    def parse(cls, text: str) -> ACVersion:
        match = _AC_VERSION.fullmatch(text or "")
        if match is None:
            raise ReleaseError(f"invalid AC version {_shown(text)}: expected {ACCEPTED_FORMS}")
        if any(len(number) > MAX_DIGITS for number in (*match["airflow"].split("."), match["build"])):
            raise ReleaseError(
                f"invalid AC version {_shown(text)}: X, Y, Z and N have at most {MAX_DIGITS} digits each "
                f"(N from 1 to {10**MAX_DIGITS - 1}), e.g. 2.2.4-1"
            )
        if match["nightly"]:
            if not (is_day(match["date"]) and match["sequence"] != "00"):
                raise ReleaseError(
                    f"invalid AC version {_shown(text)}: a nightly is X.Y.Z-N-devYYYYMMDDKK with a real date of the "
                    f"years {NIGHTLY_YEARS.start} to {NIGHTLY_YEARS.stop - 1} and a sequence KK from 01 to 99, "
                    f"e.g. 2.2.4-2-dev2026120101"
                )
        return cls(Version(match["airflow"]), int(match["build"]), bool(match["dev"]), int(match["nightly"] or 0))

    @staticmethod
    def grammar_matches(text: str) -> bool:
        """Has `text` the shape of an AC version (whether or not its numbers are allowed)?"""
        return _AC_VERSION.fullmatch(text or "") is not None

    @classmethod
    def nightly_of(cls, airflow: str, build: int, date: dt.date, sequence: int) -> ACVersion:
        """The nightly `sequence` (1..99) of `date` for build N of a line: `2.2.4-2-dev2026120101`."""
        if not 1 <= sequence <= 99:
            raise ReleaseError(f"nightly sequence {sequence} is out of range: at most 99 nightlies a day")
        if date.year not in NIGHTLY_YEARS:
            raise ReleaseError(f"a nightly of {date} is out of range: {nightly_years()}")
        return cls(Version(airflow), build, True, int(f"{date:%Y%m%d}{sequence:02d}"))

    def __str__(self) -> str:
        dev = f"-dev{self.nightly}" if self.nightly else "-dev" if self.dev else ""
        return f"{self.airflow}-{self.build}{dev}"

    @property
    def nightly_date(self) -> str:
        """`20261201` for a nightly; empty otherwise."""
        return str(self.nightly)[:8] if self.nightly else ""

    @property
    def sequence(self) -> int:
        """A nightly's sequence of the day (1 for the first); 0 otherwise."""
        return self.nightly % 100

    @property
    def image_tag(self) -> str:
        """The prefix of every immutable image tag: `2.2.4-1`, `2.2.4-2-dev`, and for a nightly
        `2.2.4-nightly-20261201` (its first of the day) or `2.2.4-nightly-20261201.2`: no `+` in a Docker tag."""
        if not self.nightly:
            return str(self)
        suffix = f".{self.sequence}" if self.sequence > 1 else ""
        return f"{self.airflow}-nightly-{self.nightly_date}{suffix}"

    @property
    def airflow_version(self) -> str:
        """The upstream Airflow release the build patches: `2.2.4`."""
        return str(self.airflow)

    @property
    def wheel_version(self) -> str:
        """`apache-airflow` keeps its name and carries the build as a PEP 440 local version: `2.2.4+astro.1`."""
        local = f"astro.{self.build}" + (f".dev{self.nightly or ''}" if self.dev else "")
        return str(Version(f"{self.airflow}+{local}"))

    @property
    def meta_version(self) -> str:
        """`astronomer-certified` version: PEP 440's own normalisation of `2.2.4-1` (`2.2.4.post1`)."""
        return str(Version(str(self)))

    @property
    def git_tag(self) -> str:
        return f"v{self}"

    @property
    def dist_name(self) -> str:
        """Directory name under dist/ for this release."""
        return str(self)

    product = "certified"

    @property
    def release_key(self) -> tuple:
        """What orders the releases of the product: the line, then the build."""
        return (self.airflow, self.build)

    @property
    def series(self) -> str:
        """What its changelog covers: the line (`2.2.4`)."""
        return self.airflow_version

    @property
    def floating_fields(self) -> dict[str, str]:
        return {"airflow": self.airflow_version}

    @property
    def changelog_name(self) -> str:
        """Its changelog, changelog/<name>.md: one per line (`2.2.4`)."""
        return self.series

    @property
    def rank(self) -> int:
        """Its place among the releases its floating tags choose from: the build number of its line."""
        return self.build

    def sibling_pattern(self, suffix: str) -> re.Pattern:
        """Release tags of the same line and image (`2.2.4-<N><suffix>`); group 1 is their rank."""
        return re.compile(rf"{re.escape(self.airflow_version)}-([1-9][0-9]*){re.escape(suffix)}")


# The years a nightly's date may name: its number (YYYYMMDDKK) must read back the same, so a year of four digits
# (0001 would print as 1), and no date that cannot be today's on a machine building it.
NIGHTLY_YEARS = range(2000, 2100)


def nightly_years() -> str:
    return f"nightlies are dated from {NIGHTLY_YEARS.start} to {NIGHTLY_YEARS.stop - 1}"


def is_day(text: str) -> bool:
    """YYYYMMDD naming a real calendar day of a year a nightly may have (NIGHTLY_YEARS)."""
    try:
        day = dt.datetime.strptime(text, "%Y%m%d")
    except ValueError:
        return False
    return day.year in NIGHTLY_YEARS and f"{day:%Y%m%d}" == text


# A product version declared in data (products/<product>.toml): `runtime-4.2.0`. Plain X.Y.Z after the product's
# prefix, ASCII digits, no leading zeros; which versions exist is the product's table, not this grammar.
_SEMVER = re.compile(r"(?:0|[1-9][0-9]{0,3})\.(?:0|[1-9][0-9]{0,3})\.(?:0|[1-9][0-9]{0,3})", re.ASCII)


@dataclass(frozen=True, order=True)
class ProductVersion:
    """A release of a product whose versions are declared in data: `runtime-4.2.0` names Runtime 4.2.0, built on the
    line and line build its table gives (Airflow 2.2.4, build 1: `apache-airflow==2.2.4+astro.1`). It answers the
    same questions as ACVersion, so the stages ask a version and never which product it belongs to."""

    number: Version
    prefix: str
    product: str
    airflow: Version
    build: int
    dev: bool = False  # dev builds and nightlies are AC's alone
    nightly: int = 0

    @staticmethod
    def number_of(text: str, prefix: str) -> Version | None:
        rest = text.removeprefix(prefix) if text.startswith(prefix) else None
        return Version(rest) if rest is not None and _SEMVER.fullmatch(rest) else None

    def __str__(self) -> str:
        return f"{self.prefix}{self.number}"

    @property
    def image_tag(self) -> str:
        return str(self.number)

    @property
    def airflow_version(self) -> str:
        return str(self.airflow)

    @property
    def wheel_version(self) -> str:
        """The line build it installs: the same `2.2.4+astro.1` as AC 2.2.4-1's."""
        return str(Version(f"{self.airflow}+astro.{self.build}"))

    @property
    def meta_version(self) -> str:
        return str(self.number)

    @property
    def git_tag(self) -> str:
        return f"{self.prefix}v{self.number}"

    @property
    def dist_name(self) -> str:
        return str(self)

    @property
    def minor(self) -> str:
        return f"{self.number.major}.{self.number.minor}"

    @property
    def floating_fields(self) -> dict[str, str]:
        return {"airflow": self.airflow_version, "major": str(self.number.major), "minor": str(self.number.minor)}

    @property
    def release_key(self) -> tuple:
        """What orders the releases of the product: the version."""
        return (self.number,)

    @property
    def series(self) -> str:
        """What its changelog covers: its minor (`4.2`)."""
        return self.minor

    @property
    def changelog_name(self) -> str:
        """Its changelog, changelog/<name>.md: one per minor (`runtime-4.2`)."""
        return f"{self.prefix}{self.minor}"

    @property
    def rank(self) -> int:
        """Its place among the releases its floating tags choose from: the patch of its minor."""
        return self.number.micro

    def sibling_pattern(self, suffix: str) -> re.Pattern:
        """Release tags of the same floating group and image (`4.2.<patch><suffix>`); group 1 is their rank."""
        return re.compile(rf"{self.number.major}\.{self.number.minor}\.((?:0|[1-9][0-9]*)){re.escape(suffix)}")
