"""Writing shadow rows without ever failing the caller: a bounded buffer in front of the store.

When the store is unreachable (a PostgreSQL server down, a SQLite file on a full disk), rows
wait in a bounded buffer and go out with the next write or flush that succeeds; once the
buffer is full, new rows are dropped and counted (``lost``), with a WARNING the first time and
each time the store recovers or fails again. Rows still waiting when the writer is given up
(:meth:`StoreWriter.abandon`, at exit) are dropped, counted and warned about too. Routing
never waits on this beyond one write attempt.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from shared_router.errors import ConfigurationError, RoutingError
from shared_router.live.rows import ShadowRow
from shared_router.live.store import ShadowStore

__all__ = ["StoreWriter", "WriterStats"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterStats:
    """What became of the rows given to a :class:`StoreWriter`.

    Attributes:
        written: Rows stored.
        buffered: Rows waiting for the store to come back.
        lost: Rows dropped because the buffer was full, or still in it when the writer was
            abandoned.
        failures: Write attempts that failed.
    """

    written: int
    buffered: int
    lost: int
    failures: int


class StoreWriter:
    """Writes shadow rows to a store, buffering (bounded) while it is unreachable.

    Args:
        store: The store.
        capacity: Most rows kept while the store fails (at least 1).
    """

    def __init__(self, store: ShadowStore, *, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ConfigurationError(f"capacity must be >= 1 row, got {capacity!r}")
        self.store = store
        self.capacity = capacity
        self._buffer: deque[ShadowRow] = deque()
        self._lock = threading.Lock()
        self._written = 0
        self._lost = 0
        self._failures = 0
        self._failing = False

    def write(self, row: ShadowRow) -> bool:
        """Buffer one row and try to write every buffered row.

        Returns:
            True when the row is in the store, False when it waits in the buffer or was
            dropped.
        """
        with self._lock:
            if len(self._buffer) >= self.capacity and not self._flush_locked():
                self._lost += 1
                if self._lost == 1 or self._lost % 1000 == 0:
                    logger.warning(
                        "live store %s: %d shadow rows dropped so far, the buffer of %d rows "
                        "is full while the store fails; routing goes on",
                        self._where(),
                        self._lost,
                        self.capacity,
                    )
                return False
            self._buffer.append(row)
            return self._flush_locked()

    def flush(self) -> bool:
        """Try to write the buffered rows; True when none is left waiting."""
        with self._lock:
            return self._flush_locked()

    def abandon(self) -> int:
        """Try the buffered rows once more; drop, count and warn about those the store refuses.

        Returns:
            How many rows were dropped (0 when the store took them all).
        """
        with self._lock:
            if self._flush_locked():
                return 0
            dropped = len(self._buffer)
            self._lost += dropped
            self._buffer.clear()
        logger.warning(
            "live store %s still fails: %d buffered shadow rows are dropped as the live loop "
            "closes (counted in rows_lost)",
            self._where(),
            dropped,
        )
        return dropped

    def _flush_locked(self) -> bool:
        if not self._buffer:
            return True
        pending: Sequence[ShadowRow] = list(self._buffer)
        try:
            self.store.append(pending)
        except RoutingError as exc:
            self._failures += 1
            if not self._failing:
                logger.warning(
                    "live store %s failed (%s); %d shadow rows wait in the buffer (at most %d, "
                    "then new rows are dropped and counted); routing goes on",
                    self._where(),
                    exc,
                    len(self._buffer),
                    self.capacity,
                )
            self._failing = True
            return False
        if self._failing:
            logger.warning(
                "live store %s is back: %d buffered shadow rows written",
                self._where(),
                len(pending),
            )
        self._failing = False
        self._written += len(pending)
        self._buffer.clear()
        return True

    def _where(self) -> str:
        return repr(self.store.url)

    @property
    def pending(self) -> list[ShadowRow]:
        """The rows waiting in the buffer (a copy)."""
        with self._lock:
            return list(self._buffer)

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the counters."""
        with self._lock:
            return WriterStats(self._written, len(self._buffer), self._lost, self._failures)
