"""The live loop served: settings, the routing service's live hook, refreshes, stats, versions."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import pickle
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shared_router.encoders.cache import CACHE_ENV
from shared_router.errors import ConfigurationError, RoutingError
from shared_router.live import retraining
from shared_router.live.retraining import RETRAIN_LOCK, Retrainer
from shared_router.live.rows import VersionRecord
from shared_router.live.serving_loop import live_loop
from shared_router.live.serving_stats import LiveServingStats
from shared_router.live.settings import LiveSettings, checked_live_settings
from shared_router.live.store import open_store
from shared_router.routing.live_hook import LIVE_KNOB
from shared_router.routing.router import Router
from shared_router.routing.serving import RoutingService
from shared_router.types import QualityKnobs
from tests.fixed_router import FixedRouter
from tests.shared_router.live_serving_support import planted_rows, settings_for

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"judge": "gpt-4o"}, "judge must be callable"),
        ({"shadow_rate": 1.5}, "shadow_rate must lie in"),
        ({"retrain_every": 0}, "retrain_every must be an int >= 1"),
        ({"refresh_interval_s": float("nan")}, "refresh_interval_s must be > 0"),
        ({"refresh_interval_s": True}, "refresh_interval_s must be > 0 seconds, got True"),
        ({"shadow_rate": True}, r"LiveSettings.shadow_rate must lie in \[0, 1\], got True"),
        ({"queue_size": 0}, r"LiveSettings.queue_size must be an int >= 1, got 0"),
        ({"workers": 2.5}, r"LiveSettings.workers must be an int >= 1, got 2.5"),
        ({"shadow_timeout": -1}, r"LiveSettings.shadow_timeout must be > 0 seconds, got -1"),
        ({"keep": "txt"}, "LiveSettings.keep must be 'text' or 'embedding', got 'txt'"),
        ({"store": None}, "LiveSettings.store must be a SQLite file path, .* got NoneType"),
        ({"store": 123}, "LiveSettings.store must be .* got int: 123"),
        ({"retrain_min_rows": 29}, r"LiveSettings.retrain_min_rows must be >= 30 .* got 29"),
        (
            {"store": "postgresql://live@127.0.0.1:1/live", "retrain": True},
            r"retrain=True\) keeps router versions in a folder, and store "
            r"'postgresql://live@127.0.0.1:1/live' has none .* pass versions_dir=",
        ),
    ],
)
def test_bad_settings_say_what_was_given(
    tmp_path: Path, changes: dict[str, object], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=message):
        settings_for(tmp_path, **changes)
    assert list(tmp_path.iterdir()) == []  # refused before any store was opened


def test_an_adapter_argument_must_be_live_settings(tmp_path: Path) -> None:
    assert checked_live_settings(None) is None
    settings = settings_for(tmp_path)
    assert checked_live_settings(settings) is settings
    with pytest.raises(ConfigurationError, match="live must be None or a LiveSettings"):
        checked_live_settings({"store": "live.sqlite"})


def test_an_unknown_store_scheme_is_refused_with_the_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown store URL scheme 'redis'.*sqlite:///"):
        settings_for(tmp_path, store="redis://localhost/0")
    with pytest.raises(ConfigurationError, match="names no file"):
        settings_for(tmp_path, store="sqlite://")
    with pytest.raises(ConfigurationError, match="has query options"):
        settings_for(tmp_path, store="sqlite:///x.sqlite?mode=ro")
    for malformed in ("sqlite://x.sqlite", "sqlite:x.sqlite"):
        with pytest.raises(ConfigurationError, match=f"{malformed!r}.*sqlite:///x.sqlite"):
            settings_for(tmp_path, store=malformed)
    with pytest.raises(  # one slash: an absolute path was meant
        ConfigurationError, match=r"write sqlite:////var/x.sqlite \(the absolute path /var/x"
    ):
        settings_for(tmp_path, store="sqlite:/var/x.sqlite")


def _equal_answers(case: object) -> tuple[float, float]:
    return 1.0, 1.0


def test_a_relative_sqlite_store_is_kept_absolute_for_unpickled_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for given in ("live.sqlite", "sqlite:///live.sqlite", Path("live.sqlite")):
        assert settings_for(tmp_path, store=given).store == str(tmp_path / "live.sqlite")
    unpickled_elsewhere = tmp_path / "elsewhere"
    unpickled_elsewhere.mkdir()
    pickled = pickle.dumps(LiveSettings(store="live.sqlite", judge=_equal_answers))
    monkeypatch.chdir(unpickled_elsewhere)
    assert pickle.loads(pickled).store == str(tmp_path / "live.sqlite")


def test_one_loop_per_settings_object_and_copies_share_it(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    assert copy.deepcopy(settings) is settings
    assert live_loop(settings) is live_loop(settings) is settings.loop()
    assert live_loop(settings_for(tmp_path)) is not live_loop(settings)
    settings = settings_for(tmp_path, judge=_equal_answers)  # a judge that pickles
    unpickled = pickle.loads(pickle.dumps(settings))  # what a pool's task brings along
    assert unpickled is not settings and unpickled.loop() is settings.loop()
    assert dataclasses.replace(settings, shadow_rate=0.5).loop() is not settings.loop()


def test_a_postgresql_store_retrains_with_a_versions_folder_or_not_at_all(tmp_path: Path) -> None:
    url = "postgresql://live@127.0.0.1:1/live"  # not opened: the settings are only checked
    assert settings_for(tmp_path, store=url, retrain=True, versions_dir=tmp_path / "v").retrain
    assert not settings_for(tmp_path, store=url, retrain=False).retrain
    assert settings_for(tmp_path, retrain=True).retrain  # a SQLite file keeps them beside it


def test_rows_buffered_while_the_store_was_down_go_out_at_the_next_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = live_loop(settings_for(tmp_path, refresh_interval_s=3600.0))
    service = RoutingService(FixedRouter("small"), live=loop)
    store = loop.store
    real_append = store.append
    down = threading.Event()
    down.set()

    def append(rows: object) -> None:
        if down.is_set():
            raise RoutingError("live store 'x': connection refused")
        real_append(rows)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "append", append)
    routed = service.decide("What is 2 + 2?")
    assert loop.offer(routed, "small", "4", call_other=lambda: "4")
    assert loop.drain(timeout=30)  # the row is judged; the store refuses it: it waits
    assert loop.stats.rows_buffered == 1 and store.count() == 0
    down.clear()  # the store is back; no shadowed call comes in
    assert loop.refresh()
    assert (loop.stats.rows_buffered, loop.stats.rows_written, store.count()) == (0, 1, 1)


@pytest.fixture()
def due_to_retrain(tmp_path: Path) -> LiveSettings:
    """Settings whose loop retrains at its first refresh (200 rows in the store, 100 needed)."""
    settings = settings_for(tmp_path, retrain=True, retrain_min_rows=100)
    open_store(settings.store).append(planted_rows(200))  # type: ignore[arg-type]
    return settings


def test_a_loop_closed_mid_retraining_releases_the_store_lock(
    due_to_retrain: LiveSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def hung(self: Retrainer, *args: object) -> None:
        release.wait(30)  # a retraining still running when the process stops

    monkeypatch.setattr(Retrainer, "_retrain", hung)
    loop = live_loop(due_to_retrain)
    RoutingService("default", live=loop).decide("What is 2 + 2?", QualityKnobs(threshold=0.5))
    deadline = time.monotonic() + 30
    while loop.store.lock_holder(RETRAIN_LOCK) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loop.store.lock_holder(RETRAIN_LOCK) is not None
    loop.close(timeout=1)
    assert loop.store.lock_holder(RETRAIN_LOCK) is None  # the other workers need not wait
    release.set()


def test_closing_a_loop_waits_for_its_retraining_to_give_up(
    due_to_retrain: LiveSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoding = threading.Event()
    encoded = retraining.row_vectors

    def slow_encoder(*args: object, **kwargs: object) -> object:
        encoding.set()
        time.sleep(0.5)  # a retraining inside the encoder when the process stops
        return encoded(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(retraining, "row_vectors", slow_encoder)
    loop = live_loop(due_to_retrain)
    RoutingService("default", live=loop).decide("What is 2 + 2?", QualityKnobs(threshold=0.5))
    assert encoding.wait(30)
    loop.close(timeout=10)
    assert loop._thread is not None and not loop._thread.is_alive()  # ended before exit
    assert loop.store.versions() == [] and loop.store.lock_holder(RETRAIN_LOCK) is None


_EXIT_MID_RETRAINING = """
import sqlite3, sys, time
from shared_router.live.settings import LiveSettings
from shared_router.routing.serving import RoutingService
from shared_router.types import QualityKnobs
from tests.shared_router.live_serving_support import JUDGE

