"""Names computed from a version: artifacts, bundles, image references, test sessions. Declared here only."""

from __future__ import annotations

from ac_release.version import ACVersion

BUNDLE_SUFFIX = ".sigstore.json"
NOTES = "RELEASE_NOTES.md"
# The projects this pipeline publishes on an index: the patched Airflow and the product's meta wheel.
PROJECTS = ("apache-airflow", "astronomer-certified")
LOCAL_REPOSITORY = "ac-release/{target}/ap-airflow"  # where built images wait for their tests, per target


def artifact_names(version: ACVersion) -> list[str]:
    """The files the wheel stage makes for a version, sorted."""
    return sorted(
        [
            f"apache_airflow-{version.wheel_version}-py3-none-any.whl",
            f"apache-airflow-{version.wheel_version}.tar.gz",
            f"astronomer_certified-{version.meta_version}-py3-none-any.whl",
        ]
    )


def bundle_name(artifact: str) -> str:
    return artifact + BUNDLE_SUFFIX


def local_repository(target: str) -> str:
    return LOCAL_REPOSITORY.format(target=target)
