"""The AC version model: one input (`2.2.4-1`), every other spelling derived here and nowhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import Version

from ac_release.errors import ReleaseError

ACCEPTED_FORMS = "X.Y.Z-N (release, N >= 1 without leading zeros) or X.Y.Z-N-dev (dev build), e.g. 2.2.4-1"
MAX_DIGITS = 4  # every number of a version: Python refuses int() of 4300+ digits, and nothing needs more than 4

# Anchored, ASCII digits only: anything else ("v2.2.4-1", "2.2.4-1;id", "2.2.4-01") is refused, never normalised.
_AC_VERSION = re.compile(
    r"(?P<airflow>(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*))"
    r"-(?P<build>[1-9][0-9]*)(?P<dev>-dev)?",
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
        return cls(Version(match["airflow"]), int(match["build"]), bool(match["dev"]))

    def __str__(self) -> str:
        return f"{self.airflow}-{self.build}" + ("-dev" if self.dev else "")

    @property
    def airflow_version(self) -> str:
        """The upstream Airflow release the build patches: `2.2.4`."""
        return str(self.airflow)

    @property
    def wheel_version(self) -> str:
        """`apache-airflow` keeps its name and carries the build as a PEP 440 local version: `2.2.4+astro.1`."""
        local = f"astro.{self.build}" + (".dev" if self.dev else "")
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
