"""The one progress bar: counts, rate, ETA and a status line on stderr (rich, imported lazily).

Encoding, training, collecting and judging all show their progress through it.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

__all__ = ["ProgressBar"]


class ProgressBar:
    """Counts finished work out of a total and shows rate and time left.

    Use it as a context manager; with ``enabled=False`` it shows nothing.

    Args:
        total: The amount of work.
        description: What is being done (``"collect"``).
        enabled: Whether to show the bar.
    """

    def __init__(self, total: int, description: str, *, enabled: bool = True) -> None:
        self.total = total
        self.description = description
        self.enabled = enabled and total > 0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                console=Console(stderr=True),
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, status="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def advance(self, amount: int = 1) -> None:
        """Count ``amount`` more units of work as done."""
        if self._progress is not None:
            self._progress.advance(self._task, amount)

    def set_status(self, status: str) -> None:
        """Show ``status`` (a loss, an error count, ...) after the bar."""
        if self._progress is not None:
            self._progress.update(self._task, status=status)
