"""SLSA v1 provenance statements for images and wheels, and the verifier's comparison of their inputs."""

from __future__ import annotations

import hashlib

import pytest

from ac_release.core.errors import ReleaseError
from ac_release.supply_chain import provenance
from ac_release.supply_chain.provenance import file_input, git_input, image_input

REPOSITORY = "127.0.0.1:5000/astronomer/ap-airflow"
COMMIT = "3d08b10" + "0" * 33


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def image_inputs(**overrides) -> dict:
    inputs = {
        "sdist": file_input("sdist", "apache-airflow-2.2.4.tar.gz", sha("sdist")),
        "patches": [
            file_input("patch", "0001-fix-a.patch", sha("patch 1")),
            file_input("patch", "0002-fix-b.patch", sha("patch 2")),
        ],
        "lock": file_input("lock", "wheel/2.2.4/constraints.txt", sha("lock")),
        "wheels": [
            file_input("wheel", "apache_airflow-2.2.4+astro.1-py3-none-any.whl", sha("wheel")),
            file_input("wheel", "astronomer_certified-2.2.4.post1-py3-none-any.whl", sha("meta")),
        ],
        "base_image": image_input("base-image", "ac-release/debian", "sha256:" + sha("base")),
        "source": git_input("https://github.com/astronomer/ap-airflow", COMMIT),
    }
    return inputs | overrides


def statement(**overrides) -> dict:
    return provenance.image_statement(
        REPOSITORY,
        "sha256:" + sha("manifest"),
        builder_id="https://github.com/astronomer/ap-airflow/.github/workflows/release.yml",
        external_parameters={"version": "2.2.4-1", "flavour": "bullseye", "target": "local"},
        **image_inputs(**overrides),
    )


def expected_inputs(**overrides) -> list[provenance.Input]:
    inputs = image_inputs(**overrides)
    return [
        inputs["sdist"],
        *inputs["patches"],
        inputs["lock"],
        *inputs["wheels"],
        inputs["base_image"],
        inputs["source"],
    ]


def test_image_statement_subject_is_the_repository_and_manifest_digest():
    made = statement()
    assert made["_type"] == "https://in-toto.io/Statement/v1"
    assert made["predicateType"] == "https://slsa.dev/provenance/v1"
    assert made["subject"] == [{"name": REPOSITORY, "digest": {"sha256": sha("manifest")}}]
    assert made["predicate"]["buildDefinition"]["externalParameters"]["version"] == "2.2.4-1"


def test_image_statement_names_every_input_with_its_digest():
    dependencies = statement()["predicate"]["buildDefinition"]["resolvedDependencies"]
    by_name = {d["name"]: d for d in dependencies}
    assert by_name["apache-airflow-2.2.4.tar.gz"]["digest"] == {"sha256": sha("sdist")}
    assert by_name["0002-fix-b.patch"]["digest"] == {"sha256": sha("patch 2")}
    assert by_name["wheel/2.2.4/constraints.txt"]["annotations"] == {"role": "lock"}
    assert by_name["apache_airflow-2.2.4+astro.1-py3-none-any.whl"]["digest"] == {"sha256": sha("wheel")}
    assert by_name["ac-release/debian"]["uri"] == f"oci://ac-release/debian@sha256:{sha('base')}"
    assert by_name["https://github.com/astronomer/ap-airflow"]["digest"] == {"gitCommit": COMMIT}
    assert len(dependencies) == 8


def test_inputs_read_back_from_a_statement_equal_those_given():
    assert provenance.resolved_dependencies(statement()) == expected_inputs()


def test_the_release_inputs_match_their_own_provenance():
    assert provenance.mismatched_inputs(statement(), expected_inputs()) == []


def test_a_provenance_naming_another_sdist_is_refused():
    other = file_input("sdist", "apache-airflow-2.2.4.tar.gz", sha("another sdist"))
    problems = provenance.mismatched_inputs(statement(sdist=other), expected_inputs())
    assert problems == [
        f"sdist apache-airflow-2.2.4.tar.gz has sha256:{sha('another sdist')}, expected sha256:{sha('sdist')}"
    ]


def test_a_provenance_missing_a_patch_or_naming_an_extra_one_is_refused():
    one_patch = image_inputs()["patches"][:1]
    assert provenance.mismatched_inputs(statement(patches=one_patch), expected_inputs()) == [
        "patch 0002-fix-b.patch is not in the provenance"
    ]
    assert provenance.mismatched_inputs(statement(), expected_inputs(patches=one_patch)) == [
        "patch 0002-fix-b.patch is not an input of this release"
    ]


def test_wheel_statement_subject_is_the_file_name_and_sha256():
    made = provenance.wheel_statement(
        "apache_airflow-2.2.4+astro.1-py3-none-any.whl",
        sha("wheel"),
        sdist=file_input("sdist", "apache-airflow-2.2.4.tar.gz", sha("sdist")),
        patches=[file_input("patch", "0001-fix-a.patch", sha("patch 1"))],
        build_requirements=file_input("build-requirements", "build-requirements.txt", sha("toolchain")),
        build_environment=image_input("build-environment", "ac-release/buildenv", "sha256:" + sha("env")),
        source=git_input("https://github.com/astronomer/ap-airflow", COMMIT),
        builder_id="https://github.com/astronomer/ap-airflow/.github/workflows/release.yml",
        external_parameters={"version": "2.2.4-1"},
        started_on="2026-11-30T10:00:00Z",
        finished_on="2026-11-30T10:05:00Z",
    )
    assert made["subject"] == [
        {"name": "apache_airflow-2.2.4+astro.1-py3-none-any.whl", "digest": {"sha256": sha("wheel")}}
    ]
    assert [i.role for i in provenance.resolved_dependencies(made)] == [
        "sdist",
        "patch",
        "build-requirements",
        "build-environment",
        "source",
    ]
    assert made["predicate"]["runDetails"]["metadata"] == {
        "startedOn": "2026-11-30T10:00:00Z",
        "finishedOn": "2026-11-30T10:05:00Z",
    }


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: file_input("sdist", "x.tar.gz", "ABC"), "sha256 of x.tar.gz is not 64 lowercase hex digits"),
        (lambda: image_input("base-image", "debian", sha("x")), "digest of debian is not sha256:<64 hex>"),
        (lambda: git_input("repo", "main"), "git commit 'main' is not a full lowercase hex object id"),
        (lambda: statement(lock=file_input("wheel", "w.whl", sha("w"))), "input w.whl has role 'wheel' where a 'lock'"),
        (lambda: statement(wheels=[]), "needs the wheels the image installs"),
        (
            lambda: statement(patches=[file_input("patch", "p", sha("1")), file_input("patch", "p", sha("2"))]),
            "patch p is named twice",
        ),
    ],
)
def test_bad_inputs_are_refused_with_what_is_wrong(make, message):
    with pytest.raises(ReleaseError, match=message):
        make()


def test_a_manifest_digest_that_is_not_sha256_is_refused():
    with pytest.raises(ReleaseError, match="manifest digest of .* is not sha256"):
        provenance.image_statement(REPOSITORY, "sha512:abc", builder_id="b", external_parameters={}, **image_inputs())
