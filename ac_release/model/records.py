"""Typed records of what each stage produced, as stored in `dist/<version>/release.json`.

The wheel stage's record is the same for every target (the build is reproducible); every other stage records per
target, so that a release to `local` and one to `staging` from one checkout never read each other's records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


class Record:
    STAGE: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, data: dict[str, Any]):
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass
class Artifact:
    sha256: str
    size: int


@dataclass
class WheelRecord(Record):
    STAGE: ClassVar[str] = "wheel"
    inputs: str  # fingerprint of everything that decides the bytes
    artifacts: dict[str, Artifact]
    checks: dict[str, Any]
    buildenv: str
    source_date_epoch: int

    @classmethod
    def from_json(cls, data):
        record = super().from_json(data)
        record.artifacts = {name: Artifact(**meta) for name, meta in record.artifacts.items()}
        return record

    def sha256(self, name: str) -> str | None:
        return self.artifacts[name].sha256 if name in self.artifacts else None


@dataclass
class SignRecord(Record):
    STAGE: ClassVar[str] = "sign"
    identity: str
    issuer: str
    instance: str
    bundles: dict[str, str]  # artifact -> sha256 of its bundle
    attestations: dict[str, str] = field(default_factory=dict)  # `<artifact>.<kind>.attestation` -> its sha256


@dataclass
class PublishRecord(Record):
    STAGE: ClassVar[str] = "publish"
    index: str
    files: dict[str, str]  # artifact -> sha256 the index serves
    uploaded: list[str] = field(default_factory=list)  # uploaded by this run; the others were there


@dataclass
class VariantImage:
    image: str  # the local image id
    ref: str  # the local reference it was built as
    size: int
    seconds: float


@dataclass
class FlavourImages:
    """A flavour's images of one platform."""

    fingerprint: str  # of every input of the build: same fingerprint and image present -> keep
    base_image: str
    variants: dict[str, VariantImage]

    @classmethod
    def from_json(cls, data):
        return cls(data["fingerprint"], data["base_image"], {k: VariantImage(**v) for k, v in data["variants"].items()})

    def ids(self) -> dict[str, str]:
        return {variant: image.image for variant, image in self.variants.items()}


def _per_platform(entry: dict) -> dict:
    """A flavour's entry by platform; records written before platforms hold linux/amd64's alone, unkeyed."""
    return {"linux/amd64": entry} if "variants" in entry or "smoke" in entry else entry


@dataclass
class ImagesRecord(Record):
    STAGE: ClassVar[str] = "images"
    flavours: dict[str, dict[str, FlavourImages]]  # flavour -> platform (`linux/arm64`) -> its images

    @classmethod
    def from_json(cls, data):
        return cls(
            {
                name: {platform: FlavourImages.from_json(e) for platform, e in _per_platform(entry).items()}
                for name, entry in data["flavours"].items()
            }
        )

    def of(self, flavour: str, platform: object) -> FlavourImages | None:
        return self.flavours.get(flavour, {}).get(str(platform))

    def put(self, flavour: str, platform: object, images: FlavourImages) -> None:
        self.flavours.setdefault(flavour, {})[str(platform)] = images


@dataclass
class Session:
    """One pytest run of the smoke or upgrade tests; passed only when every collected test ran and passed."""

    result: str  # passed / failed / not run / no earlier release
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)  # tests, passed, failed, errors, skipped
    log: str = ""

    @property
    def summary(self) -> str:
        if not self.counts:
            return self.result
        shown = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n and k != "tests")
        return f"{self.result}: {shown or 'no tests'}"


@dataclass
class FlavourTest:
    images: dict[str, str]  # variant -> image id the sessions tested
    upgrade_from: str | None  # the earlier release the upgrade test started from; None for a first release
    smoke: Session
    upgrade: Session

    @classmethod
    def from_json(cls, data):
        return cls(data["images"], data["upgrade_from"], Session(**data["smoke"]), Session(**data["upgrade"]))

    @property
    def passed(self) -> bool:
        return self.smoke.result == "passed" and self.upgrade.result in ("passed", "no earlier release")


