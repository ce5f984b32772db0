"""The on-disk embedding cache: vectors in SQLite, keyed by encoder identity and text."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared_router.errors import EncoderError

__all__ = ["CACHE_ENV", "EmbeddingCache", "default_cache_path"]

CACHE_ENV = "HYBRID_LLM_CACHE"
"""The environment variable that moves the default cache."""

_BUSY_TIMEOUT_MS = 60_000
_SQL_CHUNK = 500


def default_cache_path() -> Path:
    """``$HYBRID_LLM_CACHE``, else ``~/.cache/hybrid-llm/embeddings.sqlite``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env or Path.home() / ".cache" / "hybrid-llm" / "embeddings.sqlite").expanduser()


class EmbeddingCache:
    """Embedding vectors on disk, in SQLite, shared safely by threads and processes.

    Rows are keyed by ``sha256(identity + "\\n" + text)``; vectors are float32 blobs. The
    database uses the WAL journal and a busy timeout so that several processes can read and
    write at once. Each thread (and each process after a fork) opens its own connection.

    Args:
        path: The database file. None takes ``$HYBRID_LLM_CACHE`` or
            ``~/.cache/hybrid-llm/embeddings.sqlite``.

    Raises:
        EncoderError: When the database cannot be opened or created.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        self._local = threading.local()
        self._connect()

    @staticmethod
    def key(identity: str, text: str) -> bytes:
        """Return the 32-byte key of ``text`` under an encoder ``identity``."""
        raw = f"{identity}\n{text}".encode("utf-8", errors="surrogatepass")
        return hashlib.sha256(raw).digest()

    def get_many(self, identity: str, texts: Sequence[str]) -> list[np.ndarray | None]:
        """Return the stored vector of each text, or None where there is none.

        Args:
            identity: The encoder's :attr:`Encoder.identity`.
            texts: The texts.

        Returns:
            One float32 array (a fresh copy) or None per text, in order; a damaged row
            counts as None.

        Raises:
            EncoderError: When the database cannot be read (raised from the
                ``sqlite3.Error``; :class:`Encoder` then goes on without the cache).
        """
        keys = [self.key(identity, text) for text in texts]
        found: dict[bytes, np.ndarray] = {}
        connection = self._connect()
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _SQL_CHUNK):
            chunk = unique[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._execute(
                connection, f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk
            ).fetchall()
            for key, blob in rows:
                try:
                    found[bytes(key)] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
                except (TypeError, ValueError):  # a damaged row: a miss, encoded again
                    continue
        return [found[k].copy() if k in found else None for k in keys]

    def put_many(self, identity: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store one vector per text (replacing what was there), in one transaction.

        Args:
            identity: The encoder's :attr:`Encoder.identity`.
            texts: The texts.
            vectors: Shape ``(len(texts), dim)``.

        Raises:
            EncoderError: When ``vectors`` does not have one row per text, or the database
                cannot be written (full disk, read-only file: raised from the
                ``sqlite3.Error``; :class:`Encoder` then goes on without the cache).
        """
        array = np.asarray(vectors, dtype="<f4")
        if array.ndim != 2 or array.shape[0] != len(texts):
            raise EncoderError(
                f"put_many needs one vector per text: {len(texts)} texts, vectors of shape "
                f"{array.shape}"
            )
        rows = [
            (self.key(identity, text), memoryview(np.ascontiguousarray(row).tobytes()))
            for text, row in zip(texts, array, strict=True)
        ]
        if not rows:
            return
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "INSERT OR REPLACE INTO embeddings (key, vector) VALUES (?, ?)", rows
            )
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):  # a failed rollback leaves it to SQLite
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            raise EncoderError(f"embedding cache {self.path}: write failed: {exc}") from exc

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _connect(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None and getattr(self._local, "pid", None) == os.getpid():
            return connection
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                str(self.path), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS embeddings "
                "(key BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID"
            )
        except (OSError, sqlite3.Error) as exc:
            raise EncoderError(
                f"embedding cache {str(self.path)!r} could not be opened: {exc}; pass another "
                f"path, set ${CACHE_ENV}, or use cache=None to encode without a cache"
            ) from exc
        self._local.connection = connection
        self._local.pid = os.getpid()
        return connection

    def _execute(
        self, connection: sqlite3.Connection, sql: str, params: Sequence[Any]
    ) -> sqlite3.Cursor:
        try:
            return connection.execute(sql, params)
        except sqlite3.Error as exc:
            raise EncoderError(f"embedding cache {self.path}: read failed: {exc}") from exc

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r})"
