"""Stage `promote` of two builds of one line at once, against a real registry (Debian's docker-registry): the older
build decided to move the floating tags before the newer one was released, and acts on that decision after the newer
build moved them. The move re-reads the registry first: the floating tags stay on the newer build.

The interleaving is fixed (the race, step by step): build 1 pushes, indexes and decides, build 2 pushes, indexes,
decides and moves, then build 1 acts on its earlier steps. "Released" is what the registry's tags say
(released.highest_released_build reads the release tags of the line: the indexes), so both builds are pushed and
indexed by the push and index stages themselves, as a release does, each platform's image to its own tag."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ac_release.clients import registry
from ac_release.model.records import PromoteRecord
from ac_release.pipeline.run import run_stage
from ac_release.stages import promote
from tests.integration import test_push_stage
from tests.integration.test_push_stage import released

pytestmark = pytest.mark.integration

# test_push_stage's fixtures: two lines' data in a root of their own, services on free ports of this test, and small
# distinct images of each platform
lines_root = test_push_stage.lines_root
settings = test_push_stage.settings
make_image = test_push_stage.make_image

FLOATING = {"2.2.4": "2.2.4-2-bullseye", "2.2.4-bullseye": "2.2.4-2-bullseye"}
FLOATING |= {"2.2.4-onbuild": "2.2.4-2-bullseye-onbuild", "2.2.4-bullseye-onbuild": "2.2.4-2-bullseye-onbuild"}


def test_an_older_build_promoting_late_leaves_the_floating_tags_on_the_newer_build(settings, make_image):
    (repository,) = settings.target(None).registries
    one, one_on = make_image("race-one"), make_image("race-one-onbuild")
    two, two_on = make_image("race-two"), make_image("race-two-onbuild")

    first = released(settings, "2.2.4-1", one, one_on)
    first.console = Console(file=io.StringIO(), width=400)  # its log, read below
    run_stage(first, "push")
    run_stage(first, "index")
    stale = promote.decide(first)  # build 1 decides: nothing newer is released yet
    assert {step.target: step.action for step in stale} == {f"{repository}:{tag}": "move" for tag in FLOATING}

    second = released(settings, "2.2.4-2", two, two_on)
    run_stage(second, "push")
    run_stage(second, "index")
    moved = run_stage(second, "promote")  # build 2 decides and moves
    assert {tag.tag: tag.action for tag in moved.tags} == {tag: "moved" for tag in FLOATING}
    newer = {tag: registry.remote_platforms(repository, immutable) for tag, immutable in FLOATING.items()}
    assert {tag: registry.remote_platforms(repository, tag) for tag in FLOATING} == newer

    record = promote.act(first, stale)  # build 1 acts on what it decided before build 2 was released

    after = {tag: registry.remote_platforms(repository, tag) for tag in FLOATING}
    assert after == newer, "a floating tag went back to build 1"  # the index of build 2, every platform of it
    for tag, remote in after.items():
        images = two_on if tag.endswith("-onbuild") else two
        assert {p: registry.remote_image(repository, d).config for p, d in remote.platforms.items()} == images
    assert {tag.tag: tag.action for tag in record.tags} == {tag: "kept" for tag in FLOATING}
    assert first.record(PromoteRecord) == record
    log = first.console.file.getvalue().splitlines()
    assert [line for line in log if line.startswith("promote: ")] == [
        f"promote: {repository}:{tag} kept: 2.2.4-2 is newer (released while this run promoted)" for tag in FLOATING
    ]
