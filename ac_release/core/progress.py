"""The live view of a release: a row per stage and, under it, a row per flavour or image the stage works on.

Each row shows a spinner while it runs, then ✓ or ✗ and its time. The view is for a terminal: on a log (CI, a pipe)
and outside `run_stages` it is off, its rows cost nothing, and the stages' own log lines tell the progress.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


def console(stderr: bool = True) -> Console:
    """The pipeline's console: a log under CI (GitHub Actions, act's pseudo-terminal) even when a terminal is
    attached, so CI output is plain lines, whole, without the live view."""
    ci = os.environ.get("CI") == "true" or os.environ.get("GITHUB_ACTIONS") == "true"
    return Console(stderr=stderr, highlight=False, force_terminal=False if ci else None)


class LiveView:
    def __init__(self, console: Console | None = None):
        self._progress = (
            Progress(
                SpinnerColumn(finished_text=""),
                TextColumn("{task.fields[mark]}"),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
            )
            if console is not None and console.is_terminal
            else None
        )

    @contextlib.contextmanager
    def shown(self) -> Iterator[LiveView]:
        if self._progress is None:
            yield self
            return
        with self._progress:
            yield self

    @contextlib.contextmanager
    def row(self, description: str, level: int = 0) -> Iterator[Row]:
        """A row that runs while the block runs: ✓ when it ends, ✗ when it raises or the block marks it failed."""
        row = Row()
        if self._progress is None:
            yield row
            return
        task = self._progress.add_task("  " * level + description, total=1, mark="")
        try:
            yield row
        except BaseException:
            row.failed()
            raise
        finally:
            self._progress.update(task, completed=1, mark="[red]✗[/red]" if row.failure else "[green]✓[/green]")


class Row:
    failure = False

    def failed(self) -> None:
        self.failure = True
