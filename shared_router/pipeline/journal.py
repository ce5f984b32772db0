"""Crash-safe files: an append-only journal of finished work and atomic JSONL writes.

The pipeline stages that call models (``collect``, ``judge``) record every finished piece of
work as one JSON line in a journal, flushed and fsynced before the next one starts. A killed
run therefore loses at most the work that was in flight; a rerun reads the journal and skips
what is there. A record counts only once its closing newline is on disk: a torn last line
(the process died while writing it) is dropped and cut off before anything new is appended.

Both write UTF-8 JSON text: a lone surrogate in a string (``"\ud800"``, valid JSON, not
encodable) is replaced by U+FFFD, the project's one policy
(:func:`shared_router._internal.validation.encodable_text`), instead of failing the run.

Final outputs are written with :func:`write_jsonl_atomic` (through
:func:`shared_router._internal.atomic.atomic_path`: a temporary file in the same folder,
fsynced, renamed over the destination, the folder fsynced), so a reader sees either the old
file or the new one, never a half-written one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from shared_router._internal.atomic import atomic_path
from shared_router._internal.validation import encodable_text
from shared_router.errors import DataError, UsageError

__all__ = ["Journal", "write_jsonl_atomic"]

JOURNAL_FORMAT = 1


class Journal:
    """An append-only JSONL journal, locked against a second writer while open.

    The first line is a header naming what kind of journal it is, so that a journal of one
    stage is never read as another's. Use it as a context manager::

        with Journal(path, kind="collect") as journal:
            done = journal.records
            journal.append({"id": "q1", ...})

    Args:
        path: The journal file; created with its folder when absent.
        kind: What the journal holds (``"collect"``, ``"judge"``); checked against the header.

    Attributes:
        path: The journal file.
        kind: The journal's kind.
        records: The records read when the journal was opened, in file order (header left
            out). Appended records are not added to it.
        dropped_torn_line: Whether a torn last line was found and cut off on opening.
    """

    def __init__(self, path: str | Path, *, kind: str) -> None:
        self.path = Path(path)
        self.kind = kind
        self.records: list[dict[str, Any]] = []
        self.dropped_torn_line = False
        self._file: IO[bytes] | None = None
        self._lock: Any = None

    def __enter__(self) -> Journal:
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout as exc:
            raise DataError(
                "another process is writing this journal; wait for it to finish or stop it",
                path=str(self.path),
            ) from exc
        self._lock = lock
        try:
            self._open()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and make it durable (flush and fsync) before returning.

        Args:
            record: A JSON-serialisable object.

        Raises:
            UsageError: If the journal is not open.
        """
        if self._file is None:
            raise UsageError("the journal is not open; use it inside a `with` block")
        self._file.write(_encode(record))
        self._file.flush()
        os.fsync(self._file.fileno())

    def _open(self) -> None:
        raw = self.path.read_bytes() if self.path.exists() else b""
        complete_end = raw.rfind(b"\n") + 1
        if complete_end < len(raw):
            self.dropped_torn_line = True
            with self.path.open("r+b") as handle:
                handle.truncate(complete_end)
                handle.flush()
                os.fsync(handle.fileno())
        lines = raw[:complete_end].splitlines()
        self._file = self.path.open("ab")
        if not lines:
            self.append({"hybrid_llm_journal": self.kind, "format": JOURNAL_FORMAT})
            return
        header = self._parse(lines[0], 1)
        if header.get("hybrid_llm_journal") != self.kind or header.get("format") != JOURNAL_FORMAT:
            raise DataError(
                f"not a {self.kind!r} journal of format {JOURNAL_FORMAT} (header {header!r}); "
                "point to the right journal or move this file away",
                path=str(self.path),
                line=1,
            )
        self.records = [self._parse(line, number) for number, line in enumerate(lines[1:], 2)]

    def _parse(self, line: bytes, number: int) -> dict[str, Any]:
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise DataError(
                "journal line is damaged (not JSON); move the journal away to start over",
                path=str(self.path),
                line=number,
            ) from exc
        if not isinstance(obj, dict):
            raise DataError(
                f"journal line must be a JSON object, got {type(obj).__name__}",
                path=str(self.path),
                line=number,
            )
        return obj


def _encode(record: dict[str, Any]) -> bytes:
    """One JSON line as UTF-8; lone surrogates in its strings (keys too) become U+FFFD."""
    line = json.dumps(record, ensure_ascii=False, allow_nan=False)
    return (encodable_text(line) + "\n").encode("utf-8")


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSONL so that the file is replaced whole or not at all.

    Args:
        path: The destination; its folder is created when absent.
        rows: JSON-serialisable objects, one per line.

    Returns:
        The number of rows written.
    """
    count = 0
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        for row in rows:
            handle.write(_encode(row))
            count += 1
    return count
