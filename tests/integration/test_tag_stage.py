"""Stage `tag`: release notes from the changelog entry and what the registry holds, an annotated tag pushed last."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from ac_release.clients import registry
from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.model.records import Artifact, TagRecord, WheelRecord
from ac_release.pipeline.run import run_stage
from ac_release.services.manager import LocalServices
from ac_release.stages import tag
from tests.helpers import REPO, write_config
from tests.integration.conftest import make_context

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
    # one that pushed). Two tiny images, one per variant, under every tag of the release.
    (repository,) = context.target.registries
    imported = f"ac-release/tag-test-{uuid.uuid4().hex[:12]}"  # this fixture's own: no other run tags it
    made = []
    for variant, tags in (
        ("base", ("2.2.4-1", "2.2.4-1-bullseye", "2.2.4", "2.2.4-bullseye")),
        ("onbuild", ("2.2.4-1-onbuild", "2.2.4-1-bullseye-onbuild", "2.2.4-onbuild", "2.2.4-bullseye-onbuild")),
    ):
        tree = tmp_path / variant
        tree.mkdir()
        (tree / "variant").write_text(variant)
        tar = subprocess.run(["tar", "-C", str(tree), "-c", "."], capture_output=True, check=True).stdout
        image = context.docker("import", "-", f"{imported}:{variant}", input=tar, capture=True)
        made.append(f"{imported}:{variant}")
        for name in tags:
            context.docker("tag", image.stdout.decode().strip(), f"{repository}:{name}", capture=True)
            made.append(f"{repository}:{name}")
            context.docker("push", "--quiet", f"{repository}:{name}", capture=True)
    yield context
    context.docker("image", "rm", *made, capture=True, check=False)
    services.down(log=lambda _: None)  # the stage starts the local services it needs: none may outlive the test


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
    digest = registry.remote_image(repository, "2.2.4-1").digest
    assert f"| `{repository}` | `{digest}` | `2.2.4-1`, `2.2.4-1-bullseye`, `2.2.4`, `2.2.4-bullseye` |" in notes
    onbuild = registry.remote_image(repository, "2.2.4-1-onbuild").digest
    tags = "`2.2.4-1-onbuild`, `2.2.4-1-bullseye-onbuild`, `2.2.4-onbuild`, `2.2.4-bullseye-onbuild`"
    assert f"| `{repository}` | `{onbuild}` | {tags} |" in notes
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
