"""SLSA v1 provenance (in-toto Statement v1) for a release's images and wheels: pure functions, no I/O, no clock.

Every input of a build is a resolved dependency with a role (`sdist`, `patch`, `lock`, `wheel`, `base-image`,
`build-requirements`, `build-environment`, `source`), so a verifier can compare them with what the release recorded.
cosign and `sigstore attest` take only the predicate and write the subject themselves, from the image digest or the
file: attest `statement["predicate"]`, and compare the verified statement with the whole of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ac_release.core.errors import ReleaseError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
IMAGE_BUILD_TYPE = "https://github.com/astronomer/ap-airflow/ac-release/image-build/v1"
WHEEL_BUILD_TYPE = "https://github.com/astronomer/ap-airflow/ac-release/wheel-build/v1"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class Input:
    """One resolved dependency of a build: what it is (`role`, `name`), its digest, and where it came from."""

    role: str
    name: str
    digest: Mapping[str, str]
    uri: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def descriptor(self) -> dict:
        """The SLSA ResourceDescriptor."""
        descriptor: dict = {"name": self.name, "digest": dict(self.digest)}
        if self.uri:
            descriptor["uri"] = self.uri
        descriptor["annotations"] = {"role": self.role, **self.annotations}
        return descriptor

    @classmethod
    def from_descriptor(cls, descriptor: dict) -> Input:
        annotations = dict(descriptor.get("annotations", {}))
        role = annotations.pop("role", "")
        digest = dict(descriptor.get("digest", {}))
        return cls(role, descriptor.get("name", ""), digest, descriptor.get("uri"), annotations)


def file_input(role: str, name: str, sha256: str, uri: str | None = None) -> Input:
    """A file input (sdist, patch, lock, wheel) by its sha256 (64 lowercase hex)."""
    if not _SHA256.fullmatch(sha256):
        raise ReleaseError(f"sha256 of {name} is not 64 lowercase hex digits: {sha256!r}")
    return Input(role, name, {"sha256": sha256}, uri)


def image_input(role: str, name: str, digest: str) -> Input:
    """An image input (base image, build environment) by its digest `sha256:<hex>`."""
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256" or not _SHA256.fullmatch(hex_digest):
        raise ReleaseError(f"digest of {name} is not sha256:<64 hex>: {digest!r}")
    return Input(role, name, {"sha256": hex_digest}, f"oci://{name}@{digest}")


def git_input(repository: str, commit: str) -> Input:
    """The source tree: the git commit the release was built from."""
    if not _GIT_COMMIT.fullmatch(commit):
        raise ReleaseError(f"git commit {commit!r} is not a full lowercase hex object id")
    return Input("source", repository, {"gitCommit": commit}, f"git+{repository}@{commit}")


def image_statement(
    repository: str,
    manifest_digest: str,
    *,
    sdist: Input,
    patches: Iterable[Input],
    lock: Input,
    wheels: Iterable[Input],
    base_image: Input,
    source: Input,
    builder_id: str,
    external_parameters: Mapping[str, object],
    started_on: str | None = None,
    finished_on: str | None = None,
) -> dict:
    """Provenance of an image: subject = repository + manifest digest, every build input resolved."""
    algorithm, _, hex_digest = manifest_digest.partition(":")
    if algorithm != "sha256" or not _SHA256.fullmatch(hex_digest):
        raise ReleaseError(f"manifest digest of {repository} is not sha256:<64 hex>: {manifest_digest!r}")
    wheels = list(wheels)
    if not wheels:
        raise ReleaseError(f"provenance of {repository}@{manifest_digest} needs the wheels the image installs")
    patches = list(patches)
    inputs = [
        *_with_role("sdist", [sdist]),
        *_with_role("patch", patches),
        *_with_role("lock", [lock]),
        *_with_role("wheel", wheels),
        *_with_role("base-image", [base_image]),
        *_with_role("source", [source]),
    ]
    return _statement(
        {"name": repository, "digest": {"sha256": hex_digest}},
        IMAGE_BUILD_TYPE,
        inputs,
        builder_id,
        external_parameters,
        started_on,
        finished_on,
    )


def wheel_statement(
    filename: str,
    sha256: str,
    *,
    sdist: Input,
    patches: Iterable[Input],
    build_requirements: Input,
    source: Input,
    builder_id: str,
    external_parameters: Mapping[str, object],
    build_environment: Input | None = None,
    started_on: str | None = None,
    finished_on: str | None = None,
) -> dict:
    """Provenance of a wheel or sdist: subject = file name + sha256."""
    if not _SHA256.fullmatch(sha256):
        raise ReleaseError(f"sha256 of {filename} is not 64 lowercase hex digits: {sha256!r}")
    inputs = [
        *_with_role("sdist", [sdist]),
        *_with_role("patch", list(patches)),
        *_with_role("build-requirements", [build_requirements]),
        *_with_role("build-environment", [build_environment] if build_environment else []),
        *_with_role("source", [source]),
    ]
    return _statement(
        {"name": filename, "digest": {"sha256": sha256}},
        WHEEL_BUILD_TYPE,
        inputs,
        builder_id,
        external_parameters,
        started_on,
        finished_on,
    )


def resolved_dependencies(statement: dict) -> list[Input]:
    """The inputs a provenance statement names."""
    dependencies = statement.get("predicate", {}).get("buildDefinition", {}).get("resolvedDependencies", [])
    return [Input.from_descriptor(descriptor) for descriptor in dependencies]


def mismatched_inputs(statement: dict, expected: Iterable[Input]) -> list[str]:
    """What a verifier refuses: each expected input the statement does not name with the same digest, and each
    input it names that was not expected. Empty when the materials are exactly the release's."""
    named = {(i.role, i.name): dict(i.digest) for i in resolved_dependencies(statement)}
    wanted = {(i.role, i.name): dict(i.digest) for i in expected}
    problems = []
    for (role, name), digest in wanted.items():
        if (role, name) not in named:
            problems.append(f"{role} {name} is not in the provenance")
        elif named[(role, name)] != digest:
            problems.append(f"{role} {name} has {_digest_text(named[(role, name)])}, expected {_digest_text(digest)}")
    problems += [f"{role} {name} is not an input of this release" for role, name in named.keys() - wanted.keys()]
    return problems


def _statement(
    subject: dict,
    build_type: str,
    inputs: list[Input],
    builder_id: str,
    external_parameters: Mapping[str, object],
    started_on: str | None,
    finished_on: str | None,
) -> dict:
    seen = set()
    for item in inputs:
        if (item.role, item.name) in seen:
            raise ReleaseError(f"{item.role} {item.name} is named twice in the provenance inputs")
        seen.add((item.role, item.name))
    metadata = {key: value for key, value in (("startedOn", started_on), ("finishedOn", finished_on)) if value}
    run_details: dict = {"builder": {"id": builder_id}}
    if metadata:
        run_details["metadata"] = metadata
    return {
        "_type": STATEMENT_TYPE,
        "subject": [subject],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type,
                "externalParameters": dict(external_parameters),
                "resolvedDependencies": [item.descriptor() for item in inputs],
            },
            "runDetails": run_details,
        },
    }


def _with_role(role: str, inputs: list[Input]) -> list[Input]:
    for item in inputs:
        if item.role != role:
            raise ReleaseError(f"input {item.name} has role {item.role!r} where a {role!r} input belongs")
    return inputs


def _digest_text(digest: Mapping[str, str]) -> str:
    return ", ".join(f"{algorithm}:{value}" for algorithm, value in sorted(digest.items()))
