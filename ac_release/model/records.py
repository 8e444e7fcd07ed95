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
    fingerprint: str  # of every input of the build: same fingerprint and image present -> keep
    base_image: str
    variants: dict[str, VariantImage]

    @classmethod
    def from_json(cls, data):
        return cls(data["fingerprint"], data["base_image"], {k: VariantImage(**v) for k, v in data["variants"].items()})

    def ids(self) -> dict[str, str]:
        return {variant: image.image for variant, image in self.variants.items()}


@dataclass
class ImagesRecord(Record):
    STAGE: ClassVar[str] = "images"
    flavours: dict[str, FlavourImages]

    @classmethod
    def from_json(cls, data):
        return cls({name: FlavourImages.from_json(entry) for name, entry in data["flavours"].items()})


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
    flavours: dict[str, FlavourTest]

    @classmethod
    def from_json(cls, data):
        return cls({name: FlavourTest.from_json(entry) for name, entry in data["flavours"].items()})

    def passed(self, flavour: str, images: dict[str, str], upgrade_from: str | None | object = ...) -> bool:
        """Was exactly this set of images tested, and did it pass (from this earlier release, when given)?"""
        done = self.flavours.get(flavour)
        if done is None or not done.passed or done.images != images:
            return False
        return upgrade_from is ... or done.upgrade_from == upgrade_from


@dataclass
class PushedTag:
    repository: str
    tag: str
    image: str  # image id (config digest)
    digest: str  # manifest digest in the registry
    floating: bool
    action: str  # pushed / present / moved / kept


@dataclass
class PushRecord(Record):
    STAGE: ClassVar[str] = "push"
    tags: list[PushedTag]

    @classmethod
    def from_json(cls, data):
        return cls([PushedTag(**entry) for entry in data["tags"]])


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
    tag: str  # the flavour's immutable tag the image was pushed as
    digest: str  # manifest digest: the subject of the signature and every attestation
    base_image: str  # digest (or local image id) of the base image the provenance names
    revision: str  # the git commit the image was built from (its OCI revision label)
    files: dict[str, str] = field(default_factory=dict)  # SBOM / provenance file in dist -> sha256, when made here


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
        AttestRecord,
        PromoteRecord,
        TagRecord,
    )
}
