"""Retraining on live rows: a planted pattern is learned and swapped in; one worker retrains."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from shared_router.errors import ConfigurationError, TrainingError
from shared_router.live.head_fit import fit_cross_validated, fit_live_head, refit_live_head
from shared_router.live.live_routing import LiveRouting
from shared_router.live.retraining import RETRAIN_LOCK, Retrainer, row_vectors
from shared_router.live.store import ShadowStore, open_store
from shared_router.routing.router import Router
from shared_router.training.labels import det_labels, diff_labels
from shared_router.training.logistic import DEFAULT_L2_GRID, fit_logistic
from tests.shared_router.live_synthetic import planted_qualities, planted_rows, planted_vectors
from tests.shared_router.postgres_server import fresh_postgres, postgres_url  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundled() -> Router:
    return Router.load("default")


@pytest.fixture()
def store(tmp_path: Path, bundled: Router) -> ShadowStore:
    live = open_store(tmp_path / "live.sqlite")
    live.append(planted_rows(400, seed=0, identity=bundled.encoder_.identity))
    return live


def test_a_planted_pattern_is_learned_and_swapped_in(store: ShadowStore, bundled: Router) -> None:
    outcome = Retrainer(store, min_rows=200).retrain(bundled, "default", frozenset())
    assert outcome is not None and outcome.swapped
    record = outcome.record
    assert record.gap_new > 0.5 > record.gap_current
    # compared on 30% of the rows, then fitted on every row, held-out ones included
    assert record.n_fit == 400 == len(record.fit_row_ids) and record.n_holdout == 120
    assert store.current_version() == record
    loaded = Router.load(record.path)
    X = planted_vectors(2000, seed=7)
    small, _ = planted_qualities(X, seed=7, noise=0.0)
    scores = loaded.head_.predict_proba(X)
    assert _auc(scores, small.astype(bool)) > 0.85  # chance is 0.5
    chosen = loaded.metadata_["metrics"]["live_holdout"]
    assert chosen["labels"] in ("det", "diff") and loaded.label_type_ == chosen["labels"]
    assert set(chosen["label_gaps_out_of_fold"]) == {"det", "diff"}
    # calibrated on every row by its out-of-fold score
    assert loaded.calibration_ is not None and loaded.calibration_.n == 400
    assert len(record.fit_row_scores) == record.n_fit
    assert list(record.fit_row_ids) == sorted(record.fit_row_ids)
    assert loaded.metadata_["n_train"] == record.n_fit  # every row fits the head
    assert not list(Path(record.path).parent.glob(".*partial"))


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """How often a positive row scores above a negative one (ties count half)."""
    pos, neg = scores[positive], scores[~positive]
    return float(np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg))


def test_auto_labels_keep_the_kind_whose_out_of_fold_gap_is_higher() -> None:
    X = planted_vectors(300, seed=3)
    small, large = planted_qualities(X, seed=3)
    fitted = fit_live_head(X, small, large, labels="auto", l2=DEFAULT_L2_GRID, folds=5, seed=0)
    assert set(fitted.label_gaps) == {"det", "diff"}
    assert fitted.labels == max(fitted.label_gaps, key=fitted.label_gaps.__getitem__)
    alone = fit_live_head(
        X, small, large, labels=fitted.labels, l2=DEFAULT_L2_GRID, folds=5, seed=0
    )
    np.testing.assert_allclose(alone.head.predict_proba(X), fitted.head.predict_proba(X))
    assert alone.label_gaps == {} and alone.l2 == fitted.l2
    with pytest.raises(ConfigurationError, match="labels must be one of"):
        fit_live_head(X, small, large, labels="prob", l2=DEFAULT_L2_GRID, folds=5, seed=0)  # type: ignore[arg-type]


def test_graded_qualities_where_the_large_model_always_wins_are_learned_from_margins() -> None:
    # A graded judge: the large answer is always a little better on easy queries (first
    # coordinate > 0) and much better on hard ones. Every det label is 0 ("never small"),
    # so only the margins say which queries can go small.
    X = planted_vectors(400, seed=8)
    easy = X[:, 0] > 0
    rng = np.random.default_rng(9)
    small = np.clip(np.where(easy, 0.8, 0.3) + rng.normal(0, 0.05, 400), 0, 0.9)
    large = np.clip(small + np.where(easy, 0.02, 0.5), 0, 1)
    fitted = fit_live_head(X, small, large, labels="auto", l2=DEFAULT_L2_GRID, folds=5, seed=0)
    assert fitted.labels == "diff" and set(fitted.label_gaps) == {"diff"}
    held = planted_vectors(1000, seed=10)
    assert _auc(fitted.head.predict_proba(held), held[:, 0] > 0) > 0.9
    with pytest.raises(TrainingError, match="two label values"):
        fit_live_head(X, small, large, labels="det", l2=DEFAULT_L2_GRID, folds=5, seed=0)


def test_the_out_of_fold_scores_are_out_of_sample() -> None:
    # pure-noise labels on wide vectors: a head scores its own rows well, unseen ones by chance
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 96)).astype(np.float32)
    small = (rng.random(200) < 0.5).astype(float)
    large = np.ones(200)
    for labels in ("det", "auto"):
        fitted = fit_live_head(X, small, large, labels=labels, l2=(1e-4,), folds=5, seed=0)
        assert fitted.out_of_fold is not None and fitted.out_of_fold.shape == (200,)
        assert _auc(fitted.head.predict_proba(X), small == 1) > 0.9
        assert abs(_auc(fitted.out_of_fold, small == 1) - 0.5) < 0.15
        refitted = refit_live_head(X, small, large, recipe=fitted, folds=5, seed=1)
        assert (refitted.labels, refitted.l2) == (fitted.labels, fitted.l2)
        assert refitted.out_of_fold is not None
        assert abs(_auc(refitted.out_of_fold, small == 1) - 0.5) < 0.15


def test_the_l2_is_chosen_by_cross_validation_and_the_head_refitted_on_all_rows() -> None:
    X = planted_vectors(300, seed=3)
    small, _ = planted_qualities(X, seed=3)
    pattern = fit_cross_validated(X, small, l2=DEFAULT_L2_GRID, folds=5, seed=0)
    rng = np.random.default_rng(4)
    noise = fit_cross_validated(
        X, (rng.random(300) < 0.5).astype(float), l2=DEFAULT_L2_GRID, folds=5, seed=0
    )
    # a planted pattern wants little regularisation; labels that are pure noise want the most
    assert pattern.l2 < max(DEFAULT_L2_GRID) == noise.l2
    assert pattern.l2 == min(pattern.val_losses, key=pattern.val_losses.__getitem__)
    refitted = fit_logistic(X, small, l2=pattern.l2).head
    np.testing.assert_allclose(
        pattern.head.predict_proba(X), refitted.predict_proba(X), rtol=1e-6, atol=1e-7
    )


def test_cross_validation_needs_two_folds_and_two_label_values(store: ShadowStore) -> None:
    X = planted_vectors(40, seed=5)
    with pytest.raises(ConfigurationError, match="folds must be >= 2, got 1"):
        fit_cross_validated(X, np.ones(40), l2=(0.1,), folds=1, seed=0)
    with pytest.raises(TrainingError, match="two label values"):
        fit_cross_validated(X, np.ones(40), l2=(0.1,), folds=5, seed=0)
    with pytest.raises(ConfigurationError, match="folds must be >= 2"):
        Retrainer(store, folds=1)


def test_a_store_without_a_versions_folder_says_which_argument_gives_one(
    fresh_postgres: str,  # noqa: F811
) -> None:
    live = open_store(fresh_postgres)  # PostgreSQL keeps no router files of its own
    with pytest.raises(ConfigurationError) as raised:
        Retrainer(live)
    assert str(raised.value) == (
        f"store {live.url!r} has no folder for router versions (a PostgreSQL store has none "
        "of its own); pass Retrainer(..., versions_dir=DIR)"
    )


def test_a_candidate_that_is_not_better_is_recorded_but_not_swapped(
    store: ShadowStore, bundled: Router
) -> None:
    outcome = Retrainer(store, min_rows=200, min_gain=1.0).retrain(bundled, "default", frozenset())
    assert outcome is not None and not outcome.swapped
    assert store.current_version() is None
    assert [v.version for v in store.versions()] == [outcome.record.version]


def test_one_worker_retrains_and_the_others_pick_the_version_up(
    store: ShadowStore, bundled: Router
) -> None:
    worker_a = LiveRouting(store, bundled, retrainer=Retrainer(store, min_rows=200, every=100))
    worker_b = LiveRouting(store, bundled, retrainer=Retrainer(store, min_rows=200, every=100))
    assert store.try_lock(RETRAIN_LOCK, "someone else", ttl_s=60)
    assert worker_a.refresh() is None  # the lock is held: no retraining, routing goes on
    assert worker_a.version == bundled.name
    store.release_lock(RETRAIN_LOCK, "someone else")
    store.append(planted_rows(100, seed=1, identity=bundled.encoder_.identity, start=400))
    outcome = worker_a.refresh()
    assert outcome is not None and outcome.swapped and worker_a.version == outcome.record.version
    worker_b.refresh()
    assert worker_b.version == outcome.record.version
    assert worker_b.fit_ids == frozenset(outcome.record.fit_row_ids)
    # the new version calibrates on every row, the fitted ones by their cross-fitted scores,
    # the same in the worker that retrained and in the one that picked the version up
    scores, small, large = worker_b.calibration_rows()
    assert scores.size == 500
    cross_fitted = outcome.record.cross_fit_scores()
    assert sorted(scores[: len(cross_fitted)]) == sorted(cross_fitted.values())
    np.testing.assert_array_equal(worker_a.calibration_rows()[0], scores)
    assert worker_b.threshold_for(0.05).n_rows == 500


def test_the_calibration_is_rebuilt_before_a_retraining_starts(
    store: ShadowStore, bundled: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    retrainer = Retrainer(store, min_rows=200, every=100)
    worker = LiveRouting(store, bundled, retrainer=retrainer)
    seen: list[int] = []

    def slow_retrain(*args: object, **kwargs: object) -> None:
        seen.append(worker.calibrator.n_rows_)  # what calls route on while it runs
        return None

    monkeypatch.setattr(retrainer, "retrain", slow_retrain)
    worker.refresh()
    assert seen == [400]


def test_a_relative_versions_dir_is_recorded_absolute_so_any_worker_loads_it(
    store: ShadowStore,
    bundled: Router,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "retrainer").mkdir()
    (tmp_path / "worker").mkdir()
    monkeypatch.chdir(tmp_path / "retrainer")
    outcome = Retrainer(store, min_rows=200, versions_dir="routers").retrain(
        bundled, "default", frozenset()
    )
    assert outcome is not None and outcome.swapped
    assert outcome.record.path == str(tmp_path / "retrainer" / "routers" / outcome.record.version)
    monkeypatch.chdir(tmp_path / "worker")  # a worker started in another folder
    worker = LiveRouting(store, bundled)
    worker.refresh()
    assert worker.version == outcome.record.version


def test_a_version_no_worker_can_load_is_warned_about_once(
    store: ShadowStore, bundled: Router, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = Retrainer(store, min_rows=200).retrain(bundled, "default", frozenset())
    assert outcome is not None and outcome.swapped
    store.add_version(
        dataclasses.replace(
            outcome.record, version="v-gone", created_at=time.time(), path="no/such/folder"
        )
    )
    worker = LiveRouting(store, bundled)
    with caplog.at_level("DEBUG", logger="shared_router.live.live_routing"):
        for _ in range(3):
            worker.refresh()
    assert worker.version == bundled.name  # routing goes on with what it had
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "v-gone at no/such/folder not loaded" in warnings[0].getMessage()
    assert f"routing goes on with {bundled.name}" in warnings[0].getMessage()


def test_each_skipped_retraining_says_why(store: ShadowStore, bundled: Router) -> None:
    with pytest.raises(ConfigurationError, match=r"min_rows must be >= 30 \(20 rows are held"):
        Retrainer(store, min_rows=29)
    retrainer = Retrainer(store, min_rows=500)
    assert retrainer.skipped is None
    assert retrainer.retrain(bundled, "default", frozenset()) is None
    assert retrainer.skipped == (
        "400 usable rows (with a text, or an embedding of this encoder) of the 400 read; "
        "min_rows is 500"
    )
    assert store.try_lock(RETRAIN_LOCK, "someone else", ttl_s=60)
    assert Retrainer(store, min_rows=200).retrain(bundled, "default", frozenset()) is None
    assert retrainer.retrain(bundled, "default", frozenset()) is None
    assert retrainer.skipped is not None
    assert retrainer.skipped.startswith(
        "another worker holds the store's retraining lock (someone else, until 20"
    )
    assert retrainer.skipped.endswith(", when it expires if that worker is gone)")


def test_a_stopped_retrainer_gives_up_at_its_next_step(
    store: ShadowStore, bundled: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    retrainer = Retrainer(store, min_rows=200)
    encoded = row_vectors

    def stopped_while_encoding(*args: object, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
        retrainer.stop()  # the loop closes while the rows are being encoded
        return encoded(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("shared_router.live.retraining.row_vectors", stopped_while_encoding)
    assert retrainer.retrain(bundled, "default", frozenset()) is None
    assert retrainer.skipped == "stopped: the live loop was closed"
    assert store.versions() == [] and store.lock_holder(RETRAIN_LOCK) is None
    assert retrainer.retrain(bundled, "default", frozenset()) is None  # and later ones skip


def test_a_retrainer_releases_only_its_own_lock(store: ShadowStore) -> None:
    mine, theirs = Retrainer(store, owner="me"), Retrainer(store, owner="them")
    assert store.try_lock(RETRAIN_LOCK, "them", ttl_s=60)
    mine.release()
    holder = store.lock_holder(RETRAIN_LOCK)
    assert holder is not None and holder[0] == "them" and holder[1] > time.time()
    theirs.release()
    assert store.lock_holder(RETRAIN_LOCK) is None


def test_a_version_without_cross_fitted_scores_never_calibrates_on_its_fitted_rows(
    store: ShadowStore, bundled: Router
) -> None:
    outcome = Retrainer(store, min_rows=200).retrain(bundled, "default", frozenset())
    assert outcome is not None and outcome.swapped
    older = dataclasses.replace(  # as a version-1 store kept it: no out-of-fold scores
        outcome.record,
        version="v-without-scores",
        created_at=time.time(),
        fit_row_ids=outcome.record.fit_row_ids[:280],
        fit_row_scores=(),
    )
    store.add_version(older)
    worker = LiveRouting(store, bundled)
    worker.refresh()
    assert worker.version == "v-without-scores"
    scores, _, _ = worker.calibration_rows()
    assert scores.size == 400 - 280


def test_the_served_head_is_the_compared_recipe_fitted_on_every_row(
    store: ShadowStore, bundled: Router
) -> None:
    outcome = Retrainer(store, min_rows=200).retrain(bundled, "default", frozenset())
    assert outcome is not None
    rows = store.rows()
    X, _ = row_vectors(rows, bundled.encoder_)
    small = np.array([r.row.small_quality for r in rows])
    large = np.array([r.row.large_quality for r in rows])
    metrics = outcome.router.metadata_["metrics"]["live_holdout"]
    labels = det_labels(small, large) if metrics["labels"] == "det" else diff_labels(small, large)
    on_every_row = fit_logistic(X, labels, l2=outcome.router.metadata_["l2_chosen"]).head
    np.testing.assert_allclose(
        outcome.router.head_.predict_proba(X), on_every_row.predict_proba(X), rtol=1e-6, atol=1e-7
    )


def test_rows_the_current_head_was_fitted_on_are_held_out_by_their_cross_fitted_scores(
    store: ShadowStore, bundled: Router
) -> None:
    rows = store.rows()
    ids = [r.row_id for r in rows]
    margin = {r.row_id: r.row.small_quality - r.row.large_quality for r in rows}
    retrainer = Retrainer(store, min_rows=200, every=1)
    # fitted on every row, none with a cross-fitted score: no row can be held out
    assert retrainer.retrain(bundled, "v1", frozenset(ids)) is None
    # half with one: 30% of that half is held out, and scored by it
    half = {i: margin[i] for i in ids[::2]}
    outcome = retrainer.retrain(bundled, "v1", frozenset(ids), current_fit_scores=half)
    assert outcome is not None and outcome.record.n_holdout == 60
    # the oracle's margins as the current router's scores: it recovers the whole gap
    assert outcome.record.gap_current == pytest.approx(1.0)
    assert not outcome.swapped


_RETRAIN_AND_HANG = """
import sys, time
import shared_router.live.head_fit as head_fit
from shared_router.live.retraining import Retrainer
from shared_router.live.store import open_store
from shared_router.routing.router import Router
from shared_router.training.labels import det_labels, diff_labels
from shared_router.training.logistic import DEFAULT_L2_GRID, fit_logistic

fit = head_fit.fit_logistic
def slow_fit(*args, **kwargs):
    print("fitting", flush=True)
    time.sleep(60)
    return fit(*args, **kwargs)
head_fit.fit_logistic = slow_fit
store = open_store(sys.argv[1])
Retrainer(store, min_rows=200, lock_ttl_s=1.0, owner="doomed").retrain(
    Router.load("default"), "default", frozenset()
)
"""


def test_a_kill_during_a_retrain_leaves_no_version_and_the_lock_expires(
    store: ShadowStore, bundled: Router, tmp_path: Path
) -> None:
    script = tmp_path / "retrain.py"
    script.write_text(textwrap.dedent(_RETRAIN_AND_HANG))
    process = subprocess.Popen(
        [sys.executable, str(script), store.url],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "fitting"
    assert not store.try_lock(RETRAIN_LOCK, "other", ttl_s=60)  # held by the doomed worker
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert store.versions() == [] and store.count() == 400
    time.sleep(1.1)
    outcome = Retrainer(store, min_rows=200).retrain(bundled, "default", frozenset())
    assert outcome is not None and outcome.swapped
