"""Every stage's decision function against a fake index, registry, Docker engine and git remote: one fast test per
decision (the integration suite runs the same functions against the real services)."""

from __future__ import annotations

import hashlib
import shutil
import threading
from dataclasses import replace

import pytest
from rich.console import Console

from ac_release.building.image_state import flavour_state
from ac_release.clients import git, oci_index, registry
from ac_release.clients import oci_release_files as release_files
from ac_release.clients.index import IndexFile
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.config import load_settings
from ac_release.model.flavours import AMD64, ARM64
from ac_release.model.names import ATTESTATION_KINDS, WHEEL_RECORD, attestation_name, bundle_name
from ac_release.model.records import (
    Artifact,
    FlavourImages,
    FlavourTest,
    ImagesRecord,
    Session,
    SessionsRecord,
    VariantImage,
    WheelRecord,
)
from ac_release.pipeline import restore_dist as restore
from ac_release.pipeline.run import RELEASE, stage_names
from ac_release.stages import images, index, promote, publish, push, sign, tag, test, wheel
from ac_release.supply_chain.image_attestations import cosign_tag
from ac_release.world.context import ReleaseContext, flavours, release_platforms
from tests.helpers import REPO, write_config

AIRFLOW = "apache_airflow-2.2.4+astro.1-py3-none-any.whl"
META = "astronomer_certified-2.2.4.post1-py3-none-any.whl"
VARIANTS = ("base", "onbuild")
A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
IMMUTABLE = ("2.2.4-1", "2.2.4-1-bullseye", "2.2.4-1-onbuild", "2.2.4-1-bullseye-onbuild")  # the index stage's
FLOATING = ("2.2.4", "2.2.4-bullseye", "2.2.4-onbuild", "2.2.4-bullseye-onbuild")  # the promote stage's


def on(platform, ids=(A, B)) -> tuple[str, ...]:
    """The image ids (base, onbuild) of `platform`'s images: `ids` for linux/amd64, ids derived from them for another
    platform (each platform's images are images of their own)."""
    if platform == AMD64:
        return tuple(ids)
    return tuple("sha256:" + hashlib.sha256(f"{platform} {image}".encode()).hexdigest() for image in ids)


def manifest_of(image: str) -> str:
    """The digest of the manifest the registry holds a pushed image `image` under (the fake's: one per image)."""
    return "sha256:" + hashlib.sha256(f"manifest of {image}".encode()).hexdigest()


def index_of(manifests: dict[str, str]) -> registry.RemotePlatforms:
    """An OCI index of {platform: manifest digest} as registry.remote_platforms reads it: its own digest."""
    digest = "sha256:" + hashlib.sha256(repr(sorted(manifests.items())).encode()).hexdigest()
    return registry.RemotePlatforms(digest, dict(manifests))


class FakeDocker:
    def __init__(self):
        self.images: dict[str, str] = {}

    def image_id(self, ref: str) -> str | None:
        return self.images.get(ref) or (ref if ref in self.images.values() else None)


