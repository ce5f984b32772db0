"""The live store: shadow rows, traffic counters, router versions and a lock, in SQL.

:func:`open_store` opens a store by URL: a file path or ``sqlite:///path`` (SQLAlchemy's form:
``sqlite:///relative.sqlite``, ``sqlite:////absolute.sqlite``) is one SQLite file
(the embedded default: WAL journal and a busy timeout, so several worker processes on one host
share it), ``postgresql://...`` a PostgreSQL database
(:mod:`~shared_router.live.store_postgres`, ``pip install 'hybrid-llm[postgres]'``) with the
same tables. Every write is one transaction, so a process killed at any moment leaves whole rows
or none. The tables are versioned (:data:`~shared_router.live.rows.SCHEMA_VERSION`): a store of
version 1 is upgraded when opened (one column added, in one transaction), a store of another
version is refused.

Router versions fitted on live rows are router folders in :attr:`ShadowStore.versions_dir`
(beside a SQLite file: ``<file>.routers/``). The lock (:meth:`ShadowStore.try_lock`) lets one of
several workers retrain while the others go on routing.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import numpy as np

from shared_router.errors import ConfigurationError, RoutingError
from shared_router.live.rows import (
    SCHEMA_VERSION,
    TRAFFIC_FIELDS,
    ShadowRow,
    StoredRow,
    TrafficCounts,
    VersionRecord,
)

__all__ = [
    "ROW_COLUMNS",
    "SQLiteStore",
    "ShadowStore",
    "check_store_url",
    "default_worker",
    "open_store",
]

_BUSY_TIMEOUT_MS = 30_000

ROW_COLUMNS = (
    "request_id",
    "created_at",
    "judged_at",
    "router_version",
    "decision",
    "small_quality",
    "large_quality",
    "text",
    "embedding",
    "encoder_identity",
    "score",
    "threshold",
    "calibration_source",
    "calibration_rows",
    "calibration_bound",
    "small_answer",
    "large_answer",
    "shadow_cost",
    "worker",
)
"""The columns of a shadow row, in the order the store writes them."""


_A_FOLDER = "it is a folder; name a file in it (for example live.sqlite)"
_NO_TABLES = "it holds no live tables"


def default_worker() -> str:
    """This process's name in the store: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ShadowStore(ABC):
    """The tables of the live loop, in one SQL database (see the module docstring).

    Subclasses give a connection per thread and the SQL types of their database; all SQL
    here uses ``?`` placeholders and ``ON CONFLICT`` clauses both databases accept.

    Attributes:
        url: What the store was opened from.
        versions_dir: The folder router versions are saved in, or None when none is known.
    """

    url: str
    versions_dir: Path | None
    _table_query: str
    _id_type: str
    _blob_type: str
    _add_column: str

    def __init__(self) -> None:
        self._local = threading.local()

    def __reduce__(self) -> tuple[Any, ...]:
        """A pickled store opens again by its URL (connections are per process and thread)."""
        return (_reopened, (self.url, self.versions_dir))

    @abstractmethod
    def _open_connection(self) -> Any:
        """A new connection (raises the driver's error when the database is unreachable)."""

    @abstractmethod
    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        """The driver's exception classes that mean the store failed."""

    def _sql(self, statement: str) -> str:
        """The statement in the driver's placeholder style."""
        return statement

    def _open_hint(self, error: BaseException) -> str:
        """How to fix a failure to open the store."""
        return "check that it is reachable and writable"

    def _begin(self, connection: Any, write: bool) -> None:
        connection.execute("BEGIN")

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is not None and getattr(self._local, "pid", None) == os.getpid():
            return connection
        try:
            connection = self._open_connection()
        except self._driver_errors() + (OSError,) as exc:
            raise RoutingError(
                f"live store {self.url!r} could not be opened: {exc}; {self._open_hint(exc)}"
            ) from exc
        self._local.connection = connection
        self._local.pid = os.getpid()
        return connection

    @contextlib.contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Any]:
        """One transaction on this thread's connection; rolled back on any error.

        Args:
            write: Whether the transaction writes (SQLite then takes the write lock at once,
                so two writers never deadlock upgrading a read lock).
        """
        connection = self._connection()
        try:
            self._begin(connection, write)
            yield connection
            connection.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                connection.execute("ROLLBACK")
            if isinstance(exc, self._driver_errors()):
                self._forget_connection()
                raise RoutingError(f"live store {self.url!r}: {exc}") from exc
            raise

    def _forget_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def _execute(self, connection: Any, statement: str, params: Sequence[Any] = ()) -> Any:
        return connection.execute(self._sql(statement), tuple(params))

    def _missing_reason(self) -> str | None:
        """Why the database holds no live store, or None when it does (nothing is created).

        Raises:
            RoutingError: When the store cannot be reached.
        """
        with self._transaction(write=False) as connection:
            found = self._execute(connection, self._table_query, ("live_meta",)).fetchone()
        return None if found is not None else _NO_TABLES

    def create(self) -> ShadowStore:
        """Create the tables when missing and check the schema version.

        Returns:
            self.

        Raises:
            ConfigurationError: When the store holds tables of another schema version.
            RoutingError: When the store cannot be reached.
        """
        statements = (
            "CREATE TABLE IF NOT EXISTS live_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS shadow_rows (row_id {self._id_type}, "
            "request_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
            "judged_at DOUBLE PRECISION NOT NULL, router_version TEXT NOT NULL, "
            "decision TEXT NOT NULL, small_quality DOUBLE PRECISION NOT NULL, "
            "large_quality DOUBLE PRECISION NOT NULL, text TEXT, "
            f"embedding {self._blob_type}, encoder_identity TEXT, score DOUBLE PRECISION, "
            "threshold DOUBLE PRECISION, calibration_source TEXT, calibration_rows BIGINT, "
            "calibration_bound DOUBLE PRECISION, small_answer TEXT, large_answer TEXT, "
            "shadow_cost DOUBLE PRECISION NOT NULL, worker TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS traffic (worker TEXT PRIMARY KEY, "
            + ", ".join(f"{name} DOUBLE PRECISION NOT NULL" for name in TRAFFIC_FIELDS)
            + ", updated_at DOUBLE PRECISION NOT NULL)",
            "CREATE TABLE IF NOT EXISTS router_versions (version TEXT PRIMARY KEY, "
            "created_at DOUBLE PRECISION NOT NULL, path TEXT NOT NULL, parent TEXT NOT NULL, "
            "swapped BIGINT NOT NULL, n_fit BIGINT NOT NULL, n_holdout BIGINT NOT NULL, "
            "gap_new DOUBLE PRECISION, gap_current DOUBLE PRECISION, fit_row_ids TEXT NOT NULL, "
            "fit_row_scores TEXT)",
            "CREATE TABLE IF NOT EXISTS live_locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, "
            "expires_at DOUBLE PRECISION NOT NULL)",
        )
        with self._transaction() as connection:
            for statement in statements:
                self._execute(connection, statement)
            self._execute(
                connection,
                "INSERT INTO live_meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
            found = self._execute(
                connection, "SELECT value FROM live_meta WHERE key = 'schema_version'"
            ).fetchone()
            if found is not None and found[0] == "1":
                self._upgrade_from_1(connection)
                found = (str(SCHEMA_VERSION),)
        if found is None or found[0] != str(SCHEMA_VERSION):
            raise ConfigurationError(
                f"live store {self.url!r} has schema version {found and found[0]!r}; this "
                f"hybrid-llm reads version {SCHEMA_VERSION}: use a new store, or the "
                "hybrid-llm that wrote this one"
            )
        return self

    def _upgrade_from_1(self, connection: Any) -> None:
        """Version 1 to 2: router versions gain their fitted rows' cross-fitted scores."""
        self._execute(
            connection, f"ALTER TABLE router_versions {self._add_column} fit_row_scores TEXT"
        )
        self._execute(
            connection,
            "UPDATE live_meta SET value = ? WHERE key = 'schema_version'",
            (str(SCHEMA_VERSION),),
        )

    def append(self, rows: Sequence[ShadowRow]) -> None:
        """Write shadow rows, all in one transaction (all are stored, or none).

        Raises:
            RoutingError: When the store cannot be reached or written.
        """
        if not rows:
            return
        marks = ", ".join("?" * len(ROW_COLUMNS))
        statement = f"INSERT INTO shadow_rows ({', '.join(ROW_COLUMNS)}) VALUES ({marks})"
        with self._transaction() as connection:
            for row in rows:
                self._execute(connection, statement, self._row_values(row))

    def _row_values(self, row: ShadowRow) -> list[Any]:
        values: list[Any] = []
        for name in ROW_COLUMNS:
            value = getattr(row, name)
            if name == "embedding" and value is not None:
                value = np.ascontiguousarray(value, dtype="<f4").tobytes()
            values.append(value)
        return values

    def rows(self, after_id: int = 0, limit: int | None = None) -> list[StoredRow]:
        """Read shadow rows with ``row_id > after_id``, in write order.

        Args:
            after_id: Only rows written after this id.
            limit: Most rows to read (None: all).

        Raises:
            RoutingError: When the store cannot be read.
        """
        statement = f"SELECT row_id, {', '.join(ROW_COLUMNS)} FROM shadow_rows WHERE row_id > ?"
        statement += " ORDER BY row_id"
        params: list[Any] = [after_id]
        if limit is not None:
            statement += " LIMIT ?"
            params.append(int(limit))
        with self._transaction(write=False) as connection:
            found = self._execute(connection, statement, params).fetchall()
        return [StoredRow(int(values[0]), _row_from(values[1:])) for values in found]

    def count(self) -> int:
        """How many shadow rows the store holds."""
        with self._transaction(write=False) as connection:
            return int(self._execute(connection, "SELECT COUNT(*) FROM shadow_rows").fetchone()[0])

    def record_traffic(self, worker: str, counts: TrafficCounts) -> None:
        """Replace one worker's traffic counters (they are running totals)."""
        names = ", ".join(TRAFFIC_FIELDS)
        marks = ", ".join("?" * len(TRAFFIC_FIELDS))
        updates = ", ".join(f"{n} = excluded.{n}" for n in (*TRAFFIC_FIELDS, "updated_at"))
        with self._transaction() as connection:
            self._execute(
                connection,
                f"INSERT INTO traffic (worker, {names}, updated_at) VALUES (?, {marks}, ?) "
                f"ON CONFLICT (worker) DO UPDATE SET {updates}",
                [worker, *(float(getattr(counts, n)) for n in TRAFFIC_FIELDS), time.time()],
            )

    def traffic(self) -> TrafficCounts:
        """The traffic counters summed over every worker."""
        sums = ", ".join(f"COALESCE(SUM({n}), 0)" for n in TRAFFIC_FIELDS)
        with self._transaction(write=False) as connection:
            found = self._execute(connection, f"SELECT {sums} FROM traffic").fetchone()
        values = dict(zip(TRAFFIC_FIELDS, (float(v) for v in found), strict=True))
        return TrafficCounts(
            calls=int(values["calls"]),
            small=int(values["small"]),
            shadowed=int(values["shadowed"]),
            dropped=int(values["dropped"]),
            judge_errors=int(values["judge_errors"]),
            shadow_errors=int(values["shadow_errors"]),
            shadow_cost=values["shadow_cost"],
            answer_cost=values["answer_cost"],
            large_cost=values["large_cost"],
        )

    def try_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take the lock ``name`` for ``owner`` unless another owner holds an unexpired one.

        A lock expires ``ttl_s`` seconds after it was taken, so a worker killed while holding
        it blocks the others for at most that long. Taking a lock one already holds renews it.

        Returns:
            True when ``owner`` holds the lock now.
        """
        now = time.time()
        with self._transaction() as connection:
            self._execute(
                connection,
                "DELETE FROM live_locks WHERE name = ? AND (expires_at < ? OR owner = ?)",
                (name, now, owner),
            )
            self._execute(
                connection,
                "INSERT INTO live_locks (name, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, owner, now + ttl_s),
            )
            found = self._execute(
                connection, "SELECT owner FROM live_locks WHERE name = ?", (name,)
            ).fetchone()
        return found is not None and found[0] == owner

    def lock_holder(self, name: str) -> tuple[str, float] | None:
        """Who holds the lock ``name`` and when it expires (a Unix time), or None."""
        with self._transaction(write=False) as connection:
            found = self._execute(
                connection,
                "SELECT owner, expires_at FROM live_locks WHERE name = ? AND expires_at >= ?",
                (name, time.time()),
            ).fetchone()
        return None if found is None else (str(found[0]), float(found[1]))

    def release_lock(self, name: str, owner: str) -> None:
        """Release the lock ``name`` if ``owner`` holds it."""
        with self._transaction() as connection:
            self._execute(
                connection, "DELETE FROM live_locks WHERE name = ? AND owner = ?", (name, owner)
            )

    def add_version(self, record: VersionRecord) -> None:
        """Record one retraining attempt (after its router folder is written)."""
        with self._transaction() as connection:
            self._execute(
                connection,
                "INSERT INTO router_versions (version, created_at, path, parent, swapped, n_fit, "
                "n_holdout, gap_new, gap_current, fit_row_ids, fit_row_scores) VALUES (?, ?, ?, "
                "?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.version,
                    record.created_at,
                    record.path,
                    record.parent,
                    int(record.swapped),
                    record.n_fit,
                    record.n_holdout,
                    _finite_or_none(record.gap_new),
                    _finite_or_none(record.gap_current),
                    record.fit_ids_json(),
                    record.fit_scores_json(),
                ),
            )

    def versions(self) -> list[VersionRecord]:
        """Every retraining attempt, oldest first."""
        with self._transaction(write=False) as connection:
            found = self._execute(
                connection,
                "SELECT version, created_at, path, parent, swapped, n_fit, n_holdout, gap_new, "
                "gap_current, fit_row_ids, fit_row_scores FROM router_versions "
                "ORDER BY created_at, version",
            ).fetchall()
        return [
            VersionRecord(
                version=str(v[0]),
                created_at=float(v[1]),
                path=str(v[2]),
                parent=str(v[3]),
                swapped=bool(v[4]),
                n_fit=int(v[5]),
                n_holdout=int(v[6]),
                gap_new=float("nan") if v[7] is None else float(v[7]),
                gap_current=float("nan") if v[8] is None else float(v[8]),
                fit_row_ids=tuple(int(i) for i in json.loads(v[9])),
                fit_row_scores=tuple(float(x) for x in json.loads(v[10] or "[]")),
            )
            for v in found
        ]

    def current_version(self) -> VersionRecord | None:
        """The newest version that was swapped in, or None (the starting router is current)."""
        swapped = [record for record in self.versions() if record.swapped]
        return swapped[-1] if swapped else None

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        self._forget_connection()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _row_from(values: Sequence[Any]) -> ShadowRow:
    fields = dict(zip(ROW_COLUMNS, values, strict=True))
    blob = fields["embedding"]
    fields["embedding"] = (
        None if blob is None else np.frombuffer(bytes(blob), dtype="<f4").astype(np.float32)
    )
    for name in ("created_at", "judged_at", "small_quality", "large_quality", "shadow_cost"):
        fields[name] = float(fields[name])
    if fields["calibration_rows"] is not None:
        fields["calibration_rows"] = int(fields["calibration_rows"])
    return ShadowRow(**fields)


class SQLiteStore(ShadowStore):
    """The store in one SQLite file (WAL journal, busy timeout; one connection per thread).

    Args:
        path: The database file (created with its folder when missing).
        versions_dir: Where router versions go; None: ``<path>.routers`` beside the file.
    """

    _table_query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    _id_type = "INTEGER PRIMARY KEY AUTOINCREMENT"
    _blob_type = "BLOB"
    _add_column = "ADD COLUMN"  # the write transaction is exclusive: one worker upgrades

    def __init__(self, path: str | Path, *, versions_dir: str | Path | None = None) -> None:
        super().__init__()
        self.path = Path(path).expanduser()
        self.url = str(self.path)
        self.versions_dir = (
            Path(versions_dir)
            if versions_dir is not None
            else self.path.with_name(self.path.name + ".routers")
        )

    def _open_connection(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            str(self.path), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None
        )
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        return connection

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def _missing_reason(self) -> str | None:
        """As for :meth:`ShadowStore._missing_reason`; the file is only read (read-only
        connection: a database of something else is not switched to WAL, nor created)."""
        if self.path.is_dir():
            return _A_FOLDER
        if not self.path.is_file():
            return "the file does not exist"
        try:
            with contextlib.closing(
                sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            ) as connection:
                found = connection.execute(self._table_query, ("live_meta",)).fetchone()
        except sqlite3.DatabaseError as exc:
            return f"it is not an SQLite database ({exc})"
        return None if found is not None else _NO_TABLES

    def _begin(self, connection: Any, write: bool) -> None:
        connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def _open_hint(self, error: BaseException) -> str:
        if self.path.is_dir():
            return _A_FOLDER
        if isinstance(error, sqlite3.DatabaseError) and self.path.is_file():
            return "the file is not a live store; name a new file, or a store made before"
        return super()._open_hint(error)


def open_store(
    url: str | Path, *, versions_dir: str | Path | None = None, create: bool = True
) -> ShadowStore:
    """Open the live store at ``url``, creating it when missing (unless ``create=False``).

    Args:
        url: A file path or ``sqlite:///path`` (SQLite), or ``postgresql://...`` /
            ``postgres://...`` (PostgreSQL, ``pip install 'hybrid-llm[postgres]'``;
            SQLAlchemy's ``postgresql+psycopg://...`` is read as ``postgresql://...``, since
            the store always connects with psycopg).
        versions_dir: Where router versions are saved; None: beside a SQLite file, and none
            for PostgreSQL (give one to retrain).
        create: Whether a missing store is created. Commands that read a store
            (``hybrid-llm report``, ``hybrid-llm retrain``) pass False, so that a mistyped
            path is an error rather than a new, empty store.

    Returns:
        The store, its tables created.

    Raises:
        ConfigurationError: For a URL of another scheme, a store of another schema version,
            or, with ``create=False``, a URL where no live store is.
        RoutingError: When the store cannot be reached.
        MissingDependencyError: For PostgreSQL without psycopg.
    """
    kind, target = check_store_url(url)
    store: ShadowStore
    if kind == "sqlite":
        store = SQLiteStore(target, versions_dir=versions_dir)
    else:
        from shared_router.live.store_postgres import PostgresStore

        store = PostgresStore(target, versions_dir=versions_dir)
    if not create:
        reason = store._missing_reason()
        if reason is not None:
            raise ConfigurationError(
                f"no live store at {store.url!r}: {reason}; check the URL (a store is made "
                "when a model is built with LiveSettings(store=...), or by open_store(url))"
            )
    return store.create()


def check_store_url(url: str | Path) -> tuple[Literal["sqlite", "postgresql"], str]:
    """Which store a URL names, by its form alone (nothing is opened).

    Args:
        url: As for :func:`open_store`.

    Returns:
        ``("sqlite", file path)`` or ``("postgresql", the URL without a SQLAlchemy driver
        part)``. A ``sqlite://`` URL is read
        as SQLAlchemy reads it: ``sqlite:///live.sqlite`` is ``live.sqlite`` (relative to the
        working folder), ``sqlite:////var/live.sqlite`` is ``/var/live.sqlite``.

    Raises:
        ConfigurationError: For a URL of another scheme, or a ``sqlite://`` URL without a file.
    """
    text = str(url)
    scheme = urlparse(text).scheme.lower() if "://" in text else ""
    if not scheme and text.lower().startswith(("sqlite:", "postgresql:", "postgres:")):
        raise ConfigurationError(_malformed(text))
    if scheme in ("", "sqlite"):
        # SQLAlchemy's form: sqlite:///relative/path, sqlite:////absolute/path.
        rest = text.split("://", 1)[1] if scheme else ""
        if rest and not rest.startswith("/"):
            raise ConfigurationError(_malformed(text))
        if "?" in rest:
            raise ConfigurationError(
                f"store URL {text!r} has query options, which the SQLite store does not take; "
                "drop them (the store sets its own: WAL journal, busy timeout)"
            )
        path = unquote(rest.removeprefix("/")) if scheme else text
        if not path:
            raise ConfigurationError(
                f"store URL {text!r} names no file; use sqlite:///relative/path or "
                "sqlite:////absolute/path"
            )
        return "sqlite", path
    if scheme in ("postgresql", "postgres"):
        return "postgresql", text
    if scheme.startswith("postgresql+"):  # SQLAlchemy's dialect+driver form; psycopg is ours
        return "postgresql", "postgresql" + text[len(scheme) :]
    raise ConfigurationError(
        f"unknown store URL scheme {scheme!r} in {text!r}; use a file path, "
        "sqlite:///path/to/live.sqlite or postgresql://user@host/dbname"
    )


def _malformed(text: str) -> str:
    """The message for a URL that names a scheme in a form that is not a URL of it."""
    rest = text.split(":", 1)[1]
    name = rest.lstrip("/") or "live.sqlite"
    if rest.startswith("/") and not rest.startswith("//"):  # sqlite:/abs/path: meant absolute
        return (
            f"store URL {text!r} is not in a URL form: write sqlite:////{name} (the absolute "
            f"path /{name}; four slashes), the plain path /{name}, or "
            "postgresql://user@host/dbname"
        )
    return (
        f"store URL {text!r} is not in a URL form: write sqlite:///{name} (relative to the "
        f"working folder), sqlite:////absolute/path/{name.rsplit('/', 1)[-1]}, a plain file "
        "path, or postgresql://user@host/dbname"
    )


def _reopened(url: str, versions_dir: Path | None) -> ShadowStore:
    """The store at ``url`` opened in this process (what unpickling a store does)."""
    return open_store(url, versions_dir=versions_dir)
