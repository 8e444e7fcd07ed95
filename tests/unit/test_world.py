"""The world of one run (ac_release/world/view.py): each question asked of the outside once, and forgotten exactly
when an act changes its answer. The clients are fakes that count what they are asked; no Docker, no network."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter

import pytest
from rich.console import Console

from ac_release.clients import git, index, registry
from ac_release.clients import oci_release_files as release_files
from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from ac_release.stages import promote, push
from ac_release.world import view
from ac_release.world.context import ReleaseContext
from ac_release.world.view import Memo, project_of
from tests.helpers import write_config

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
REPO_1, REPO_2 = "127.0.0.1:5000/astronomer/ap-airflow", "127.0.0.1:5001/astronomer/ap-airflow"


class FakeDocker:
    def __init__(self):
        self.images: dict[str, str] = {}
        self.asked: Counter[str] = Counter()

    def image_id(self, ref: str) -> str | None:
        self.asked[ref] += 1
        return self.images.get(ref) or (ref if ref in self.images.values() else None)

    def __call__(self, *args, capture=False):
        assert args[0] == "tag", args
        self.images[args[2]] = self.images.get(args[1], args[1])


class Outside:
    """The registries, index, git remote and release files as fakes: what they hold, and how often each was asked."""

    def __init__(self, monkeypatch):
        self.images: dict[tuple[str, str], registry.RemoteImage] = {}
        self.indexes: dict[tuple[str, str], registry.RemotePlatforms] = {}
        self.files: dict[str, dict[str, index.IndexFile]] = {}
        self.remote_tags: dict[str, str] = {}
        self.listings: dict[tuple[str, str], dict[str, str]] = {}
        self.asked: Counter[tuple] = Counter()

        def remote_image(repository, tag):
            self.asked["image", str(repository), tag] += 1
            return self.images.get((str(repository), tag))

        def remote_platforms(repository, tag):
            self.asked["platforms", str(repository), tag] += 1
            held = self.indexes.get((str(repository), tag))
            return held and registry.RemotePlatforms(held.digest, dict(held.platforms))

        def tags(repository):
            self.asked["tags", str(repository)] += 1
            return [tag for held, tag in self.images if held == str(repository)]

        def labels(repository, digest):
            self.asked["labels", str(repository), digest] += 1
            return {"org.opencontainers.image.revision": "1" * 40}

        def project_files(settings, password, project):
            self.asked["index", project] += 1
            return dict(self.files.get(project, {}))

        def remote_tag_commit(root, remote, tag):
            self.asked["git", tag] += 1
            return self.remote_tags.get(tag)

        def listing(repository, tag):
            self.asked["listing", str(repository), tag] += 1
            return self.listings.get((str(repository), tag))

        for module, name, fake in (
            (registry, "remote_image", remote_image),
            (registry, "remote_platforms", remote_platforms),
            (registry, "tags", tags),
            (registry, "labels", labels),
            (index, "project_files", project_files),
            (git, "remote_tag_commit", remote_tag_commit),
            (release_files, "listing", listing),
        ):
            monkeypatch.setattr(module, name, fake)

    def hold(self, repository: str, tag: str, digest: str = A, config: str = B) -> None:
        self.images[(str(repository), tag)] = registry.RemoteImage(digest, config)

    def hold_index(self, repository: str, tag: str, digest: str, platforms: dict[str, str]) -> None:
        self.indexes[(str(repository), tag)] = registry.RemotePlatforms(digest, dict(platforms))
        self.images[(str(repository), tag)] = registry.RemoteImage(digest, B)


@pytest.fixture
def outside(monkeypatch):
    return Outside(monkeypatch)


@pytest.fixture
def ctx(tmp_path):
    context = ReleaseContext.create("2.2.4-1", load_settings(write_config(tmp_path)), console=Console(quiet=True))
    password = context.target.index.password.file  # the local index's, as `services.up` writes it
    password.parent.mkdir(parents=True)
    password.write_text("not-a-secret\n")
    password.chmod(0o600)
    context.__dict__["docker"] = FakeDocker()
    return context


def test_a_memo_asks_once_until_forgotten():
    memo, asked = Memo(), Counter()

    def ask(key):
        asked[key] += 1
        return f"answer {asked[key]}"

    assert memo.get("a", lambda: ask("a")) == memo.get("a", lambda: ask("a")) == "answer 1"
    memo.get("b", lambda: ask("b"))
    memo.forget(lambda key, _: key == "a")
    assert memo.get("a", lambda: ask("a")) == "answer 2"
    assert memo.get("b", lambda: ask("b")) == "answer 1"
    assert memo.asked == 3


def test_a_memo_keeps_no_error_and_no_answer_asked_while_something_was_forgotten():
    memo = Memo()

    def fails():
        raise ReleaseError("registry unreachable")

    with pytest.raises(ReleaseError):
        memo.get("a", fails)
    assert memo.get("a", lambda: "reached") == "reached"

    # an act forgets while the question is in flight: the answer may predate the act, so it is not kept
    assert memo.get("b", lambda: (memo.forget(lambda key, _: True), "before the act")[1]) == "before the act"
    assert memo.get("b", lambda: "after the act") == "after the act"


def test_a_memo_is_asked_from_threads_at_once():
    memo, asked, lock = Memo(), Counter(), threading.Lock()

    def ask():
        with lock:
            asked["x"] += 1
        return "answer"

    threads = [threading.Thread(target=lambda: [memo.get(n % 4, ask) for n in range(200)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 4 <= asked["x"] <= 16  # each key at most once per thread that raced for it


def test_a_registry_answer_is_remembered_per_repository_and_tag(ctx, outside):
    outside.hold(REPO_1, "2.2.4-1")
    world = ctx.world
    assert world.remote_image(REPO_1, "2.2.4-1") == registry.RemoteImage(A, B)
    assert world.remote_image(REPO_1, "2.2.4-1") == registry.RemoteImage(A, B)
    assert world.remote_image(REPO_2, "2.2.4-1") is None  # another registry is another question
    assert world.tags(REPO_1) == world.tags(REPO_1) == ["2.2.4-1"]
    assert outside.asked == {("image", REPO_1, "2.2.4-1"): 1, ("image", REPO_2, "2.2.4-1"): 1, ("tags", REPO_1): 1}


def test_a_push_forgets_that_tag_and_the_repository_s_tags_only(ctx, outside, monkeypatch):
    def pushed(docker, image, repository, tag):
        outside.hold(repository, tag, A, image)
        return A

    monkeypatch.setattr(registry, "push", pushed)
    world = ctx.world
    for tag in ("2.2.4-1", "2.2.4-1-onbuild"):
        world.remote_image(REPO_1, tag)
    world.remote_image(REPO_2, "2.2.4-1")
    world.tags(REPO_1)
    world.tags(REPO_2)

    assert world.push(B, REPO_1, "2.2.4-1") == A
    assert world.remote_image(REPO_1, "2.2.4-1") == registry.RemoteImage(A, B)  # asked again: pushed
    assert world.tags(REPO_1) == ["2.2.4-1"]
    world.remote_image(REPO_1, "2.2.4-1-onbuild")
    world.remote_image(REPO_2, "2.2.4-1")
    world.tags(REPO_2)
    assert outside.asked[("image", REPO_1, "2.2.4-1")] == 2
    assert outside.asked[("tags", REPO_1)] == 2
    assert outside.asked[("image", REPO_1, "2.2.4-1-onbuild")] == 1
    assert outside.asked[("image", REPO_2, "2.2.4-1")] == 1
    assert outside.asked[("tags", REPO_2)] == 1


def test_a_failed_push_forgets_too(ctx, outside, monkeypatch):
    def cut(docker, image, repository, tag):
        outside.hold(repository, tag)  # the manifest landed before the connection broke
        raise ReleaseError("docker push failed: connection reset")

    monkeypatch.setattr(registry, "push", cut)
    assert ctx.world.remote_image(REPO_1, "2.2.4-1") is None
    with pytest.raises(ReleaseError):
        ctx.world.push(B, REPO_1, "2.2.4-1")
    assert ctx.world.remote_image(REPO_1, "2.2.4-1") == registry.RemoteImage(A, B)


def test_a_registry_side_copy_or_move_forgets_the_tag_it_wrote(ctx, outside, monkeypatch):
    monkeypatch.setattr(
        registry,
        "copy_pushed",
        lambda source, digest, repository, tag, image, platforms=None: outside.hold(repository, tag),
    )
    monkeypatch.setattr(registry, "tag_digest", lambda repository, digest, tag: outside.hold(repository, tag))
    world = ctx.world
    assert world.remote_image(REPO_2, "2.2.4-1") is None and world.remote_image(REPO_1, "2.2.4") is None
    world.copy_pushed(REPO_1, A, REPO_2, "2.2.4-1", B)
    world.tag_digest(REPO_1, A, "2.2.4")
    assert world.remote_image(REPO_2, "2.2.4-1") == world.remote_image(REPO_1, "2.2.4") == registry.RemoteImage(A, B)


def test_a_tag_s_platforms_are_asked_once_and_again_after_a_write_to_that_tag(ctx, outside, monkeypatch):
    """remote_platforms: one question per repository and tag a run; a push or a registry-side copy of an index to
    the tag asks it again (the copy given the platforms it reads back), and no other tag or repository."""
    index_digest, arm64 = "sha256:" + "c" * 64, "sha256:" + "d" * 64
    platforms = {"linux/amd64": A, "linux/arm64": arm64}
    copied = []

    def copy_pushed(source, digest, repository, tag, image, platforms=None):
        copied.append((source, digest, repository, tag, image, platforms))
        outside.hold_index(repository, tag, digest, platforms or {"linux/amd64": digest})

    def pushed(docker, image, repository, tag):
        outside.hold(repository, tag, A, image)
        outside.indexes[(str(repository), tag)] = registry.RemotePlatforms(A, {"linux/amd64": A})
        return A

    monkeypatch.setattr(registry, "copy_pushed", copy_pushed)
    monkeypatch.setattr(registry, "push", pushed)
    outside.hold_index(REPO_1, "2.2.4-1", index_digest, platforms)
    world = ctx.world
    assert world.remote_platforms(REPO_1, "2.2.4-1") == registry.RemotePlatforms(index_digest, platforms)
    world.remote_platforms(REPO_1, "2.2.4-1").platforms.clear()  # a copy: the world's answer stays whole
    assert world.remote_platforms(REPO_1, "2.2.4-1") == registry.RemotePlatforms(index_digest, platforms)
    assert world.remote_platforms(REPO_2, "2.2.4-1") is None
    assert world.remote_platforms(REPO_2, "2.2.4-1") is None
    world.remote_platforms(REPO_2, "2.2.4-1-onbuild")
    assert outside.asked[("platforms", REPO_1, "2.2.4-1")] == outside.asked[("platforms", REPO_2, "2.2.4-1")] == 1

    world.copy_pushed(REPO_1, index_digest, REPO_2, "2.2.4-1", B, platforms=platforms)
    assert copied == [(REPO_1, index_digest, REPO_2, "2.2.4-1", B, platforms)]
    assert world.remote_platforms(REPO_2, "2.2.4-1") == registry.RemotePlatforms(index_digest, platforms)
    assert outside.asked[("platforms", REPO_2, "2.2.4-1")] == 2
    world.copy_pushed(REPO_1, A, REPO_2, "2.2.4-1-onbuild", B)  # one image: no platforms to read back
    assert copied[-1][-1] is None

    assert world.push(B, REPO_1, "2.2.4-1") == A
    assert world.remote_platforms(REPO_1, "2.2.4-1") == registry.RemotePlatforms(A, {"linux/amd64": A})
    assert outside.asked[("platforms", REPO_1, "2.2.4-1")] == 2
    world.remote_platforms(REPO_2, "2.2.4-1")
    assert outside.asked[("platforms", REPO_2, "2.2.4-1")] == 2  # another registry's tag: still remembered
    world.forget_repository(REPO_2)
    world.remote_platforms(REPO_2, "2.2.4-1")
    assert outside.asked[("platforms", REPO_2, "2.2.4-1")] == 3


def test_cosign_s_tags_written_are_asked_again_and_labels_never(ctx, outside):
    world = ctx.world
    signature, attestations = f"sha256-{'a' * 64}.sig", f"sha256-{'a' * 64}.att"
    assert world.tags(REPO_1) == []
    world.labels(REPO_1, A)
    outside.hold(REPO_1, signature, "sha256:" + "c" * 64)
    outside.hold(REPO_1, attestations, "sha256:" + "d" * 64)
    world.wrote(REPO_1, signature, attestations)
    assert sorted(world.tags(REPO_1)) == [attestations, signature]
    assert world.labels(REPO_1, A) == {"org.opencontainers.image.revision": "1" * 40}
    assert outside.asked[("labels", REPO_1, A)] == 1  # a digest's labels never change


def test_forgetting_a_repository_asks_all_of_it_again_and_nothing_else(ctx, outside):
    world = ctx.world
    for repository in (REPO_1, REPO_2):
        world.tags(repository)
        world.remote_image(repository, "2.2.4")
    world.forget_repository(REPO_1)
    for repository in (REPO_1, REPO_2):
        world.tags(repository)
        world.remote_image(repository, "2.2.4")
    assert outside.asked[("tags", REPO_1)] == outside.asked[("image", REPO_1, "2.2.4")] == 2
    assert outside.asked[("tags", REPO_2)] == outside.asked[("image", REPO_2, "2.2.4")] == 1


def test_an_upload_forgets_that_project_on_the_index_and_no_other(ctx, outside, monkeypatch):
    wheel = "apache_airflow-2.2.4+astro.1-py3-none-any.whl"

    def uploaded(settings, artifact, password, attestations):
        outside.files.setdefault("apache-airflow", {})[artifact.name] = index.IndexFile("f" * 64, "url")
        return "uploaded"

    monkeypatch.setattr(view, "upload", uploaded)
    world = ctx.world
    assert world.index_files("apache-airflow") == {}
    world.index_files("astronomer-certified")
    assert world.upload(ctx.dist / wheel, "password") == "uploaded"
    assert wheel in world.index_files("apache-airflow")
    world.index_files("astronomer-certified")
    assert outside.asked[("index", "apache-airflow")] == 2
    assert outside.asked[("index", "astronomer-certified")] == 1


def test_the_project_of_a_file_is_its_canonical_name():
    assert project_of("apache_airflow-2.2.4+astro.1-py3-none-any.whl") == "apache-airflow"
    assert project_of("apache-airflow-2.2.4+astro.1.tar.gz") == "apache-airflow"
    assert project_of("astronomer_certified-2.2.4.post1-py3-none-any.whl") == "astronomer-certified"


def test_the_release_files_pushed_are_listed_again(ctx, outside, monkeypatch):
    monkeypatch.setattr(
        release_files, "push", lambda repository, tag, files: outside.listings.__setitem__((str(repository), tag), {})
    )
    world = ctx.world
    assert world.release_files(REPO_1, "2.2.4-1") is None
    assert world.release_files(REPO_1, "2.2.4-1") is None
    world.push_release_files(REPO_1, "2.2.4-1", {})
    assert world.release_files(REPO_1, "2.2.4-1") == {}
    assert outside.asked[("listing", REPO_1, "2.2.4-1")] == 2


def test_a_build_or_tag_forgets_that_reference_and_every_id_the_engine_lacked(ctx):
    docker, world = ctx.docker, ctx.world
    docker.images["base"] = A
    assert world.image_id("base") == A
    assert world.image_id("ours") is None
    assert world.image_id(B) is None  # the recorded image, not built yet
    docker.images["ours"] = B
    world.engine_wrote(["ours"])
    assert world.image_id("ours") == B
    assert world.image_id(B) == B  # an id the engine lacked: the build may have made it
    assert world.image_id("base") == A
    assert docker.asked == {"base": 1, "ours": 2, B: 2}
    world.engine_wrote(None)  # a removal: anything may be gone
    world.image_id("base")
    assert docker.asked["base"] == 2


def test_the_run_s_docker_client_tells_the_world_what_it_wrote(ctx, monkeypatch):
    from ac_release.clients import docker as docker_client

    told = []
    monkeypatch.setattr(
        docker_client.proc, "run", lambda argv, **kwargs: subprocess.CompletedProcess(argv, 0, b"", b"")
    )
    client = docker_client.Docker(["docker"], on_write=told.append)
    client("tag", A, "ours:1", capture=True)
    client.with_env(DOCKER_CONFIG="/private")("pull", "--quiet", "repo@" + B, capture=True)
    client("image", "inspect", "ours:1", capture=True)
    client("run", "--rm", "ours:1", "true", capture=True)
    client("rm", "--force", "container", capture=True)
    client("rmi", "ours:1", capture=True)
    assert told == [["ours:1"], ["repo@" + B], None]
    assert docker_client.written_references(["build", "--tag", "x:1", "--progress=plain"]) == ["x:1"]
    assert docker_client.written_references(["build", "--target", "toolchain", "--output", "type=cacheonly"]) == []
    assert docker_client.written_references(["image", "prune", "--force"]) is None


def test_a_git_tag_pushed_forgets_what_the_remote_s_tags_point_to(ctx, outside, monkeypatch):
    def pushed(root, *args, check=True):
        assert args[0] == "push"
        outside.remote_tags["v2.2.4-1"] = "1" * 40
        return ""

    monkeypatch.setattr(git, "git", pushed)
    world = ctx.world
    assert world.remote_tag_commit("v2.2.4-1") is None
    assert world.remote_tag_commit("v2.2.4-1") is None
    world.push_git_tag("v2.2.4-1")
    assert world.remote_tag_commit("v2.2.4-1") == "1" * 40
    assert outside.asked[("git", "v2.2.4-1")] == 2


class FakeServices:
    started = 0
    states = {"pypi": "up https://127.0.0.1:1", "registry": "down"}

    def __init__(self, settings):
        pass

    def status(self):
        return dict(self.states)

    def up(self, log):
        FakeServices.started += 1
        FakeServices.states = {name: "up" for name in self.states}


def test_the_local_services_are_started_once_a_run(ctx, monkeypatch):
    from ac_release.services import manager

    monkeypatch.setattr(manager, "LocalServices", FakeServices)
    monkeypatch.setattr(FakeServices, "states", {"pypi": "up", "registry": "down"})
    monkeypatch.setattr(FakeServices, "started", 0)
    world = ctx.world
    assert world.services_running() is False
    world.ensure_services()
    world.ensure_services()
    assert world.services_running() is True  # asked again once started
    assert FakeServices.started == 1


def test_a_stage_whose_act_fails_leaves_nothing_remembered(ctx, outside, monkeypatch):
    """A failed act may have changed what it touched, or found a service gone: the run's next decision (a resumed
    stage in the same process) asks the registry and the services again, and starts the local services again."""
    from ac_release.pipeline import run as pipeline
    from ac_release.services import manager

    monkeypatch.setattr(manager, "LocalServices", FakeServices)
    monkeypatch.setattr(FakeServices, "states", {"pypi": "up", "registry": "up"})
    monkeypatch.setattr(FakeServices, "started", 0)
    outside.hold(REPO_1, "2.2.4-1")
    ctx.world.ensure_services()
    ctx.world.remote_image(REPO_1, "2.2.4-1")

    class FailingStage:
        @staticmethod
        def decide(ctx):
            return []

        @staticmethod
        def act(ctx, steps):
            raise ReleaseError("the registry went away")

    monkeypatch.setitem(pipeline.STAGES, "push", FailingStage)
    with pytest.raises(ReleaseError, match="went away"):
        pipeline.run_stage(ctx, "push")
    assert FakeServices.started == 1  # once a run: run_stage found them started
    ctx.world.remote_image(REPO_1, "2.2.4-1")
    ctx.world.ensure_services()
    assert outside.asked[("image", REPO_1, "2.2.4-1")] == 2
    assert FakeServices.started == 2  # forgotten after the failure: started again


def test_standing_services_that_do_not_answer_stop_the_run(tmp_path, monkeypatch):
    from ac_release.services import manager

    monkeypatch.setattr(manager, "LocalServices", FakeServices)
    monkeypatch.setattr(FakeServices, "states", {"pypi": "up", "registry": "down"})
    for name in ("AC_INDEX_PASSWORD", "AC_QUAY_PASSWORD", "AC_HUB_PASSWORD"):
        monkeypatch.setenv(name, "not-a-secret")
    settings = load_settings(write_config(tmp_path, staging=True))
    staging = ReleaseContext.create("2.2.4-1", settings, "staging", console=Console(quiet=True))
    with pytest.raises(ReleaseError, match=r"do not answer \(registry\)"):
        staging.world.ensure_services()
    FakeServices.states = {"pypi": "up", "registry": "up"}  # the host brings it back: a later attempt asks again
    staging.world.ensure_services()
    assert staging.world.services_running() is True


def test_each_stage_s_decision_after_the_preflight_s_plan_asks_the_registry_nothing_new(ctx, outside, monkeypatch):
    """The preflight plans push and promote; their decisions again then find every answer the plan got."""
    monkeypatch.setattr(ctx.world, "services_running", lambda: True)
    for tag in ("2.2.4-1", "2.2.4-1-bullseye", "2.2.4", "2.2.4-bullseye"):
        outside.hold(ctx.target.registries[0], tag)
    planned = [*push.decide(ctx), *promote.decide(ctx, earlier=("push",))]
    asked = Counter(outside.asked)
    assert [*push.decide(ctx), *promote.decide(ctx, earlier=("push",))] == planned
    assert outside.asked == asked
    assert all(count == 1 for count in asked.values()), asked