class World:
    """A release context on a copy of the repository's data, with fake remotes the tests fill in. Its target builds
    `platforms` of the line's (linux/amd64 alone by default; None: the line's, linux/amd64 and linux/arm64)."""

    def __init__(self, tmp_path, monkeypatch, version="2.2.4-1", platforms=("linux/amd64",)):
        root = tmp_path / "root"
        for part in ("wheel", "images", "changelog", "products"):
            shutil.copytree(REPO / part, root / part)
        self.settings = load_settings(write_config(tmp_path, root=root, platforms=platforms))
        self._ctx = ReleaseContext.create(version, self.settings, console=Console(quiet=True))
        self.docker = FakeDocker()
        self._ctx.__dict__["docker"] = self.docker
        self.index: dict[str, IndexFile] = {}
        self.tags: dict[tuple[str, str], registry.RemoteImage] = {}  # tags naming one image manifest
        self.indexes: dict[tuple[str, str], registry.RemotePlatforms] = {}  # tags naming an index of platforms
        self.head, self.local_tag, self.remote_tag = "1" * 40, None, None
        self.bad_bundles: set[str] = set()
        self.release_files: dict[str, dict[str, str]] = {}  # tag -> {name: sha256} of the release-files artifact
        monkeypatch.setattr(release_files, "listing", lambda repo, t: self.release_files.get(t))
        for module in (publish, test, push, index, promote, tag):
            monkeypatch.setattr(module, "services_running", lambda ctx: True)
        monkeypatch.setattr(publish, "index_state", lambda ctx: dict(self.index))
        monkeypatch.setattr(registry, "remote_image", lambda repo, t: self.tags.get((repo, t)))
        monkeypatch.setattr(registry, "remote_platforms", self._remote_platforms)
        # the index the registry would make of {platform: manifest digest}: index_of's digest
        monkeypatch.setattr(oci_index, "assemble", lambda repo, platforms: repr(sorted(platforms.items())).encode())
        monkeypatch.setattr(registry, "tags", lambda repo: [t for r, t in (*self.tags, *self.indexes) if r == repo])
        monkeypatch.setattr(tag, "head", lambda root: self.head)
        monkeypatch.setattr(tag, "local_tag_commit", lambda root, name: self.local_tag)
        monkeypatch.setattr(git, "remote_tag_commit", lambda root, remote, name: self.remote_tag)

        def verify(ctx, artifact, bundle):
            if artifact.name in self.bad_bundles:
                raise ReleaseError(f"signature check failed for {artifact.name} with {bundle.name}: mismatch")

        monkeypatch.setattr(sign, "verify", verify)

        def check_attestation(ctx, artifact, attestation, kind):
            if artifact.name in self.bad_bundles:
                raise ReleaseError(f"{attestation.name} does not verify as {ctx.target.signing.identity}: mismatch")

        monkeypatch.setattr(sign.wheel_attestations, "verify", check_attestation)
        self.repository = self.ctx.target.registries[0]
        for platform in self.platforms:  # each platform's base image, in the engine
            base = flavour_state(self.ctx, flavours(self.ctx)[0], platform).base
            self.docker.images[base] = "sha256:" + hashlib.sha256(base.encode()).hexdigest()

    def _remote_platforms(self, repository, tag) -> registry.RemotePlatforms | None:
        """registry.remote_platforms: an index's platforms; a tag naming one image manifest (a release before
        platforms) holds that image alone, linux/amd64's."""
        if (repository, tag) in self.indexes:
            return self.indexes[(repository, tag)]
        image = self.tags.get((repository, tag))
        return image and registry.RemotePlatforms(image.digest, {str(AMD64): image.digest})

    @property
    def platforms(self):
        return release_platforms(self._ctx)

    @property
    def ctx(self) -> ReleaseContext:
        """The context of a run that starts now: these tests change the outside between decisions, behind the back
        of any run, so each decision asks a world of its own (test_world.py tests what one run remembers)."""
        self._ctx.__dict__.pop("world", None)
        return self._ctx

    def built(self):
        """dist/ holds the wheel stage's output, recorded with these inputs."""
        artifacts = {}
        for name in self.ctx.artifact_names:
            path = self.ctx.dist / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(name.encode())
            artifacts[name] = Artifact(sha256_file(path), path.stat().st_size)
        self.ctx.manifest.put(WheelRecord(wheel.input_fingerprint(self.ctx), artifacts, {}, "env", 0))
        return self

    def signed(self):
        self.ctx.bundles.mkdir(parents=True, exist_ok=True)
        for name in self.ctx.artifact_names:
            (self.ctx.bundles / bundle_name(name)).write_text("{}")
            for kind in ATTESTATION_KINDS:
                (self.ctx.bundles / attestation_name(name, kind)).write_text("{}")
        return self

    def published(self):
        for name, artifact in self.ctx.manifest.get(WheelRecord).artifacts.items():
            self.index[name] = IndexFile(artifact.sha256, f"http://index/{name}")
        return self

    def imaged(self, ids=(A, B)):
        """The images stage's record: each platform's images (`on(platform, ids)`), in the engine."""
        (flavour,) = flavours(self.ctx)
        record = ImagesRecord({})
        for platform in self.platforms:
            state = flavour_state(self.ctx, flavour, platform)
            built = dict(zip(VARIANTS, on(platform, ids), strict=True))
            for variant, image in built.items():
                self.docker.images[state.refs[variant]] = image
            variants = {variant: VariantImage(image, state.refs[variant], 1, 0.0) for variant, image in built.items()}
            record.put(flavour.name, platform, FlavourImages(state.fingerprint, state.base, variants))
        self.ctx.save(record)
        return self

    def tested(self, upgrade_from=None, ids=(A, B)):
        record = SessionsRecord({})
        for platform in self.platforms:
            images = dict(zip(VARIANTS, on(platform, ids), strict=True))
            result = FlavourTest(images, upgrade_from, Session("passed"), Session("no earlier release"))
            record.put("bullseye", platform, result)
        self.ctx.save(record)
        return self

    def pushed(self, version="2.2.4-1", ids=(A, B)):
        """The push stage's work: each platform's images under their own tags (`2.2.4-1-bullseye-amd64`)."""
        for platform in self.platforms:
            for variant, image in zip(VARIANTS, on(platform, ids), strict=True):
                suffix = "-onbuild" if variant == "onbuild" else ""
                own = f"{version}-bullseye{suffix}-{platform.architecture}"
                self.tags[(self.repository, own)] = registry.RemoteImage(manifest_of(image), image)
        return self

    def _indexes(self, ids) -> dict[str, registry.RemotePlatforms]:
        """{variant: the index of its platforms' images `ids` once pushed}."""
        return {
            variant: index_of({str(p): manifest_of(on(p, ids)[n]) for p in self.platforms})
            for n, variant in enumerate(VARIANTS)
        }

    def indexed(self, version="2.2.4-1", ids=(A, B)):
        """The index stage's work: each immutable tag the index of the platforms' images `ids`."""
        for variant, made in self._indexes(ids).items():
            suffix = "-onbuild" if variant == "onbuild" else ""
            for tag_name in (f"{version}{suffix}", f"{version}-bullseye{suffix}"):
                self.indexes[(self.repository, tag_name)] = made
        return self

    def released(self, version="2.2.4-1", ids=(A, B)):
        """Pushed, indexed and promoted: the floating tags name the indexes of `version`."""
        self.pushed(version, ids).indexed(version, ids)
        for variant, made in self._indexes(ids).items():
            suffix = "-onbuild" if variant == "onbuild" else ""
            for tag_name in (f"2.2.4{suffix}", f"2.2.4-bullseye{suffix}"):
                self.indexes[(self.repository, tag_name)] = made
        return self

    def steps(self, module, earlier=None) -> list:
        """The stage's decision; by default as the plan of a whole release asks it (every earlier stage acts first)."""
        return module.decide(self.ctx, RELEASE[: RELEASE.index(module.NAME)] if earlier is None else earlier)

    def actions(self, module, earlier=None) -> dict[str, str]:
        return {step.target: step.action for step in self.steps(module, earlier)}