store = sys.argv[1]
settings = LiveSettings(store=store, judge=JUDGE, shadow_rate=0.0, retrain_min_rows=100)
service = RoutingService("default", live=settings.loop())
service.decide("What is 2 + 2?", QualityKnobs(threshold=0.5))
deadline = time.monotonic() + 60
while time.monotonic() < deadline:  # until the loop's thread is retraining
    with sqlite3.connect(store) as connection:
        if connection.execute("SELECT * FROM live_locks").fetchall():
            break
    time.sleep(0.01)
else:
    sys.exit("the loop never retrained")
"""  # then the script ends, the loop's thread inside the retraining's encoder


def test_a_process_that_ends_mid_retraining_exits_cleanly(tmp_path: Path) -> None:
    store = tmp_path / "live.sqlite"
    rows = [
        dataclasses.replace(row, text=f"Question {i}: what is {i} times {i + 7}, and why?")
        for i, row in enumerate(planted_rows(1500))
    ]
    open_store(store).append(rows)
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_MID_RETRAINING, str(store)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, CACHE_ENV: str(tmp_path / "cache.sqlite")},  # nothing cached
    )
    assert done.returncode == 0, done.stderr[-2000:]  # 134 (abort) before
    assert "Traceback" not in done.stderr
    with contextlib.closing(sqlite3.connect(store)) as connection:
        assert connection.execute("SELECT * FROM live_locks").fetchall() == []
    assert open_store(store).versions() == []  # it gave up, and left no half version


def test_max_quality_drop_routes_at_the_live_threshold_once_rows_are_read(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    open_store(settings.store).append(planted_rows(400))  # type: ignore[arg-type]
    loop = live_loop(settings)
    service = RoutingService(FixedRouter("small"), live=loop)
    first = service.decide("What is 2 + 2?", QualityKnobs(max_quality_drop=0.05))
    # no prior table and no live rows read yet: the cautious all-large threshold decides
    assert first.model == "large" and first.calibration is not None
    assert first.calibration.source == "prior"
    assert loop.drain(timeout=30)
    routed = service.decide("What is 2 + 2?", QualityKnobs(max_quality_drop=0.05))
    assert routed.model == "small" and routed.decision.knob == LIVE_KNOB
    level = routed.calibration
    assert level is not None and (level.source, level.n_rows) == ("live", 400)
    assert 0.4 < level.threshold < 0.9 and level.bound <= 0.05
    record = service.record(routed, answered_by="small", model_name="s").as_dict()
    assert record["calibration"] == "live" and record["calibration_rows"] == 400
    assert record["drop_bound"] == pytest.approx(level.bound)
    assert "live calibration, 400 live rows" in record["reason"]
    # other knobs are not touched by the live calibration
    plain = service.decide("What is 2 + 2?", QualityKnobs(threshold=0.5))
    assert plain.calibration is None and plain.decision.knob == "threshold"
    assert "calibration" not in service.record(plain, answered_by="small", model_name="s").extra


def test_stats_show_the_loop_beside_the_routing_counters(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    loop = live_loop(settings)
    assert loop.stats.router_version is None  # no routed call has started the loop yet
    service = RoutingService(FixedRouter("small"), live=loop)
    routed = service.decide("What is 2 + 2?", QualityKnobs(max_quality_drop=0.05))
    service.record(routed, answered_by="large", model_name="l")
    assert loop.offer(routed, "large", "4", lambda: "four")
    assert loop.drain(timeout=30)
    stats = loop.serving_stats(service.stats)
    assert isinstance(stats, LiveServingStats)
    assert (stats.calls, stats.large) == (1, 1)
    live = stats.live
    assert (live.calls, live.shadowed, live.labelled, live.rows_written) == (1, 1, 1, 1)
    assert live.shadow_cost == pytest.approx(0.1)  # the small model's shadow call
    assert live.cost_saved_net == pytest.approx(-0.1)  # went large, paid the shadow call
    # the starting router's name, as in the routing records and the rows
    record = service.make_record(routed, answered_by="large", model_name="l")
    assert (live.calibration, live.calibration_rows, live.router_version) == ("prior", 0, "fixed")
    assert record.router == live.router_version == loop.store.rows()[0].row.router_version


def test_unscored_decisions_are_not_offered(tmp_path: Path) -> None:
    loop = live_loop(settings_for(tmp_path))
    service = RoutingService(FixedRouter("small"), live=loop)
    service.decide("warm up")  # starts the loop
    forced = service.decide("What is 2 + 2?", force_large="tools only the large model takes")
    assert not loop.offer(forced, "large", "4", lambda: "4")
    failing = FixedRouter(error=RuntimeError("encoder exploded"))
    other_loop = live_loop(settings_for(tmp_path / "other"))
    failed = RoutingService(failing, live=other_loop).decide("What is 2 + 2?")
    assert failed.router_failed and not other_loop.offer(failed, "large", "4", lambda: "4")
    assert loop.stats.calls == other_loop.stats.calls == 0


def test_one_loop_learns_one_router(tmp_path: Path) -> None:
    loop = live_loop(settings_for(tmp_path))
    RoutingService(FixedRouter("small"), live=loop).decide("start the loop")
    with pytest.raises(ConfigurationError, match="give each router its own LiveSettings"):
        RoutingService(FixedRouter("large"), live=loop).decide("What is 2 + 2?")
    shared = live_loop(settings_for(tmp_path / "shared"))
    RoutingService("default", live=shared).decide("start the loop")
    with pytest.raises(
        ConfigurationError, match="another Router object of the same name, 'hybrid-llm-default"
    ):
        RoutingService(Router.load("default"), live=shared).decide("What is 2 + 2?")
    RoutingService("default", live=shared).decide("What is 2 + 2?")  # the same source: shared


def test_a_failed_refresh_is_counted_and_routing_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    loop = live_loop(settings_for(tmp_path))
    service = RoutingService(FixedRouter("small"), live=loop)
    service.decide("start the loop")
    assert loop.drain(timeout=30)

    def unreachable(after_id: int = 0, limit: int | None = None) -> list[object]:
        raise RoutingError("live store 'x': connection refused")

    monkeypatch.setattr(loop.store, "rows", unreachable)
    with caplog.at_level(logging.WARNING, logger="shared_router.live.serving_loop"):
        assert not loop.refresh()
    assert "connection refused" in caplog.text
    assert loop.stats.refresh_errors >= 1  # the loop's own thread may have refreshed too
    assert service.decide("What is 2 + 2?", QualityKnobs(max_quality_drop=0.05)).calibration


def test_a_bug_in_a_refresh_is_logged_with_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    loop = live_loop(settings_for(tmp_path))
    RoutingService(FixedRouter("small"), live=loop).decide("start the loop")
    assert loop.drain(timeout=30)

    def broken(after_id: int = 0, limit: int | None = None) -> list[object]:
        raise TypeError("unsupported operand")

    monkeypatch.setattr(loop.store, "rows", broken)
    with caplog.at_level(logging.ERROR, logger="shared_router.live.serving_loop"):
        assert not loop.refresh()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and all(r.exc_info and r.exc_info[0] is TypeError for r in errors)
    assert loop.stats.refresh_errors >= 1  # the loop's own thread may have refreshed too


def test_a_version_another_worker_swapped_in_is_picked_up_and_routes(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    loop = live_loop(settings)
    service = RoutingService("default", live=loop)
    before = service.decide("What is the capital of France?", QualityKnobs(threshold=0.5))
    assert loop.stats.router_version == "hybrid-llm-default-v0"  # the router's own name
    version = Router.load("default")
    version.name = "v1"  # as the Retrainer names the routers it saves
    folder = version.save(tmp_path / "v1")
    loop.store.add_version(
        VersionRecord("v1", time.time(), str(folder), service.router.name, True, 300, 100, 0.6, 0.4)
    )
    assert loop.drain(timeout=30)
    assert loop.stats.router_version == "v1"
    swapped = loop.router_for(service.router)
    assert swapped is not service.router and swapped.name == "v1"
    after = service.decide("What is the capital of France?", QualityKnobs(threshold=0.5))
    assert after.decision.score == pytest.approx(before.decision.score, abs=1e-6)
    # each record names the router that decided
    records = [service.make_record(r, answered_by=r.model, model_name="m") for r in (before, after)]
    assert [record.router for record in records] == [service.router.name, "v1"]


def test_a_worker_started_after_a_swap_routes_its_first_call_with_the_version(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    version = Router.load("default")
    version.name = "v1"
    folder = version.save(tmp_path / "v1")
    open_store(settings.store).add_version(  # type: ignore[arg-type]
        VersionRecord(
            "v1", time.time(), str(folder), "hybrid-llm-default-v0", True, 300, 100, 0.6, 0.4
        )
    )
    loop = live_loop(settings)
    service = RoutingService("default", live=loop)
    first = service.decide("What is the capital of France?", QualityKnobs(threshold=0.5))
    assert service.make_record(first, answered_by=first.model, model_name="m").router == "v1"
    assert loop.stats.router_version == "v1"


def test_large_share_keeps_working_through_the_pacer_with_live(tmp_path: Path) -> None:
    loop = live_loop(settings_for(tmp_path))
    service = RoutingService("default", pace_large_share=True, live=loop)
    texts = [f"What is {i} plus {i + 1}?" for i in range(30)] + [
        f"Draft a detailed legal analysis of clause {i} of a commercial lease." for i in range(30)
    ]
    decisions = [service.decide(t, QualityKnobs(large_share=0.5)) for t in texts * 2]
    assert {d.decision.knob for d in decisions} == {"large_share (paced)"}
    assert all(d.calibration is None for d in decisions)
    late = decisions[len(decisions) // 2 :]
    assert 0.3 <= sum(d.model == "large" for d in late) / len(late) <= 0.7