@dataclass
class SessionsRecord(Record):
    STAGE: ClassVar[str] = "test"
    flavours: dict[str, dict[str, FlavourTest]]  # flavour -> platform -> its tests

    @classmethod
    def from_json(cls, data):
        return cls(
            {
                name: {platform: FlavourTest.from_json(e) for platform, e in _per_platform(entry).items()}
                for name, entry in data["flavours"].items()
            }
        )

    def of(self, flavour: str, platform: object) -> FlavourTest | None:
        return self.flavours.get(flavour, {}).get(str(platform))

    def put(self, flavour: str, platform: object, test: FlavourTest) -> None:
        self.flavours.setdefault(flavour, {})[str(platform)] = test

    def passed(
        self, flavour: str, platform: object, images: dict[str, str], upgrade_from: str | None | object = ...
    ) -> bool:
        """Was exactly this set of images tested, and did it pass (from this earlier release, when given)?"""
        done = self.of(flavour, platform)
        if done is None or not done.passed or done.images != images:
            return False
        return upgrade_from is ... or done.upgrade_from == upgrade_from


@dataclass
class PushedTag:
    repository: str
    tag: str
    image: str  # image id (config digest) of a platform's image; empty for an index
    digest: str  # manifest digest in the registry: a platform's image manifest, or the index of the platforms
    floating: bool
    action: str  # pushed / present / moved / kept
    platform: str = ""  # a platform's own tag (`2.2.4-1-bullseye-arm64`): its platform; empty for an index
    platforms: dict[str, str] = field(default_factory=dict)  # an index: platform -> image manifest digest


@dataclass
class PushRecord(Record):
    STAGE: ClassVar[str] = "push"
    tags: list[PushedTag]

    @classmethod
    def from_json(cls, data):
        return cls([PushedTag(**entry) for entry in data["tags"]])


@dataclass
class IndexRecord(Record):
    STAGE: ClassVar[str] = "index"
    tags: list[PushedTag]  # the immutable tags, each an index of the platforms' own tags
    signed: dict[str, str] = field(default_factory=dict)  # `<repository>@<index digest>` -> signed / kept

    @classmethod
    def from_json(cls, data):
        record = super().from_json(data)
        record.tags = [PushedTag(**entry) for entry in record.tags]
        return record


@dataclass
class PromoteRecord(Record):
    STAGE: ClassVar[str] = "promote"
    tags: list[PushedTag]  # the floating tags: moved, present or kept (behind a newer build)

    @classmethod
    def from_json(cls, data):
        return cls([PushedTag(**entry) for entry in data["tags"]])


@dataclass
class AttestedImage:
    repository: str
    tag: str  # the platform's own tag the image was pushed as (`2.2.4-1-bullseye-arm64`)
    digest: str  # manifest digest: the subject of the signature and every attestation
    base_image: str  # digest (or local image id) of the base image the provenance names
    revision: str  # the git commit the image was built from (its OCI revision label)
    files: dict[str, str] = field(default_factory=dict)  # SBOM / provenance file in dist -> sha256, when made here
    platform: str = "linux/amd64"


@dataclass
class AttestRecord(Record):
    STAGE: ClassVar[str] = "attest"
    identity: str
    issuer: str
    images: list[AttestedImage]

    @classmethod
    def from_json(cls, data):
        record = super().from_json(data)
        record.images = [AttestedImage(**entry) for entry in record.images]
        return record


@dataclass
class TagRecord(Record):
    STAGE: ClassVar[str] = "tag"
    tag: str
    commit: str
    remote: str
    notes: str
    action: str


RECORDS: dict[str, type[Record]] = {
    r.STAGE: r
    for r in (
        WheelRecord,
        SignRecord,
        PublishRecord,
        ImagesRecord,
        SessionsRecord,
        PushRecord,
        IndexRecord,
        AttestRecord,
        PromoteRecord,
        TagRecord,
    )
}
