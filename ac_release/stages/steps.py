"""Steps: what a stage's decision function says it will do, each with its reason and what it compared.

Every stage answers `check(ctx) -> list[Step]` and acts only on the open steps in `run(ctx, steps)`. The dry run,
`status`, the preflight and the run all print or act on the same steps: nothing decides twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ac_release.core.errors import ReleaseError

# a write the run will make; `reuse`: a file copied from where it was made (a line build another release made)
OPEN = ("build", "reuse", "sign", "upload", "push", "move", "tag", "run")
DONE = ("keep", "skip")  # already there with the same bytes or digest
ACTIONS = (*OPEN, *DONE, "refuse", "unknown")


@dataclass(frozen=True)
class Step:
    stage: str
    action: str
    target: str  # the file, index file, image reference, test session or git tag the step is about (no spaces)
    reason: str = ""  # why, with what was compared
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # what `run` needs to act

    def __post_init__(self):
        assert self.action in ACTIONS, self.action
        assert " " not in self.target, self.target

    @property
    def open(self) -> bool:
        return self.action in OPEN

    def line(self) -> str:
        """One plain line, whole (a CI log never truncates it): `push     push     <ref>  — <reason>`."""
        return f"{self.stage:<9} {self.action:<7} {self.target}" + (f"  — {self.reason}" if self.reason else "")


def open_steps(steps: Iterable[Step]) -> list[Step]:
    return [step for step in steps if step.open]


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
