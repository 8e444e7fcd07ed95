"""The line figures of `invoke bench`: which versions share a line build, and how their images are reported."""

from __future__ import annotations

from ac_release.bench.line import LineImage, line_lines
from ac_release.world.line_builds import same_line_build
from tests.helpers import REPO


def test_the_versions_of_a_line_build_come_from_the_tree_with_the_asked_one_first():
    assert same_line_build(REPO, "2.2.4-1") == ["2.2.4-1", "runtime-4.2.0", "runtime-4.2.1"]
    assert same_line_build(REPO, "runtime-4.2.1") == ["runtime-4.2.1", "2.2.4-1", "runtime-4.2.0"]
    assert same_line_build(REPO, "runtime-5.0.0")[0] == "runtime-5.0.0"
    assert "runtime-4.2.0" not in same_line_build(REPO, "runtime-5.0.0")  # another line: another Airflow wheel


def test_every_further_image_is_a_share_of_the_first_with_its_target():
    images = [
        LineImage("2.2.4-1", "base", 80.0, 900_000_000),
        LineImage("2.2.4-1", "onbuild", 0.8, 900_000_000),
        LineImage("runtime-4.2.0", "base", 20.0, 1_080_000_000),
    ]
    assert line_lines(images) == [
        "line build: first image 2.2.4-1 base cold 80.0 s, 900 MB",
        "line build: then 2.2.4-1 onbuild 0.8 s = 0.010 of the first (within the 0.10 target), 900 MB (1.00x its size)",
        "line build: then runtime-4.2.0 base 20.0 s = 0.250 of the first (over the 0.10 target), 1080 MB "
        "(1.20x its size)",
        "line build: all 3 images 100.8 s = 1.26x the first (within the 1.30x target)",
    ]


def test_a_version_of_the_line_build_that_is_not_published_is_named_with_what_to_do():
    images = [LineImage("2.2.4-1", "base", 80.0, 900_000_000)]
    left_out = {"runtime-4.2.1": "the index does not serve it (`invoke build runtime-4.2.1` first)"}
    assert line_lines(images, left_out)[-1] == (
        "line build: runtime-4.2.1 not measured: the index does not serve it (`invoke build runtime-4.2.1` first)"
    )