@pytest.fixture
def world(tmp_path, monkeypatch):
    return World(tmp_path, monkeypatch)


def test_wheel_builds_what_is_missing_keeps_what_is_recorded_and_refuses_changed_bytes(world):
    assert set(world.actions(wheel).values()) == {"build"}
    world.built()
    assert set(world.actions(wheel).values()) == {"keep"}
    (world.ctx.dist / META).write_bytes(b"other bytes")
    assert world.actions(wheel)[f"dist/2.2.4-1/{META}"] == "refuse"


def test_wheel_rebuilds_when_its_inputs_changed(world):
    world.built()
    patch = next((world.ctx.line.directory / "patches").glob("*.patch"))
    patch.write_text(patch.read_text() + "\n")
    assert set(world.actions(wheel).values()) == {"build"}


def test_sign_signs_missing_keeps_verified_refuses_bad_bundles_and_swapped_artifacts(world):
    world.built()
    assert set(world.actions(sign).values()) == {"sign"}
    world.signed()
    assert set(world.actions(sign).values()) == {"keep"}
    world.bad_bundles.add(AIRFLOW)
    actions = world.actions(sign)
    assert actions[f"2.2.4-1/sigstore/local/{bundle_name(AIRFLOW)}"] == "refuse"
    for kind in ATTESTATION_KINDS:
        assert actions[f"2.2.4-1/sigstore/local/{attestation_name(AIRFLOW, kind)}"] == "refuse"
    world.bad_bundles.clear()
    (world.ctx.bundles / attestation_name(META, "slsa")).unlink()
    assert world.actions(sign)[f"2.2.4-1/sigstore/local/{attestation_name(META, 'slsa')}"] == "sign"
    (world.ctx.dist / META).write_bytes(b"swapped")
    assert world.actions(sign)[f"2.2.4-1/sigstore/local/{bundle_name(META)}"] == "refuse"
    assert world.actions(sign)[f"2.2.4-1/sigstore/local/{attestation_name(META, 'publish')}"] == "refuse"


def test_publish_uploads_skips_and_refuses_by_sha256(world):
    world.built()
    url = world.ctx.target.index.url.rstrip("/")
    files = f"{world.repository}/release-files:2.2.4-1"
    assert world.actions(publish) == {f"{url}/{name}": "upload" for name in world.ctx.artifact_names} | {files: "push"}
    world.published()
    world.release_files["2.2.4-1"] = {"a.sigstore.json": "0" * 64}
    assert set(world.actions(publish).values()) == {"skip"}  # not signed here: compared once it is
    world.index[META] = IndexFile("f" * 64, "http://index/x")
    assert world.actions(publish)[f"{url}/{META}"] == "refuse"


def test_publish_pushes_the_release_files_once_and_refuses_other_ones(world):
    world.built().signed().published()
    files = f"{world.repository}/release-files:2.2.4-1"
    assert world.actions(publish)[files] == "push"
    ours = {n: hashlib.sha256(c).hexdigest() for n, c in publish.release_files_content(world.ctx).items()}
    assert WHEEL_RECORD in ours and len(ours) == 3 * 3 + 1  # a bundle and two attestations per artifact
    world.release_files["2.2.4-1"] = ours
    assert world.actions(publish)[files] == "skip"
    world.release_files["2.2.4-1"] = ours | {WHEEL_RECORD: "0" * 64}  # another build's record
    (step,) = [s for s in world.steps(publish) if s.target == files]
    assert step.action == "refuse" and step.reason.startswith(f"holds other files ({WHEEL_RECORD})")


def test_publish_is_unknown_while_the_local_index_is_down(world, monkeypatch):
    monkeypatch.setattr(publish, "services_running", lambda ctx: False)
    assert set(world.actions(publish).values()) == {"unknown"}


def test_images_keep_current_images_and_rebuild_when_an_input_changed(world):
    world.built().published()
    assert set(world.actions(images).values()) == {"build"}
    world.imaged()
    assert set(world.actions(images).values()) == {"keep"}
    script = world.ctx.images_dir / "include" / "entrypoint"
    script.write_text(script.read_text() + "# changed\n")
    assert set(world.actions(images).values()) == {"build"}


