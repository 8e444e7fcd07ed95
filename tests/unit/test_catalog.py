"""The catalog: what is declared (release.toml, products, lines, changelogs, the image matrix) is read once per
command, however many stages and other versions' questions a dry run asks of it."""

from __future__ import annotations

import builtins
import json
import pathlib
import shutil
import sys
import traceback
from collections import Counter
from pathlib import Path
from types import MappingProxyType

import pytest
from rich.console import Console

from ac_release.clients import git, registry
from ac_release.clients import oci_release_files as release_files
from ac_release.clients.index import IndexFile
from ac_release.core.errors import ReleaseError
from ac_release.model.catalog import Catalog, load_catalog
from ac_release.model.names import WHEEL_RECORD, line_build_names, signed_names
from ac_release.model.records import Artifact, WheelRecord
from ac_release.pipeline import run as pipeline
from ac_release.services.manager import LocalServices
from ac_release.world import index_state
from ac_release.world.context import ReleaseContext
from tests.helpers import REPO, write_config

DECLARED = ("products/*.toml", "wheel/*/line.toml", "changelog/*.md", "images/matrix.toml")


class Reads:
    """Every opening of a declared file, with where it came from (Path.read_text and read_bytes open through
    Path.open; anything else through open)."""

    def __init__(self, monkeypatch, root: Path, config: Path):
        self.root, self.config = root, config
        self.counts: Counter[str] = Counter()
        self.callers: dict[str, list[str]] = {}
        path_open, plain_open = pathlib.Path.open, builtins.open

        def counted_path_open(path, *args, **kwargs):
            self._seen(path)
            return path_open(path, *args, **kwargs)

        def counted_open(file, *args, **kwargs):
            if isinstance(file, str | Path):
                self._seen(Path(file))
            return plain_open(file, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, "open", counted_path_open)
        monkeypatch.setattr(builtins, "open", counted_open)

    def _seen(self, path: Path) -> None:
        path = Path(path).absolute()
        if path == self.config:
            name = "release.toml"
        elif path.is_relative_to(self.root) and any(path.relative_to(self.root).match(p) for p in DECLARED):
            name = path.relative_to(self.root).as_posix()
        else:
            return
        self.counts[name] += 1
        stack = traceback.extract_stack()[:-2]
        self.callers.setdefault(name, []).append(
            " <- ".join(f"{Path(f.filename).name}:{f.name}" for f in reversed(stack) if "ac_release" in f.filename)
        )

    def more_than_once(self) -> str:
        """Each file read more than once, with who read it each time; empty when none was."""
        return "\n".join(
            f"{name} read {count} times:" + "".join(f"\n  {caller}" for caller in self.callers[name])
            for name, count in self.counts.items()
            if count > 1
        )


def _replace_everywhere(monkeypatch, original, fake) -> None:
    """`original` replaced in every module that imported it by name (the stages, line_builds)."""
    for module in list(sys.modules.values()):
        if (getattr(module, "__name__", "") or "").startswith("ac_release"):
            for name, value in list(vars(module).items()):
                if value is original:
                    monkeypatch.setattr(module, name, fake)


class FakeDocker:
    def image_id(self, ref: str) -> str | None:
        return None


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A copy of the repository's declared data, its release.toml, and an outside world that answers without
    Docker: services up, an empty index and registry, no git tag (as tests/unit/test_decisions.py fakes it)."""
    root = tmp_path / "root"
    for part in ("wheel", "images", "changelog", "products"):
        shutil.copytree(REPO / part, root / part)
    config = write_config(tmp_path, root=root)
    monkeypatch.setattr(LocalServices, "status", lambda self: {"services": "up"})
    monkeypatch.setattr(registry, "tags", lambda repository: [])
    monkeypatch.setattr(registry, "remote_image", lambda repository, tag: None)
    monkeypatch.setattr(registry, "remote_platforms", lambda repository, tag: None)
    monkeypatch.setattr(release_files, "listing", lambda repository, tag: None)
    _replace_everywhere(monkeypatch, index_state.index_state, lambda ctx: {})
    _replace_everywhere(monkeypatch, git.head, lambda root: "1" * 40)
    _replace_everywhere(monkeypatch, git.local_tag_commit, lambda root, tag: None)
    _replace_everywhere(monkeypatch, git.remote_tag_commit, lambda root, remote, tag: None)
    return root, config.absolute()


def _dry_run(config: Path, version: str) -> list:
    """What `invoke release VERSION --dry-run` does: one catalog, one context, every stage's decision."""
    catalog = load_catalog(config)
    ctx = ReleaseContext.create(version, catalog, releasing=True, console=Console(quiet=True))
    ctx.__dict__["docker"] = FakeDocker()
    return pipeline.plan(ctx)


