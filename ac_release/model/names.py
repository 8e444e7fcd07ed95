"""Names computed from a version: artifacts, bundles, image references, test sessions. Declared here only."""

from __future__ import annotations

from ac_release.model.version import ACVersion, ProductVersion

BUNDLE_SUFFIX = ".sigstore.json"
NOTES = "RELEASE_NOTES.md"
AIRFLOW_PROJECT = "apache-airflow"
LOCAL_REPOSITORY = "ac-release/{target}/{repository}"  # where built images wait for their tests, per target


def projects(meta_project: str) -> tuple[str, str]:
    """The projects a release publishes on an index: the patched Airflow and the product's meta wheel."""
    return (AIRFLOW_PROJECT, meta_project)


def line_build_names(version: ACVersion | ProductVersion) -> list[str]:
    """The Airflow wheel and sdist of the line build a version installs: one per line build, whichever product
    version first makes them (AC 2.2.4-1 and Runtime 4.2.0 both install `2.2.4+astro.1`)."""
    return sorted(
        [f"apache_airflow-{version.wheel_version}-py3-none-any.whl", f"apache-airflow-{version.wheel_version}.tar.gz"]
    )


def meta_wheel_name(version: ACVersion | ProductVersion, meta_project: str) -> str:
    return f"{meta_project.replace('-', '_')}-{version.meta_version}-py3-none-any.whl"


def artifact_names(version: ACVersion | ProductVersion, meta_project: str) -> list[str]:
    """The files the wheel stage makes for a version, sorted."""
    return sorted([*line_build_names(version), meta_wheel_name(version, meta_project)])


def bundle_name(artifact: str) -> str:
    return artifact + BUNDLE_SUFFIX


def local_repository(target: str, repository: str) -> str:
    return LOCAL_REPOSITORY.format(target=target, repository=repository)


def run_log_stem(version: ACVersion | str, target: str, kind: str, *parts: str) -> str:
    """The stem of a run's log or report in <cache>/logs (`2.2.4-1-local-images-bullseye-base`): the version and
    target name it, so that two releases at once never share one. A part of "*" makes a glob pattern."""
    return "-".join([str(version), target, kind, *parts])


# PEP 740 attestations of an artifact, as twine's `--attestations` finds them (`<dist>.<kind>.attestation`).
ATTESTATION_KINDS = ("publish", "slsa")


def attestation_name(artifact: str, kind: str) -> str:
    return f"{artifact}.{kind}.attestation"


# The wheel stage's record, published beside the bundles: a machine that did not build the wheels (a workflow's
# later job) reads back what was built, and checks it against the index and the bundles.
WHEEL_RECORD = "wheel-record.json"


# A dev build's digest of what made it (building/build_inputs.py): a later nightly of the same day reads it back
# to tell whether it would build the same thing again.
BUILD_INPUTS = "build-inputs.json"


def release_files(version: ACVersion | ProductVersion, meta_project: str) -> list[str]:
    """What a user fetches beside the index to verify the artifacts: every bundle and attestation, and the record
    of the build (and a dev build's inputs digest)."""
    signed = signed_names(artifact_names(version, meta_project))
    return sorted([*signed, WHEEL_RECORD, *([BUILD_INPUTS] if version.dev else [])])


def signed_names(artifacts: list[str]) -> list[str]:
    """The bundle and the attestations of each artifact."""
    return [bundle_name(n) for n in artifacts] + [attestation_name(n, k) for n in artifacts for k in ATTESTATION_KINDS]