def test_images_are_kept_when_another_checkout_moved_their_local_references(world):
    """The engine is shared: the references are names; the release's images are its recorded ids."""
    world.built().published().imaged()
    for ref in [ref for ref in world.docker.images if ref.startswith("ac-release/local/")]:
        world.docker.images[ref] = "sha256:" + "c" * 64  # another checkout's build, same name
    world.docker.images["elsewhere"] = A  # ours, still in the engine under no name of ours
    world.docker.images["elsewhere-onbuild"] = B
    assert set(world.actions(images).values()) == {"keep"}


def test_images_are_kept_across_a_commit_that_changes_none_of_their_inputs(world, monkeypatch):
    world.built().published().imaged()
    monkeypatch.setattr("ac_release.building.image_build.revision", lambda root: "9" * 40)  # HEAD moved on
    assert set(world.actions(images).values()) == {"keep"}


def test_images_refuse_while_the_dockerfiles_drift_from_the_template(world):
    world.built()
    (world.ctx.images_dir / "Dockerfile.j2").write_text(
        (world.ctx.images_dir / "Dockerfile.j2").read_text() + "\n# x\n"
    )
    assert world.actions(images) == {"images/": "refuse"}


def test_tests_are_skipped_only_for_the_very_images_from_the_same_earlier_release(world):
    smoke, upgrade = "smoke/bullseye/linux/amd64", "upgrade/bullseye/linux/amd64"
    world.built().imaged()
    assert world.actions(test) == {smoke: "run", upgrade: "skip"}  # first release
    world.tested()
    assert world.actions(test) == {smoke: "skip", upgrade: "skip"}
    # an earlier release of another platform alone: none to upgrade from, and these images passed as a first release
    world.indexes[(world.repository, "2.2.3-1")] = index_of({"linux/arm64": manifest_of(A)})
    assert world.actions(test) == {smoke: "skip", upgrade: "skip"}
    earlier = index_of({"linux/amd64": manifest_of(B), "linux/arm64": manifest_of(A)})
    world.indexes[(world.repository, "2.2.3-1")] = earlier  # an earlier release of this platform appeared
    assert world.actions(test) == {smoke: "run", upgrade: "run"}
    (step,) = [step for step in world.steps(test) if step.target == upgrade]
    assert step.payload.previous.digest == manifest_of(B)  # its linux/amd64 image, pulled by that digest
    world.indexes.pop((world.repository, "2.2.3-1"))
    world.tags[(world.repository, "2.2.3-1")] = registry.RemoteImage(B, B)  # a release before platforms: amd64's
    assert world.actions(test) == {smoke: "run", upgrade: "run"}


def test_tests_run_again_when_the_images_will_be_rebuilt(world):
    world.built().imaged().tested()
    script = world.ctx.images_dir / "include" / "entrypoint"
    script.write_text(script.read_text() + "# changed\n")
    assert world.actions(test)["smoke/bullseye/linux/amd64"] == "run"


def test_a_fresh_machine_reads_the_release_files_back_and_refuses_a_record_the_index_contradicts(
    world, tmp_path, monkeypatch
):
    """The workflow's images job: no dist/, the wheel record and bundles come from the release files."""
    world.built().signed().published()
    files = publish.release_files_content(world.ctx)
    world.release_files["2.2.4-1"] = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    monkeypatch.setattr(release_files, "fetch_files", lambda repo, tag, names: {name: files[name] for name in names})
    monkeypatch.setattr(restore, "index_state", lambda ctx: dict(world.index))
    monkeypatch.setattr(restore, "services_running", lambda ctx: True)

    def fresh(name):
        settings = replace(world.settings, dist_dir=tmp_path / name)
        return ReleaseContext.create("2.2.4-1", settings, console=Console(quiet=True))

    machine = fresh("images-job")
    assert restore.restore_release_files(machine) == sorted(files)
    assert machine.manifest.get(WheelRecord) == world.ctx.manifest.get(WheelRecord)
    url = world.ctx.target.index.url.rstrip("/")
    assert {step.target: step.action for step in publish.decide(machine)} == {
        f"{url}/apache-airflow-2.2.4+astro.1.tar.gz": "skip",
        f"{url}/{AIRFLOW}": "skip",
        f"{url}/{META}": "skip",
        f"{world.repository}/release-files:2.2.4-1": "skip",
    }
    assert restore.restore_release_files(machine) == []  # nothing missing any more
    world.index[META] = IndexFile("f" * 64, "http://index/x")  # the index serves other bytes than the record names
    other = fresh("another-job")
    with pytest.raises(ReleaseError, match=rf"^the wheel record of .*release-files:2.2.4-1 names {META} with sha256 "):
        restore.restore_release_files(other)
    assert not other.dist.exists()  # refused before anything was written


def test_push_pushes_skips_and_refuses_the_platform_tags(world):
    world.built().imaged().tested()
    steps = world.actions(push)
    own = ("2.2.4-1-bullseye-amd64", "2.2.4-1-bullseye-onbuild-amd64")
    assert steps == {f"{world.repository}:{t}": "push" for t in own}  # the immutable tags are the index stage's
    world.pushed()
    assert set(world.actions(push).values()) == {"skip"}
    world.pushed(ids=(B, A))  # another image under our platform tags
    assert world.actions(push)[f"{world.repository}:2.2.4-1-bullseye-amd64"] == "refuse"


