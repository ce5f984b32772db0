"""The live store on SQLite and on a real PostgreSQL: schema, rows, lock, versions, failures."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shared_router.errors import ConfigurationError, RoutingError
from shared_router.live.rows import ShadowRow, TrafficCounts, VersionRecord
from shared_router.live.store import ShadowStore, SQLiteStore, check_store_url, open_store
from shared_router.live.store_writer import StoreWriter
from tests.shared_router.postgres_server import fresh_postgres, postgres_url  # noqa: F401

REPO = Path(__file__).resolve().parents[2]

POSTGRES = [pytest.mark.postgres, pytest.mark.integration]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=POSTGRES)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty store, on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "live.sqlite")
    url: str = request.getfixturevalue("fresh_postgres")
    return url


@pytest.fixture()
def store(store_url: str, tmp_path: Path) -> Iterator[ShadowStore]:
    opened = open_store(store_url, versions_dir=tmp_path / "versions")
    yield opened
    opened.close()


def _row(i: int, **changes: object) -> ShadowRow:
    fields: dict[str, object] = {
        "request_id": f"req-{i}",
        "created_at": 1000.0 + i,
        "judged_at": 1001.0 + i,
        "router_version": "default",
        "decision": "small" if i % 2 else "large",
        "small_quality": 0.25,
        "large_quality": 1.0,
        "text": f"What is {i} + {i}?",
        "score": 0.7,
        "threshold": 0.6,
        "calibration_source": "prior",
        "calibration_rows": 0,
        "calibration_bound": 0.01,
        "shadow_cost": 0.1,
        "worker": "w1",
    }
    fields.update(changes)
    return ShadowRow(**fields)  # type: ignore[arg-type]


def test_rows_round_trip_with_every_field(store: ShadowStore) -> None:
    vector = np.arange(4, dtype=np.float32)
    rows = [
        _row(1, small_answer="2", large_answer="2"),
        _row(2, text=None, embedding=vector, encoder_identity="enc|sha256:x"),
    ]
    store.append(rows)
    read = store.rows()
    assert [r.row.request_id for r in read] == ["req-1", "req-2"]
    assert read[0].row_id < read[1].row_id
    assert read[0].row == rows[0]
    assert read[1].row.text is None
    np.testing.assert_array_equal(read[1].row.embedding, vector)
    assert read[1].row.encoder_identity == "enc|sha256:x"
    assert [r.row.request_id for r in store.rows(after_id=read[0].row_id)] == ["req-2"]
    assert store.count() == 2


def test_a_second_open_sees_the_same_rows(store: ShadowStore, store_url: str) -> None:
    store.append([_row(1)])
    again = open_store(store_url)
    assert [r.row.request_id for r in again.rows()] == ["req-1"]


def test_traffic_counters_are_summed_over_workers(store: ShadowStore) -> None:
    store.record_traffic("w1", TrafficCounts(calls=10, small=4, answer_cost=4.6, large_cost=10.0))
    store.record_traffic("w1", TrafficCounts(calls=20, small=8, answer_cost=9.2, large_cost=20.0))
    store.record_traffic("w2", TrafficCounts(calls=5, shadowed=1, shadow_cost=1.0))
    total = store.traffic()
    assert (total.calls, total.small, total.shadowed) == (25, 8, 1)
    assert total.cost_saved_net == pytest.approx(20.0 - 9.2 - 1.0)


def test_the_lock_admits_one_owner_until_it_expires(store: ShadowStore) -> None:
    assert store.try_lock("retrain", "a", ttl_s=60)
    assert not store.try_lock("retrain", "b", ttl_s=60)
    assert store.try_lock("retrain", "a", ttl_s=60)  # renewing one's own lock
    store.release_lock("retrain", "a")
    assert store.try_lock("retrain", "b", ttl_s=0.2)
    time.sleep(0.3)
    assert store.try_lock("retrain", "a", ttl_s=60)  # b's lock expired


def test_versions_record_the_comparison_and_the_current_one(store: ShadowStore) -> None:
    assert store.current_version() is None
    first = VersionRecord(
        "v1", 1.0, "/r/v1", "default", True, 3, 40, 0.3, 0.1, (1, 2, 3), (0.25, 0.5, 0.125)
    )
    second = VersionRecord("v2", 2.0, "/r/v2", "v1", False, 200, 60, 0.2, 0.3, ())
    store.add_version(first)
    store.add_version(second)
    assert store.versions() == [first, second]
    assert store.current_version() == first
    assert first.cross_fit_scores() == {1: 0.25, 2: 0.5, 3: 0.125}
    assert second.cross_fit_scores() == {}


def test_a_version_record_needs_one_cross_fitted_score_per_fitted_row() -> None:
    with pytest.raises(ConfigurationError, match="2 scores for 3 fit_row_ids"):
        VersionRecord("v1", 1.0, "/r/v1", "default", True, 3, 40, 0.3, 0.1, (1, 2, 3), (0.1, 0.2))


def test_a_version_1_store_is_upgraded_when_opened(store: ShadowStore, store_url: str) -> None:
    old = VersionRecord("v1", 1.0, "/r/v1", "default", True, 2, 40, 0.3, 0.1, (4, 5))
    store.add_version(old)
    store.append([_row(1)])
    with store._transaction() as connection:  # back to the layout of version 1
        store._execute(connection, "ALTER TABLE router_versions DROP COLUMN fit_row_scores")
        store._execute(connection, "UPDATE live_meta SET value = '1' WHERE key = 'schema_version'")
    store.close()
    upgraded = open_store(store_url)
    try:
        assert upgraded.versions() == [old] and upgraded.count() == 1
        new = VersionRecord("v2", 2.0, "/r/v2", "v1", True, 1, 40, 0.4, 0.3, (6,), (0.75,))
        upgraded.add_version(new)
        assert upgraded.versions() == [old, new]
        with upgraded._transaction(write=False) as connection:
            found = upgraded._execute(
                connection, "SELECT value FROM live_meta WHERE key = 'schema_version'"
            ).fetchone()
        assert found[0] == "2"
    finally:
        upgraded.close()


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(
        ConfigurationError, match=r"unknown store URL scheme 'mysql'.*postgresql://"
    ):
        open_store("mysql://localhost/db")


def test_sqlite_urls_read_as_sqlalchemy_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert check_store_url("sqlite:///rel.sqlite") == ("sqlite", "rel.sqlite")
    assert check_store_url("sqlite:///sub/rel.sqlite") == ("sqlite", "sub/rel.sqlite")
    assert check_store_url("sqlite:////var/live.sqlite") == ("sqlite", "/var/live.sqlite")
    assert check_store_url("sqlite:///my%20store.sqlite") == ("sqlite", "my store.sqlite")
    assert check_store_url("live.sqlite") == ("sqlite", "live.sqlite")
    open_store("sqlite:///rel.sqlite").close()
    assert (tmp_path / "rel.sqlite").is_file()
    for empty in ("sqlite://", "sqlite:///"):
        with pytest.raises(ConfigurationError, match="names no file.*sqlite:////absolute"):
            check_store_url(empty)


def test_postgresql_urls_take_every_common_spelling(store_url: str) -> None:
    assert check_store_url("postgres://u@h/db") == ("postgresql", "postgres://u@h/db")
    for driver in ("psycopg", "psycopg2"):  # SQLAlchemy's dialect+driver form
        assert check_store_url(f"postgresql+{driver}://u@h:5/db?sslmode=disable") == (
            "postgresql",
            "postgresql://u@h:5/db?sslmode=disable",
        )
    if store_url.startswith("postgresql://"):  # the real server, by the SQLAlchemy spelling
        open_store(store_url).append([_row(1)])
        spelt = "postgresql+psycopg://" + store_url.removeprefix("postgresql://")
        assert open_store(spelt, create=False).count() == 1


def test_a_store_that_is_not_there_is_not_made_when_create_is_false(
    store_url: str, tmp_path: Path
) -> None:
    missing = tmp_path / "typo.sqlite"
    with pytest.raises(ConfigurationError, match="no live store at .*typo.sqlite.: the file does"):
        open_store(missing, create=False)
    assert not missing.exists()
    other = tmp_path / "cache.sqlite"  # an SQLite file of something else
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE embeddings (key TEXT)")
    with pytest.raises(ConfigurationError, match="it holds no live tables"):
        open_store(other, create=False)
    # the empty database of each backend is no store either, until a store is made in it
    if not store_url.endswith(".sqlite"):
        with pytest.raises(ConfigurationError, match="it holds no live tables"):
            open_store(store_url, create=False)
    open_store(store_url).append([_row(1)])
    assert open_store(store_url, create=False).count() == 1


def test_a_read_only_open_leaves_other_files_as_they_were(tmp_path: Path) -> None:
    empty, other, text = tmp_path / "empty.sqlite", tmp_path / "other.sqlite", tmp_path / "a.txt"
    empty.write_bytes(b"")
    text.write_text("not a database")
    with contextlib.closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE embeddings (key TEXT)")
        connection.commit()
    before = {path: path.read_bytes() for path in (empty, other, text)}
    for path, reason in (
        (empty, "it holds no live tables"),
        (other, "it holds no live tables"),
        (text, r"it is not an SQLite database \(file is not a database\)"),
        (tmp_path, "it is a folder; name a file in it"),
    ):
        with pytest.raises(ConfigurationError, match=f"no live store at .*: {reason}"):
            open_store(path, create=False)
    assert {path: path.read_bytes() for path in before} == before  # no WAL switch, no page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "empty.sqlite", "other.sqlite"]


def test_a_store_that_cannot_be_opened_says_why(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("not a database")
    with pytest.raises(RoutingError, match="not a database; the file is not a live store; name a"):
        open_store(tmp_path / "a.txt")
    with pytest.raises(RoutingError, match="it is a folder; name a file in it"):
        open_store(tmp_path)


def test_a_store_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "live.sqlite"
    open_store(path)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE live_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ConfigurationError, match="schema version '99'"):
        open_store(path)


def test_an_unreachable_store_is_a_routing_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RoutingError, match="could not be opened"):
        open_store(blocker / "live.sqlite")


def test_a_row_without_text_or_embedding_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="neither its text nor its embedding"):
        _row(1, text=None)


class _FailingStore(SQLiteStore):
    """A SQLite store whose writes fail while ``down`` is set (a server that went away)."""

    down = True

    def append(self, rows: object) -> None:  # type: ignore[override]
        if self.down:
            raise RoutingError("live store: connection refused")
        super().append(rows)  # type: ignore[arg-type]


def test_rows_wait_in_the_buffer_while_the_store_is_down_then_all_go_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _FailingStore(tmp_path / "live.sqlite").create()
    writer = StoreWriter(store, capacity=3)
    with caplog.at_level(logging.WARNING, logger="shared_router.live.store_writer"):
        results = [writer.write(_row(i)) for i in range(5)]
    assert results == [False] * 5
    assert (writer.stats.buffered, writer.stats.lost) == (3, 2)
    assert "wait in the buffer" in caplog.text and "2 shadow rows dropped" not in caplog.text
    assert "1 shadow rows dropped" in caplog.text
    store.down = False
    assert writer.write(_row(9)) is True
    assert [r.row.request_id for r in store.rows()] == ["req-0", "req-1", "req-2", "req-9"]
    assert writer.stats == type(writer.stats)(written=4, buffered=0, lost=2, failures=5)


_WRITER = """
import sys, time
from shared_router.live.rows import ShadowRow
from shared_router.live.store import open_store
store = open_store(sys.argv[1])
batch = 0
while True:
    rows = [
        ShadowRow(request_id=f"b{batch}-{i}", created_at=time.time(), judged_at=time.time(),
                  router_version="default", decision="small", small_quality=1.0,
                  large_quality=1.0, text="x" * 2000, small_answer="y" * 2000)
        for i in range(50)
    ]
    store.append(rows)
    batch += 1
    if batch == 1:
        print("first batch written", flush=True)
