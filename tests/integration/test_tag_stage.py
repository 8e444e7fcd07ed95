"""Stage `tag`: release notes from the changelog entry and what the registry holds, an annotated tag pushed last."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from ac_release.clients import oci_index, registry
from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.model.flavours import Platform
from ac_release.model.records import Artifact, TagRecord, WheelRecord
from ac_release.pipeline.run import run_stage
from ac_release.services.manager import LocalServices
from ac_release.stages import tag
from tests.helpers import REPO, write_config
from tests.integration.conftest import PLATFORMS, make_context, remove_names, tiny_image

pytestmark = pytest.mark.integration


def git(root, *args) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def ctx(tmp_path):
    root = tmp_path / "repo"
    for part in ("wheel/2.2.4/line.toml", "changelog/2.2.4.md", "images/matrix.toml"):
        (root / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / part, root / part)
    shutil.copytree(REPO / "products", root / "products")
    git(root.parent, "init", "--quiet", str(root))
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "release")
    settings = load_settings(write_config(tmp_path, root=root))
    services = LocalServices(settings.services)
    services.up(log=lambda _: None)
    context = make_context(settings)
    wheel = "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
    context.manifest.put(WheelRecord("0" * 64, {wheel: Artifact("ab" * 32, 1)}, {}, "none", 0))
    # The release's images as the registry holds them: the notes read them there (the job that tags may not be the
    # one that pushed). Per variant a tiny image of each platform under its platform's own tag, the immutable tags an
    # index of them, the floating tags moved to it, as the push, index and promote stages leave them.
    (repository,) = context.target.registries
    own = f"ac-release/tag-test-{uuid.uuid4().hex[:12]}"  # this fixture's own: no other run tags it
    made = []
    for variant, suffix in (("base", ""), ("onbuild", "-onbuild")):
        platforms = {}
        for platform in PLATFORMS:
            arch = Platform.parse(platform).architecture
            made.append(f"{own}:{variant}-{arch}")
            image = tiny_image(context.docker, made[-1], variant, platform)
            platforms[platform] = registry.push(context.docker, image, repository, f"2.2.4-1-bullseye{suffix}-{arch}")
        for immutable in ("2.2.4-1", "2.2.4-1-bullseye"):
            index = oci_index.push_index(repository, f"{immutable}{suffix}", platforms).digest
        for floating in ("2.2.4", "2.2.4-bullseye"):
            registry.tag_digest(repository, index, f"{floating}{suffix}")
    yield context
    context.docker("image", "rm", *made, capture=True, check=False)
    remove_names(context.docker, f"{repository.host}/")
    services.down(log=lambda _: None)  # the stage starts the local services it needs: none may outlive the test


def row(repository: str, tags: str) -> str:
    """The notes' row of the image under `tags` (the first one read): its index digest and each platform's."""
    remote = registry.remote_platforms(repository, tags.split("`")[1])
    held = "<br>".join(f"{platform} `{digest}`" for platform, digest in remote.platforms.items())
    return f"| `{repository}` | `{remote.digest}` | {held} | {tags} |"


def test_annotated_tag_with_the_notes_is_pushed_then_kept(ctx):
    result = run_stage(ctx, "tag")
    head = git(ctx.settings.root, "rev-parse", "HEAD")
    assert result == TagRecord("v2.2.4-1", head, ctx.target.git_remote, "RELEASE_NOTES.md", "pushed")
    notes = (ctx.dist / "RELEASE_NOTES.md").read_text()
    assert notes.startswith(
        "# Astronomer Certified 2.2.4-1 (2026-11-22)\n\n### Bug Fixes\n- Backport of apache/airflow#21694"
    )
    assert f"| `apache_airflow-2.2.4+astro.1-py3-none-any.whl` | `{'ab' * 32}` | " in notes
    (repository,) = ctx.target.registries
    assert row(repository, "`2.2.4-1`, `2.2.4-1-bullseye`, `2.2.4`, `2.2.4-bullseye`") in notes
    tags = "`2.2.4-1-onbuild`, `2.2.4-1-bullseye-onbuild`, `2.2.4-onbuild`, `2.2.4-bullseye-onbuild`"
    assert row(repository, tags) in notes
    assert "| image | index digest | platforms | tags |" in notes and "linux/arm64 `sha256:" in notes
    assert "Signed with Sigstore as `release@ac-release.local` (issuer `https://oidc.ac-release.local`)." in notes
    assert git(ctx.settings.root, "cat-file", "-t", "v2.2.4-1") == "tag"  # annotated
    assert git(ctx.settings.root, "tag", "-l", "--format=%(contents)", "v2.2.4-1").strip() == notes.strip()
    remote = subprocess.run(["git", "ls-remote", "--tags", ctx.target.git_remote], capture_output=True, text=True)
    assert f"{head}\trefs/tags/v2.2.4-1^{{}}" in remote.stdout
    assert run_stage(ctx, "tag").action == "present"


def test_a_release_tag_never_moves(ctx):
    run_stage(ctx, "tag")
    root = ctx.settings.root
    (root / "changelog" / "2.2.4.md").write_text((root / "changelog" / "2.2.4.md").read_text() + "\n")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-am", "later")
    refused = (
        r"^refused: v2.2.4-1@.*: 2.2.4-1 is already released from [0-9a-f]{40}, this tree is at [0-9a-f]{40}: "
        r"a tag never moves; release the next build number$"
    )
    with pytest.raises(ReleaseError, match=refused):
        run_stage(ctx, "tag")
    (step,) = tag.decide(ctx)
    assert step.state == "present"  # `status`: released, from an earlier commit
    git(root, "tag", "--delete", "v2.2.4-1")  # the remote's tag alone refuses just the same
    with pytest.raises(ReleaseError, match=refused):
        run_stage(ctx, "tag")


def test_an_image_whose_index_lacks_a_platform_of_the_release_is_never_tagged(ctx):
    (repository,) = ctx.target.registries
    amd64 = registry.remote_platforms(repository, "2.2.4-1-bullseye-onbuild-amd64").digest
    for immutable in ("2.2.4-1-onbuild", "2.2.4-1-bullseye-onbuild"):  # an index of linux/amd64 alone
        index = oci_index.push_index(repository, immutable, {"linux/amd64": amd64}).digest
    with pytest.raises(ReleaseError) as error:
        run_stage(ctx, "tag")
    assert str(error.value) == (
        f"{repository}:2.2.4-1-bullseye-onbuild ({index}) holds linux/amd64, not linux/arm64: the release builds "
        f"linux/amd64, linux/arm64"
    )
    assert git(ctx.settings.root, "tag", "-l", "v2.2.4-1") == ""
    assert not (ctx.dist / "RELEASE_NOTES.md").exists()