def test_push_refuses_an_existing_platform_tag_before_the_images_are_built(world):
    world.pushed()
    assert world.actions(push)[f"{world.repository}:2.2.4-1-bullseye-amd64"] == "refuse"


def test_index_pushes_an_absent_immutable_tag_once_every_platform_tag_is_there(world):
    """It reads the registry alone (no record, no local image): release.yml's index job on a fresh machine."""
    world.pushed()
    steps = world.steps(index, earlier=())
    base, onbuild = index_of({"linux/amd64": manifest_of(A)}), index_of({"linux/amd64": manifest_of(B)})
    # each new index's signature decided with it: its digest is known before it is pushed (canonical bytes)
    signatures = {f"{world.repository}:{t}.sig": "sign" for t in IMMUTABLE}
    pushes = {f"{world.repository}:{t}": "push" for t in IMMUTABLE}
    assert {step.target: step.action for step in steps} == pushes | signatures
    # two immutable tags of one index, one signature (act signs each digest once)
    assert {step.payload.digest for step in steps if step.action == "sign"} == {base.digest, onbuild.digest}
    targets = {step.payload.tag: step.payload for step in steps if step.action == "push"}
    assert dict(targets["2.2.4-1"].platforms) == {"linux/amd64": "2.2.4-1-bullseye-amd64"}
    assert dict(targets["2.2.4-1-bullseye"].manifests) == {"linux/amd64": manifest_of(A)}
    assert dict(targets["2.2.4-1-onbuild"].manifests) == {"linux/amd64": manifest_of(B)}
    assert (targets["2.2.4-1"].digest, targets["2.2.4-1-onbuild"].digest) == (base.digest, onbuild.digest)
    assert steps[1].reason == f"signature of its index {base.digest} as {world.ctx.signer.identity}"


def test_index_skips_an_immutable_tag_that_is_already_the_index_then_signs_keeps_or_refuses_its_signature(
    world, monkeypatch
):
    world.pushed().indexed()
    base, onbuild = (world.indexes[(world.repository, t)] for t in ("2.2.4-1", "2.2.4-1-onbuild"))
    signatures = {f"{world.repository}:{t}.sig" for t in IMMUTABLE}

    def decided():
        steps = world.steps(index, earlier=())
        tags = {step.target: step.action for step in steps if step.target not in signatures}
        assert tags == {f"{world.repository}:{t}": "skip" for t in IMMUTABLE}
        return {step.target: step for step in steps if step.target in signatures}

    assert {target: step.action for target, step in decided().items()} == dict.fromkeys(signatures, "sign")
    for made in (base, onbuild):  # cosign's signature tags beside the indexes
        world.tags[(world.repository, cosign_tag(made.digest, "sig"))] = registry.RemoteImage(made.digest, "x")
    verified = []
    monkeypatch.setattr(index.cosign, "trust_of", lambda ctx: "trust")
    monkeypatch.setattr(
        index.cosign, "verify_image", lambda trust, image, signer: verified.append((image.digest, signer.identity))
    )
    assert {target: step.action for target, step in decided().items()} == dict.fromkeys(signatures, "keep")
    assert set(verified) == {(made.digest, world.ctx.signer.identity) for made in (base, onbuild)}

    def another_signer(trust, image, signer):
        raise ReleaseError(f"no signature of {image.digest} by {signer.identity}")

    monkeypatch.setattr(index.cosign, "verify_image", another_signer)
    steps = decided()
    assert {step.action for step in steps.values()} == {"refuse"}
    assert steps[f"{world.repository}:2.2.4-1.sig"].reason == (
        f"no signature of {base.digest} by {world.ctx.signer.identity}; remove it from the registry to sign again"
    )


def test_index_refuses_an_immutable_tag_holding_other_manifests(world):
    world.pushed()
    where = f"{world.repository}:2.2.4-1"
    other = index_of({"linux/amd64": manifest_of(B)})  # another image's
    world.indexes[(world.repository, "2.2.4-1")] = other
    steps = {step.target: step for step in world.steps(index, earlier=())}
    assert steps[where].action == "refuse"
    assert steps[where].reason == (
        f"already holds {other.digest} (linux/amd64 {manifest_of(B)}), this release's platforms are linux/amd64 "
        f"{manifest_of(A)}: immutable tags never move; release the next build number"
    )
    assert steps[f"{world.repository}:2.2.4-1-bullseye"].action == "push"  # the others are absent
    # ours and a platform this release does not build
    world.indexes[(world.repository, "2.2.4-1")] = index_of({"linux/amd64": manifest_of(A), "linux/arm64": B})
    assert world.actions(index, earlier=())[where] == "refuse"


