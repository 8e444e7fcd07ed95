"""What is out there, asked once per run: the index, the registries, the Docker engine, the git remote, the services.

One `World` per run (`ctx.world`) answers the questions the stages' decisions ask of the outside and remembers each
answer, so the preflight's plan, each stage's re-check, `status` and the dry run ask the outside once. Every act
that changes the outside goes through the world (or tells it what it changed), and the world forgets exactly those
answers, so a decision after an act asks again what the act changed:

- an upload forgets the files of that project on that index;
- a write to `repository:tag` (a push, a registry-side copy or tag, cosign's signature or attestation tag, the
  release files) forgets that tag's image, what it holds per platform and the repository's tag list (and the
  release-files listing of the tag);
- a docker build, tag or pull of a reference forgets that reference, and every name or id the engine did not hold
  (the new image may answer to it); a removal or a load forgets every answer of the engine (the run's Docker client
  tells the world of each such write itself);
- a git tag pushed forgets what the remote's tags point to;
- starting the services forgets whether they run.

What never changes is never forgotten: the labels of an image digest. Reads an act makes to check its own write (the
read-back after a push or upload) go to the clients directly: they must see the outside, not a memory of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from ac_release.clients import git, index, oci_index, registry
from ac_release.clients import oci_release_files as release_files
from ac_release.clients.upload import upload
from ac_release.core.errors import ReleaseError

if TYPE_CHECKING:
    from ac_release.clients.docker import Docker
    from ac_release.model.config import Target

_ABSENT = None  # what image_id answers for a reference or id the engine does not hold


class Memo:
    """Answers by key, each asked once until forgotten. Safe across threads (the attest stage's checks and the images
    stage's work ahead ask at once): an answer asked while something was forgotten is returned but not kept, since
    it may predate the act that forgot it."""

    def __init__(self) -> None:
        self._answers: dict[Hashable, Any] = {}
        self._lock = threading.Lock()
        self._forgets = 0
        self.asked = 0  # how often the outside was asked: what the unit tests count

    def get(self, key: Hashable, ask: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._answers:
                return self._answers[key]
            forgets = self._forgets
            self.asked += 1
        answer = ask()  # a ReleaseError is not an answer: it is raised, and asked again next time
        with self._lock:
            if self._forgets == forgets:
                self._answers[key] = answer
        return answer

    def forget(self, match: Callable[[Hashable, Any], bool]) -> None:
        """Forget every answer whose (key, answer) matches."""
        with self._lock:
            self._forgets += 1
            for key in [key for key, answer in self._answers.items() if match(key, answer)]:
                del self._answers[key]


def project_of(filename: str) -> str:
    """The canonical project name of a wheel or sdist file name (what the index lists it under)."""
    name = parse_wheel_filename(filename)[0] if filename.endswith(".whl") else parse_sdist_filename(filename)[0]
    return canonicalize_name(name)


class World:
    """The outside as one run sees it. Every key names where the answer came from (index URL, repository, remote),
    so answers about one place never stand in for another's."""

    def __init__(self, target: Target, root: Path, docker: Callable[[], Docker], log: Callable[[str], None]):
        """`target`: where the run goes; `root`: the checkout (its git remote's tags); `docker`: the run's Docker
        client, made when first asked; `log`: the run's log."""
        self._target, self._root, self._docker, self._log = target, root, docker, log
        self.index = Memo()  # (index URL, project) -> {filename: IndexFile}
        self.images = Memo()  # (repository, tag) -> RemoteImage | None
        self.platforms_of = Memo()  # (repository, tag) -> RemotePlatforms | None
        self.tag_lists = Memo()  # repository -> [tag]
        self.labels_of = Memo()  # (repository, digest) -> {label: value}: a digest's labels never change
        self.release_files_of = Memo()  # (repository, tag) -> {name: sha256} | None
        # (repository, ((platform, manifest digest), ...)) -> the index's digest: a manifest of a digest never changes
        self.index_digests = Memo()
        self.engine = Memo()  # reference or image id -> image id | None
        self.git_remote = Memo()  # (remote, tag) -> commit | None
        self.services = Memo()  # services directory -> do they all answer
        self._started: set[str] = set()  # the services directories this run started (LocalServices.up)
        self._starting = threading.Lock()

    def forget_all(self) -> None:
        """Forget every answer, and that the services were started: after an act that failed, which may have changed
        anything it touched (or found a service gone), nothing known before it stands."""
        memos = (self.index, self.images, self.platforms_of, self.tag_lists, self.release_files_of, self.engine)
        for memo in (*memos, self.git_remote):
            memo.forget(lambda key, answer: True)
        self.services.forget(lambda key, answer: True)
        with self._starting:
            self._started.clear()

    # -- the index ------------------------------------------------------------------------------------------------

    def index_files(self, project: str) -> dict[str, index.IndexFile]:
        """{filename: IndexFile} of `project` on the target's index."""
        settings = self._target.index
        key = (settings.url, canonicalize_name(project))
        return self.index.get(key, lambda: index.project_files(settings, settings.password.read(), project))

    def upload(self, artifact: Path, password: str, attestations: Sequence[Path] = ()) -> str:
        """Upload `artifact` to the target's index (clients/upload.py); forgets its project's files there."""
        settings = self._target.index
        try:
            return upload(settings, artifact, password, attestations)
        finally:  # a failed upload may have landed too
            key = (settings.url, project_of(artifact.name))
            self.index.forget(lambda k, _: k == key)

    # -- the registries -------------------------------------------------------------------------------------------

    def remote_image(self, repository: str, tag: str) -> registry.RemoteImage | None:
        """The image `repository:tag` points to, or None."""
        return self.images.get((str(repository), tag), lambda: registry.remote_image(repository, tag))

    def remote_platforms(self, repository: str, tag: str) -> registry.RemotePlatforms | None:
        """What `repository:tag` holds per platform (registry.remote_platforms), or None (a copy: the caller may
        change its platforms)."""
        remote = self.platforms_of.get((str(repository), tag), lambda: registry.remote_platforms(repository, tag))
        return remote and registry.RemotePlatforms(remote.digest, dict(remote.platforms))

    def index_digest(self, repository: str, platforms: dict[str, str]) -> str:
        """The digest of the index push_index would put for {platform: manifest digest}: its bytes are canonical."""
        key = (str(repository), tuple(platforms.items()))
        return self.index_digests.get(key, lambda: oci_index.sha256(oci_index.assemble(repository, platforms)))

    def tags(self, repository: str) -> list[str]:
        """The tags of `repository` (a copy: the caller may change it)."""
        return list(self.tag_lists.get(str(repository), lambda: registry.tags(repository)))

    def labels(self, repository: str, digest: str) -> dict[str, str]:
        return dict(self.labels_of.get((str(repository), digest), lambda: registry.labels(repository, digest)))

    def release_files(self, repository: str, tag: str) -> dict[str, str] | None:
        """{name: sha256} of the release-files artifact `repository:tag`, or None when there is none."""
        return self.release_files_of.get((str(repository), tag), lambda: release_files.listing(repository, tag))

    def wrote(self, repository: str, *tags: str) -> None:
        """Tell the world that `repository:tag` was written for each of `tags` (pushed, copied, tagged, attested)."""
        name = str(repository)
        self.images.forget(lambda key, _: key[0] == name and key[1] in tags)
        self.platforms_of.forget(lambda key, _: key[0] == name and key[1] in tags)
        self.release_files_of.forget(lambda key, _: key[0] == name and key[1] in tags)
        self.tag_lists.forget(lambda key, _: key == name)

    def forget_repository(self, repository: str) -> None:
        """Ask `repository` again, all of it: another run may have written to it since (promote's last decision)."""
        name = str(repository)
        self.images.forget(lambda key, _: key[0] == name)
        self.platforms_of.forget(lambda key, _: key[0] == name)
        self.tag_lists.forget(lambda key, _: key == name)

    def push(self, image: str, repository: str, tag: str) -> str:
        """`docker push` of the local image id `image` as `repository:tag` (registry.push); returns the digest."""
        try:
            return registry.push(self._docker(), image, repository, tag)
        finally:
            self.wrote(repository, tag)

    def copy_pushed(
        self,
        source: str,
        digest: str,
        repository: str,
        tag: str,
        image: str,
        platforms: Mapping[str, str] | None = None,
    ) -> None:
        """registry.copy_pushed: `source@digest` to `repository:tag`, read back as holding `image`, or with
        `platforms` as the index `digest` of exactly those {platform: manifest digest}; forgets that tag."""
        try:
            registry.copy_pushed(source, digest, repository, tag, image, platforms=platforms)
        finally:
            self.wrote(repository, tag)

    def push_index(self, repository: str, tag: str, platforms: dict[str, str]) -> oci_index.PushedIndex:
        """The OCI index of {platform: manifest digest} under `repository:tag` (oci_index.push_index)."""
        try:
            return oci_index.push_index(repository, tag, platforms)
        finally:
            self.wrote(repository, tag)

    def tag_digest(self, repository: str, digest: str, tag: str) -> None:
        try:
            registry.tag_digest(repository, digest, tag)
        finally:
            self.wrote(repository, tag)

    def push_release_files(self, repository: str, tag: str, files: dict[str, bytes]) -> str:
        try:
            return release_files.push(repository, tag, files)
        finally:
            self.wrote(repository, tag)

    # -- the Docker engine ----------------------------------------------------------------------------------------

    def image_id(self, reference: str) -> str | None:
        """The id of the image `reference` (a name or an id) names in the Docker engine, or None."""
        return self.engine.get(reference, lambda: self._docker().image_id(reference))

    def engine_wrote(self, references: list[str] | None) -> None:
        """Tell the world what the Docker engine wrote (the run's Docker client does, for every image write it makes:
        clients/docker.py): those references, and every name or id the engine lacked (the new image may answer to
        it), are asked again; None (a removal, a load, a prune): every answer of the engine."""
        self.engine.forget(lambda key, answer: references is None or key in references or answer is _ABSENT)

    # -- the git remote -------------------------------------------------------------------------------------------

    def remote_tag_commit(self, tag: str) -> str | None:
        """The commit the target's git remote's `tag` points to, or None."""
        root, remote = self._root, self._target.git_remote
        return self.git_remote.get((remote, tag), lambda: git.remote_tag_commit(root, remote, tag))

    def push_git_tag(self, tag: str) -> None:
        root, remote = self._root, self._target.git_remote
        try:
            git.git(root, "push", "--quiet", "--", remote, f"refs/tags/{tag}")
        finally:
            self.git_remote.forget(lambda key, _: key[0] == remote)

    # -- the services ---------------------------------------------------------------------------------------------

    def services_running(self) -> bool:
        """Can the target's remote state be read without starting anything? Always for a target without services
        here; else whether every service answers."""
        services = self._target.services
        if services is None:
            return True
        from ac_release.services.manager import LocalServices

        return self.services.get(
            str(services.dir),
            lambda: all(state.startswith("up") for state in LocalServices(services).status().values()),
        )

    def ensure_services(self) -> None:
        """The local target's services started (idempotent: what answers with its current credentials is left
        running) before a stage talks to them, once per run; a target's standing services (staging) are only
        reached: a release never starts them."""
        services = self._target.services
        if services is None:
            return
        from ac_release.services.manager import LocalServices

        if self._target.standing_services:
            if not self.services_running():
                self.services.forget(lambda key, _: key == str(services.dir))  # a later attempt asks again
                down = [name for name, state in LocalServices(services).status().items() if not state.startswith("up")]
                raise ReleaseError(
                    f"the services of target {self._target.name} do not answer ({', '.join(down)}): they stand "
                    f"on their host, started once there with `invoke services.up --target {self._target.name}`"
                )
            return
        with self._starting:
            if str(services.dir) in self._started:
                return
            try:
                LocalServices(services).up(log=self._log)
            finally:
                self.services.forget(lambda key, _: key == str(services.dir))
            self._started.add(str(services.dir))