def test_a_dry_run_reads_each_declared_file_once(tree, monkeypatch):
    root, config = tree
    reads = Reads(monkeypatch, root, config)
    steps = _dry_run(config, "2.2.4-1")
    assert {step.stage for step in steps} == set(pipeline.RELEASE)
    assert not reads.more_than_once(), reads.more_than_once()
    # what 2.2.4-1 is made of, and nothing of the line 2.3.0 or of Runtime's changelogs
    assert set(reads.counts) == {
        "release.toml",
        "products/certified.toml",
        "products/runtime.toml",
        "wheel/2.2.4/line.toml",
        "changelog/2.2.4.md",
        "images/matrix.toml",
    }


def test_a_dry_run_of_a_runtime_version_asks_about_the_line_build_of_ac_without_reading_again(tree, monkeypatch):
    """runtime-4.2.0 installs 2.2.4+astro.1, which 2.2.4-1 built and published: line_builds asks about 2.2.4-1 and
    runtime-4.2.1, from the catalog."""
    root, config = tree
    made_by = "2.2.4-1"
    names = line_build_names(load_catalog(config).parse_version(made_by))
    record = WheelRecord("inputs", {name: Artifact(name[0] * 64, 1) for name in names}, {}, "env", 0)
    listed = {name: "0" * 64 for name in (WHEEL_RECORD, *signed_names(names))}
    asked = []

    def listing(repository, tag):
        asked.append(tag)
        return listed if tag == made_by else None

    monkeypatch.setattr(release_files, "listing", listing)
    monkeypatch.setattr(release_files, "fetch", lambda repository, tag, name: json.dumps(record.to_json()).encode())
    served = {name: IndexFile(artifact.sha256, f"http://index/{name}") for name, artifact in record.artifacts.items()}
    _replace_everywhere(monkeypatch, index_state.index_state, lambda ctx: dict(served))

    reads = Reads(monkeypatch, root, config)
    steps = _dry_run(config, "runtime-4.2.0")
    reused = {step.target for step in steps if step.stage == "wheel" and step.action == "reuse"}
    assert reused == {f"dist/runtime-4.2.0/{name}" for name in names}, [s.line() for s in steps]
    assert made_by in asked
    assert not reads.more_than_once(), reads.more_than_once()
    assert {"release.toml", "products/runtime.toml", "wheel/2.2.4/line.toml", "changelog/2.2.4.md"} <= set(reads.counts)


def test_the_catalog_is_immutable_and_reads_a_line_only_when_asked(tree, monkeypatch):
    root, config = tree
    reads = Reads(monkeypatch, root, config)
    catalog = load_catalog(config)
    assert isinstance(catalog, Catalog) and isinstance(catalog.products, MappingProxyType)
    assert set(reads.counts) == {"release.toml", "products/certified.toml", "products/runtime.toml"}
    every_line = {path.parent.name for path in (root / "wheel").glob("*/line.toml")}
    assert set(catalog.lines) == every_line >= {"2.2.4", "2.3.0"} and "wheel/2.2.4/line.toml" not in reads.counts
    line = catalog.lines["2.2.4"]
    assert catalog.lines["2.2.4"] is line and reads.counts["wheel/2.2.4/line.toml"] == 1
    with pytest.raises(AttributeError):
        catalog.settings = None
    with pytest.raises(TypeError):
        catalog.lines["9.9.9"] = line
    with pytest.raises(TypeError):
        line.providers["amazon"] = "0"
    entry = catalog.changelogs["2.2.4"][-1]
    assert isinstance(catalog.changelogs["2.2.4"], tuple) and isinstance(entry.sections["Bug Fixes"], tuple)
    assert isinstance(catalog.flavours["2.2.4"], tuple)


def test_a_refusal_is_kept_and_raised_again_without_reading_again(tree, monkeypatch):
    root, config = tree
    (root / "wheel" / "2.3.0" / "line.toml").write_text("airflow = [\n")
    reads = Reads(monkeypatch, root, config)
    catalog = load_catalog(config)
    for _ in range(2):
        with pytest.raises(ReleaseError, match="malformed line data"):
            ReleaseContext.create("2.3.0-1", catalog)
    assert reads.counts["wheel/2.3.0/line.toml"] == 1
    ReleaseContext.create("2.2.4-1", catalog)  # another line's data is that line's business
    with pytest.raises(ReleaseError, match=r"no release line for Airflow 9\.9\.9 \(9\.9\.9-1\): known lines are "):
        ReleaseContext.create("9.9.9-1", catalog)


def test_a_context_from_settings_reads_its_own_catalog_once(tree, monkeypatch):
    """For the callers that still pass the settings (a checkout of another commit: pipeline.released_state)."""
    from ac_release.model.config import load_settings

    root, config = tree
    settings = load_settings(config)
    reads = Reads(monkeypatch, root, config)
    ctx = ReleaseContext.create("runtime-4.2.0", settings)
    assert ctx.settings is settings and ctx.catalog.settings is settings
    assert ctx.release_target_of(ctx.catalog.product("certified")).registries  # AC's repositories, no new read
    assert not reads.more_than_once(), reads.more_than_once()