def test_index_refuses_while_a_platform_tag_is_missing_unless_the_push_stage_runs_before(world):
    steps = world.steps(index, earlier=())
    assert {step.target: step.action for step in steps} == {f"{world.repository}:{t}": "refuse" for t in IMMUTABLE}
    assert steps[0].reason == (
        f"{world.repository}:2.2.4-1-bullseye-amd64 is not pushed: push its linux/amd64 images first "
        f"(`invoke release 2.2.4-1 --platform linux/amd64 --stages images,test,push,attest`)"
    )
    for earlier in (["push"], None):  # None: a whole release, pushed before
        steps = world.steps(index, earlier=earlier)
        assert [step.action for step in steps] == ["push", "sign"] * len(IMMUTABLE)
        assert steps[1].target == f"{world.repository}:2.2.4-1.sig"
        assert steps[1].reason == f"signature of its index as {world.ctx.signer.identity}"
        assert steps[0].reason == "index of linux/amd64 once they are pushed"


def test_index_refuses_an_immutable_tag_already_there_before_the_platform_tags_are_pushed(world):
    """The dry run of a release whose immutable tag holds another image refuses it before anything is built (the
    index stage said `push`, "once they are pushed", and the release built, tested and pushed before it refused)."""
    where = f"{world.repository}:2.2.4-1-bullseye"
    other = index_of({"linux/amd64": manifest_of(B)})
    world.indexes[(world.repository, "2.2.4-1-bullseye")] = other
    for earlier in (["push"], ()):
        steps = {step.target: step for step in world.steps(index, earlier=earlier)}
        assert steps[where].action == "refuse"
        assert steps[where].reason == (
            f"already holds {other.digest} (linux/amd64 {manifest_of(B)}) while this release's linux/amd64 image is "
            f"not pushed ({world.repository}:2.2.4-1-bullseye-amd64): immutable tags never move; release the next "
            "build number"
        )


def test_a_release_of_two_platforms_decides_each_platform_on_its_own(tmp_path, monkeypatch):
    world = World(tmp_path, monkeypatch, platforms=None)  # the line's platforms
    assert world.platforms == (AMD64, ARM64)
    repository = world.repository
    world.built().imaged()
    assert world.actions(test) == {
        f"{kind}/bullseye/{platform}": "run" if kind == "smoke" else "skip"
        for kind in ("smoke", "upgrade")
        for platform in ("linux/amd64", "linux/arm64")
    }
    world.tested()
    own = {f"2.2.4-1-bullseye{suffix}-{arch}" for suffix in ("", "-onbuild") for arch in ("amd64", "arm64")}
    steps = {step.target: step for step in world.steps(push, earlier=())}
    assert {target: step.action for target, step in steps.items()} == {f"{repository}:{t}": "push" for t in own}
    arm64 = steps[f"{repository}:2.2.4-1-bullseye-onbuild-arm64"].payload
    assert (arm64.platform, arm64.image) == (ARM64, on(ARM64)[1])
    # the amd64 images built again: their tests run again, arm64's were these images' and are not
    sessions = world.ctx.record(SessionsRecord)
    del sessions.flavours["bullseye"]["linux/amd64"]
    world.ctx.save(sessions)
    assert world.actions(test) == {
        "smoke/bullseye/linux/amd64": "run",
        "upgrade/bullseye/linux/amd64": "skip",
        "smoke/bullseye/linux/arm64": "skip",
        "upgrade/bullseye/linux/arm64": "skip",
    }
    assert world.actions(push, earlier=()) == {
        f"{repository}:{t}": "refuse" if t.endswith("amd64") else "push" for t in own
    }
    # the index of both platforms, once both are pushed
    world.pushed()
    del world.tags[(repository, "2.2.4-1-bullseye-arm64")]
    steps = {step.target: step for step in world.steps(index, earlier=())}
    both = {str(p): manifest_of(on(p)[1]) for p in world.platforms}
    assert {target: step.action for target, step in steps.items()} == {
        f"{repository}:{t}": "refuse" if "onbuild" not in t else "push" for t in IMMUTABLE
    } | {f"{repository}:{t}.sig": "sign" for t in IMMUTABLE if "onbuild" in t}
    assert {step.payload.digest for step in steps.values() if step.action == "sign"} == {index_of(both).digest}
    assert steps[f"{repository}:2.2.4-1"].reason.startswith(
        f"{repository}:2.2.4-1-bullseye-arm64 is not pushed: push its linux/arm64 images first "
        f"(`invoke release 2.2.4-1 --platform linux/arm64 "
    )
    world.pushed()
    steps = {step.target: step for step in world.steps(index, earlier=())}
    assert {step.action for step in steps.values()} == {"push", "sign"}
    assert dict(steps[f"{repository}:2.2.4-1-bullseye"].payload.manifests) == {
        "linux/amd64": manifest_of(A),
        "linux/arm64": manifest_of(on(ARM64)[0]),
    }
    # release.yml's arm64 job: its own platform's images; the index is the index job's
    job = ReleaseContext.create("2.2.4-1", world.settings, platform="linux/arm64", console=Console(quiet=True))
    job.__dict__["docker"] = world.docker
    assert {step.target for step in push.decide(job)} == {f"{repository}:{t}" for t in own if t.endswith("arm64")}
    assert {step.target for step in test.decide(job)} == {"smoke/bullseye/linux/arm64", "upgrade/bullseye/linux/arm64"}
    assert [(step.action, step.target) for step in index.decide(job)] == [("skip", "indexes")]


