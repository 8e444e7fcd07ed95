"""The nox sessions that test built images: their names and parameters, computed from the changelog and the matrix."""

from __future__ import annotations

from pathlib import Path


def session_name(version: str, flavour: str, kind: str = "smoke") -> str:
    """`nox -s "smoke(version='2.2.4-1', flavour='bullseye')"` tests one flavour of a build."""
    return f"{kind}(version='{version}', flavour='{flavour}')"


def session_params(root: Path) -> list[tuple[str, str, bool]]:
    """(version, flavour, newest) for the nox smoke and upgrade sessions: every changelog build of every line with
    image flavours, so that any build can be tested; `newest` marks the builds ci.yml's smoke jobs test."""
    from ac_release.model.changelog import builds
    from ac_release.model.flavours import load_matrix

    return [
        (version, flavour.name, index == 0)
        for airflow, flavours in load_matrix(root / "images").items()
        if (root / "changelog" / f"{airflow}.md").exists()
        for index, version in enumerate(builds(root / "changelog", airflow))
        for flavour in flavours
    ]