"""


def test_a_kill_during_writes_leaves_only_whole_batches(store_url: str, tmp_path: Path) -> None:
    open_store(store_url)
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(_WRITER))
    process = subprocess.Popen(
        [sys.executable, str(script), store_url],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "first batch written"
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    rows = open_store(store_url).rows()
    assert len(rows) >= 50 and len(rows) % 50 == 0
    assert all(r.row.text == "x" * 2000 and r.row.small_answer == "y" * 2000 for r in rows)


_CONCURRENT_WRITER = """
import sys, time
from shared_router.live.rows import ShadowRow
from shared_router.live.store import open_store
store = open_store(sys.argv[1])
for batch in range(10):
    store.append([
        ShadowRow(request_id=f"{sys.argv[2]}-{batch}-{i}", created_at=time.time(),
                  judged_at=time.time(), router_version="default", decision="large",
                  small_quality=0.0, large_quality=1.0, text="q", worker=sys.argv[2])
        for i in range(10)
    ])
"""


def test_several_worker_processes_write_to_one_store(store_url: str, tmp_path: Path) -> None:
    open_store(store_url)
    script = tmp_path / "worker_process.py"
    script.write_text(textwrap.dedent(_CONCURRENT_WRITER))
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), store_url, f"w{k}"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for k in range(3)
    ]
    assert [process.wait(timeout=120) for process in processes] == [0, 0, 0]
    rows = open_store(store_url).rows()
    assert len(rows) == 300 and len({r.row.request_id for r in rows}) == 300
    assert {r.row.worker for r in rows} == {"w0", "w1", "w2"}