def test_floating_tags_are_kept_behind_a_newer_build(world):
    world.built().imaged().tested().released().released(version="2.2.4-2", ids=(B, A))
    steps = world.actions(promote)
    assert steps == {f"{world.repository}:{t}": "keep" for t in FLOATING}


def test_floating_tags_move_registry_side_to_the_index_of_the_immutable_tag(world):
    """Nothing local is read: a fresh machine (the workflow's promote job) decides the same."""
    steps = {step.target: step for step in world.steps(promote)}  # the push and index stages run before it
    assert {steps[f"{world.repository}:{t}"].action for t in FLOATING} == {"move"}
    assert steps[f"{world.repository}:2.2.4"].payload.digest is None  # not pushed yet
    assert set(world.actions(promote, earlier=())) == {f"{world.repository}:{t}" for t in FLOATING}
    assert set(world.actions(promote, earlier=()).values()) == {"refuse"}  # no push before it: refused
    assert set(world.actions(promote, earlier=["push"]).values()) == {"refuse"}  # pushed, never indexed: refused
    world.pushed()  # the platform tags alone: a floating tag moves to the index
    assert set(world.actions(promote, earlier=()).values()) == {"refuse"}
    base = registry.RemotePlatforms("sha256:" + "e" * 64, {"linux/amd64": manifest_of(A)})
    onbuild = registry.RemotePlatforms("sha256:" + "f" * 64, {"linux/amd64": manifest_of(B)})
    world.indexes[(world.repository, "2.2.4-1-bullseye")] = base
    world.indexes[(world.repository, "2.2.4-1-bullseye-onbuild")] = onbuild
    steps = {step.target: step for step in promote.decide(world.ctx)}
    moved = steps[f"{world.repository}:2.2.4-bullseye"].payload
    assert (moved.digest, dict(moved.platforms)) == (base.digest, base.platforms)
    assert steps[f"{world.repository}:2.2.4-onbuild"].payload.digest == onbuild.digest
    world.indexes[(world.repository, "2.2.4")] = base
    world.tags[(world.repository, "2.2.4-onbuild")] = registry.RemoteImage(B, B)  # 2.2.4-0's, before platforms
    steps = {step.target: step for step in promote.decide(world.ctx)}
    assert steps[f"{world.repository}:2.2.4"].action == "skip"
    assert (steps[f"{world.repository}:2.2.4-onbuild"].action, steps[f"{world.repository}:2.2.4-onbuild"].reason) == (
        "move",
        f"from {B} to {onbuild.digest} (2.2.4-1-bullseye-onbuild)",
    )


def test_one_flavour_of_a_release_is_chosen_by_name_and_an_unknown_one_is_refused(world):
    ctx = ReleaseContext.create("2.2.4-1", world.settings, flavour="bullseye", console=Console(quiet=True))
    assert [f.name for f in flavours(ctx)] == ["bullseye"]
    with pytest.raises(ReleaseError, match=r"^no flavour 'trixie' for Airflow 2.2.4: one of bullseye$"):
        ReleaseContext.create("2.2.4-1", world.settings, flavour="trixie")


def test_stages_of_a_workflow_job_run_after_the_preflight_in_pipeline_order():
    assert stage_names("publish,wheel, sign") == ["preflight", "wheel", "sign", "publish"]
    assert stage_names(None) == RELEASE and RELEASE[-4:] == ["attest", "index", "promote", "tag"]
    with pytest.raises(ReleaseError, match=r"^unknown stage 'tests': --stages takes a comma-separated list of "):
        stage_names("images,tests")


def test_git_tag_is_made_kept_or_refused(world):
    where = f"v2.2.4-1@{world.ctx.target.git_remote}"
    assert world.actions(tag) == {where: "tag"}
    world.remote_tag = world.head
    assert world.actions(tag) == {where: "skip"}
    world.remote_tag = "2" * 40
    (step,) = tag.decide(world.ctx)
    assert (step.action, step.state, step.payload) == ("refuse", "present", tag.Released("2" * 40))  # `status`
    world.local_tag = world.remote_tag  # a fresh clone of the release commit, HEAD moved on since: still present
    assert tag.decide(world.ctx)[0].state == "present"
    world.remote_tag, world.local_tag = None, "3" * 40  # a local tag that never reached the remote
    (step,) = tag.decide(world.ctx)
    assert (step.action, step.state, step.payload) == ("refuse", "", None)
    world.remote_tag = "4" * 40  # here and on the remote, at two other commits
    assert (tag.decide(world.ctx)[0].state, tag.decide(world.ctx)[0].payload) == ("", None)


def test_the_test_sessions_get_no_secret_of_the_environment(world, monkeypatch):
    monkeypatch.setenv("AC_INDEX_PASSWORD", "planted-index-password")
    monkeypatch.setenv("SIGSTORE_IDENTITY_TOKEN", "planted-token")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "planted-request-token")  # GitHub's, in a signing job
    monkeypatch.setenv("AC_RELEASE_CONFIG", "/some/release.toml")
    env = test.session_env(world.ctx, "bullseye")
    assert not {"planted-index-password", "planted-token", "planted-request-token"} & set(env.values())
    assert env["AC_RELEASE_CONFIG"] == "/some/release.toml"  # the same configuration as the release
    assert (env["AC_SMOKE_VERSION"], env["AC_SMOKE_FLAVOUR"], env["AC_SMOKE_PLATFORM"], env["AC_SMOKE_TARGET"]) == (
        "2.2.4-1",
        "bullseye",
        "linux/amd64",
        "local",
    )


