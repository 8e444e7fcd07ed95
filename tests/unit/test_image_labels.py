"""The labels of the final image (issue 10, item 20): AC's pair of versions, AC's maintainer, and the OCI source,
revision and created labels from build arguments that keep the image reproducible."""

from __future__ import annotations

import re

from ac_release.building import image_build as build
from ac_release.building.dockerfiles import render
from ac_release.clients.git import head
from ac_release.model.config import load_settings
from ac_release.model.flavours import load_matrix
from ac_release.world.context import ReleaseContext, flavours
from tests.helpers import REPO, write_config


def _labels(dockerfile: str) -> dict[str, str]:
    block = dockerfile[dockerfile.index("\nLABEL maintainer=") :].split("\nUSER ", 1)[0]
    return dict(re.findall(r'([\w.]+)="([^"]*)"', block))


def test_the_template_labels_pair_the_upstream_airflow_version_with_the_ac_version():
    (flavour, *_) = load_matrix(REPO / "images")["2.2.4"]
    labels = _labels(render(REPO / "images", flavour, "base"))
    assert labels["maintainer"] == "Astronomer <humans@astronomer.io>"
    assert labels["io.astronomer.docker.airflow.version"] == "2.2.4"
    assert labels["io.astronomer.docker.ac.version"] == "${AC_VERSION}"
    assert labels["org.opencontainers.image.version"] == "${AC_VERSION}"
    assert labels["org.opencontainers.image.source"] == "${OCI_SOURCE}"
    assert labels["org.opencontainers.image.revision"] == "${OCI_REVISION}"
    assert labels["org.opencontainers.image.created"] == "${OCI_CREATED}"


def test_the_oci_build_arguments_are_the_commit_and_the_line_date(tmp_path):
    ctx = ReleaseContext.create("2.2.4-1", load_settings(write_config(tmp_path)))
    (flavour,) = flavours(ctx)
    args = build.build_args(
        ctx,
        flavour,
        "base",
        {
            "apache_airflow-2.2.4+astro.1-py3-none-any.whl": "a" * 64,
            "astronomer_certified-2.2.4.post1-py3-none-any.whl": "b" * 64,
        },
    )
    assert args["OCI_SOURCE"] == build.SOURCE
    assert args["OCI_REVISION"] == head(REPO) and re.fullmatch(r"[0-9a-f]{40}", args["OCI_REVISION"])
    # the line's release date (SOURCE_DATE_EPOCH), never the time of the build: the image stays reproducible
    assert args["OCI_CREATED"] == "2022-02-22T00:00:00Z"
    assert args["AC_VERSION"] == "2.2.4-1"
    assert args["IMAGE_TITLE"] == "Astronomer Certified 2.2.4 (bullseye, Python 3.9)"  # as before it was an argument


def test_a_tree_outside_git_gives_an_empty_revision(tmp_path):
    assert build.revision(tmp_path) == ""
    assert build.revision(REPO) == head(REPO)
