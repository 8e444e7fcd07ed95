"""Steps: what a stage's decision says it will do, each with its reason, what it compared and what its act needs.

Every stage is one module with the interface of `Stage`: `decide(ctx, earlier) -> list[Step]` is the only place
its refusals are decided, and `act(ctx, steps)` acts on the open steps, deciding nothing again. The dry run,
`status`, the preflight and the run all print or act on the same steps.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.world.context import ReleaseContext

# a write the run will make; `reuse`: a file copied from where it was made (a line build another release made)
OPEN = ("build", "reuse", "sign", "upload", "push", "move", "tag", "run")
DONE = ("keep", "skip")  # already there with the same bytes or digest
ACTIONS = (*OPEN, *DONE, "refuse", "unknown")

P = TypeVar("P")


@dataclass(frozen=True)
class Step(Generic[P]):
    stage: str
    action: str
    target: str  # the file, index file, image reference, test session or git tag the step is about (no spaces)
    reason: str = ""  # why, with what was compared
    payload: P = field(default=None, compare=False, repr=False)  # what `act` needs: a stage's own frozen dataclass
    state: str = field(default="", compare=False)  # what `invoke status` shows when the action does not say it

    def __post_init__(self):
        assert self.action in ACTIONS, self.action
        assert " " not in self.target, self.target

    @property
    def open(self) -> bool:
        return self.action in OPEN

    def line(self) -> str:
        """One plain line, whole (a CI log never truncates it): `push     push     <ref>  — <reason>`."""
        return f"{self.stage:<9} {self.action:<7} {self.target}" + (f"  — {self.reason}" if self.reason else "")


class Stage(Protocol):
    """A stage module. `earlier`: the stages that act before it in this run, not yet acted (the plan of a whole
    release decides the push before the images are tested); empty when it decides on the world as its
    predecessors left it. A module may also have `prepare(ctx)`: work ahead that decides nothing."""

    NAME: str

    def decide(self, ctx: ReleaseContext, earlier: Collection[str] = ()) -> list[Step[Any]]: ...

    def act(self, ctx: ReleaseContext, steps: list[Step[Any]]) -> object: ...


def open_steps(steps: Iterable[Step[P]]) -> list[Step[P]]:
    return [step for step in steps if step.open]


def other_bytes(path: Path, sha256: str | None) -> str | None:
    """The sha256 of `path` when it holds other bytes than `sha256`; None when it holds those, is missing, or no
    sha256 is known. The one rule by which a file whose bytes changed is refused."""
    if not sha256 or not path.exists():
        return None
    actual = sha256_file(path)
    return actual if actual != sha256 else None


def changed_artifact(ctx: ReleaseContext, name: str, built: str | None) -> str | None:
    """Why an artifact in dist/ is refused by the stages after the wheel stage (its bytes are not the ones the wheel
    stage built), or None."""
    if actual := other_bytes(ctx.dist / name, built):
        return f"dist/{ctx.version}/{name} has sha256 {actual}, the wheel stage built {built}"
    return None


def refuse_any(steps: Iterable[Step], version: object) -> None:
    """Stop with one line on the first refusal; the dry run lists all of them."""
    refused = [step for step in steps if step.action == "refuse"]
    if refused:
        more = f" (and {len(refused) - 1} more: see `invoke release {version} --dry-run`)" if len(refused) > 1 else ""
        raise ReleaseError(f"refused: {refused[0].target}: {refused[0].reason}{more}")


def parse_line(line: str, stages: Iterable[str]) -> tuple[str, str, str] | None:
    """(stage, action, target) of a line printed by `Step.line`, or None for any other line."""
    parts = line.split(maxsplit=2)
    if len(parts) < 3 or parts[0] not in stages or parts[1] not in ACTIONS:
        return None
    return parts[0], parts[1], parts[2].split("  — ", 1)[0].strip()
