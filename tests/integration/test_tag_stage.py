"""Stage `tag`: release notes from the changelog entry and the manifest, an annotated tag pushed last."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ac_release.config import load_settings
from ac_release.errors import ReleaseError
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
    git(root.parent, "init", "--quiet", str(root))
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "release")
    settings = load_settings(write_config(tmp_path, root=root))
    services = LocalServices(settings.services)
    services._prepare_git()  # the bare remote; no server needed for a path remote
    context = make_context(settings)
    context.manifest.data["stages"]["wheel"] = {
        "artifacts": {"apache_airflow-2.2.4+astro.1-py3-none-any.whl": {"sha256": "ab" * 32}}
    }
    context.manifest.data["stages"]["sign"] = {
        "identity": "release@ac-release.local",
        "issuer": "https://oidc.ac-release.local",
        "bundles": {
            "apache_airflow-2.2.4+astro.1-py3-none-any.whl": {
                "bundle": "apache_airflow-2.2.4+astro.1-py3-none-any.whl.sigstore.json"
            }
        },
    }
    context.manifest.data["stages"]["push"] = {
        "local": {
            "images": {
                "127.0.0.1:5000/a bullseye/base": {
                    "repository": "127.0.0.1:5000/a",
                    "digest": "sha256:" + "cd" * 32,
                    "tags": ["2.2.4-1"],
                    "floating_moved": ["2.2.4"],
                }
            }
        }
    }
    yield context
    services.down(log=lambda _: None)  # the stage starts the local services it needs: none may outlive the test


def test_annotated_tag_with_the_notes_is_pushed_then_kept(ctx):
    result = tag.run(ctx)
    head = git(ctx.settings.root, "rev-parse", "HEAD")
    assert result == {
        "tag": "v2.2.4-1",
        "commit": head,
        "remote": ctx.target.git_remote,
        "notes": "RELEASE_NOTES.md",
        "action": "pushed",
    }
    notes = (ctx.dist / "RELEASE_NOTES.md").read_text()
    assert notes.startswith(
        "# Astronomer Certified 2.2.4-1 (2026-11-22)\n\n### Bug Fixes\n- Backport of apache/airflow#21694"
    )
    assert f"| `apache_airflow-2.2.4+astro.1-py3-none-any.whl` | `{'ab' * 32}` | " in notes
    assert (
        f"| `127.0.0.1:5000/a` (127.0.0.1:5000/a bullseye/base) | `sha256:{'cd' * 32}` | `2.2.4-1`, `2.2.4` |" in notes
    )
    assert "Signed with Sigstore as `release@ac-release.local` (issuer `https://oidc.ac-release.local`)." in notes
    assert git(ctx.settings.root, "cat-file", "-t", "v2.2.4-1") == "tag"  # annotated
    assert git(ctx.settings.root, "tag", "-l", "--format=%(contents)", "v2.2.4-1").strip() == notes.strip()
    remote = subprocess.run(["git", "ls-remote", "--tags", ctx.target.git_remote], capture_output=True, text=True)
    assert f"{head}\trefs/tags/v2.2.4-1^{{}}" in remote.stdout
    assert tag.run(ctx)["action"] == "present"


def test_a_release_tag_never_moves(ctx):
    tag.run(ctx)
    root = ctx.settings.root
    (root / "changelog" / "2.2.4.md").write_text((root / "changelog" / "2.2.4.md").read_text() + "\n")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-am", "later")
    with pytest.raises(ReleaseError, match=r"^tag v2.2.4-1 already points to [0-9a-f]{40}, not HEAD [0-9a-f]{40}"):
        tag.run(ctx)
    git(root, "tag", "--delete", "v2.2.4-1")
    with pytest.raises(
        ReleaseError,
        match=rf"^{ctx.target.git_remote} has tag v2.2.4-1 at [0-9a-f]{{40}}, this "
        r"release is at [0-9a-f]{40}: refusing$",
    ):
        tag.run(ctx)