def test_the_plan_prints_every_value_whole_on_a_log(capsys):
    from ac_release.pipeline.run import print_steps
    from ac_release.stages.steps import Step, parse_line

    digest = "sha256:" + "e" * 64
    target = "registry.example:5000/astronomer/ap-airflow:2.2.4-1-bullseye-onbuild"
    print_steps([Step("push", "refuse", target, f"already holds {digest}")], title="dry run")
    out = capsys.readouterr().out  # captured: not a terminal
    (line,) = [line for line in out.splitlines() if line.startswith("push")]
    assert digest in line and parse_line(line, ["push"]) == ("push", "refuse", target)


def test_no_stage_module_imports_another_stage_or_re_enters_the_pipeline():
    import ast

    for path in sorted((REPO / "ac_release" / "stages").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                imported = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            else:
                if isinstance(node, ast.Constant) and node.value in ("nox", "invoke"):
                    raise AssertionError(f"{path.name} runs {node.value}: a stage never calls back into the pipeline")
                continue
            upward = [
                m
                for m in imported
                if (m.startswith("ac_release.stages") and not m.startswith("ac_release.stages.steps"))
                or m.startswith("ac_release.pipeline")
            ]
            assert not upward, (path.name, imported)


def test_a_release_enters_each_stage_once(world, monkeypatch):
    from ac_release.pipeline import run as pipeline

    calls: list[str] = []

    class FakeStage:
        def __init__(self, name):
            self.NAME = name

        def decide(self, ctx, earlier=()):
            calls.append(f"decide {self.NAME}")
            return []

        def act(self, ctx, steps):
            calls.append(f"act {self.NAME}")

    before_images = threading.Event()

    class StageBeforeImages(FakeStage):
        def act(self, ctx, steps):
            super().act(ctx, steps)
            before_images.set()

    class StageWithWorkAhead(FakeStage):
        def prepare(self, ctx):
            # still working when the stages before it run: it ends only once the last of them has run
            assert before_images.wait(timeout=60), "the work ahead ran alone: no stage before images ran meanwhile"
            calls.append(f"prepared {self.NAME}")

    previous = pipeline.RELEASE[pipeline.RELEASE.index("images") - 1]
    stages = {name: FakeStage(name) for name in pipeline.RELEASE} | {
        previous: StageBeforeImages(previous),
        "images": StageWithWorkAhead("images"),
    }
    monkeypatch.setattr(pipeline, "STAGES", stages)
    monkeypatch.setattr(pipeline, "ensure_local_services", lambda ctx: None)
    monkeypatch.setattr(pipeline, "_summary", lambda ctx, timings: None)
    pipeline.run_stages(world.ctx, pipeline.RELEASE)
    runs = [c for c in calls if not c.startswith("decide")]
    assert [c for c in runs if c.startswith("act")] == [f"act {name}" for name in pipeline.RELEASE]
    later = pipeline.RELEASE[1:]  # the preflight asks every later stage before the first write, then each again
    assert calls[: 2 + len(later)] == ["decide preflight", "act preflight", *[f"decide {n}" for n in later]]
    # the work ahead starts once the preflight passed, and ends before its own stage starts
    assert runs.index("prepared images") == runs.index("act images") - 1
    assert runs.index("act wheel") < runs.index("prepared images")

    calls.clear()  # a run of the images stage alone has nothing to overlap with: no work ahead
    pipeline.run_stages(world.ctx, ["preflight", "images"])
    assert "prepared images" not in calls


def test_under_ci_the_console_is_a_log_even_on_a_pseudo_terminal(monkeypatch):
    """act runs steps on a pseudo-terminal: the plan and the log must still be plain whole lines there."""
    from ac_release.core.progress import console

    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert not console().is_terminal
    monkeypatch.delenv("CI")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert not console(stderr=False).is_terminal


def test_status_of_a_version_released_from_an_earlier_commit_is_judged_at_that_commit(tmp_path):
    """A backport adds a patch to the line after 2.2.4-1: 2.2.4-1's inputs are those of its own commit."""
    from ac_release.clients.git import checkout_of, git

    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "--quiet")
    (root / "patch").write_text("one\n")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@x.invalid", "commit", "--quiet", "-m", "2.2.4-1")
    released = git(root, "rev-parse", "HEAD")
    (root / "patch").write_text("two\n")
    git(root, "-c", "user.name=t", "-c", "user.email=t@x.invalid", "commit", "--quiet", "-am", "backport")
    with checkout_of(root, released) as tree:
        assert (tree / "patch").read_text() == "one\n"
    assert (root / "patch").read_text() == "two\n" and not tree.exists()
    assert git(root, "worktree", "list").count("\n") == 0  # the look left no worktree behind
