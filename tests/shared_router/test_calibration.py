"""Tests of the calibration table, its confidence bound, and the online pacer."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest

from shared_router.errors import CalibrationError, KnobError
from shared_router.model.calibration import CalibrationTable, OnlinePacer

# Four queries worked out by hand: scores, small quality, large quality.
SCORES = np.array([0.9, 0.8, 0.8, 0.3])
SMALL_Q = np.array([1.0, 0.0, 1.0, 0.0])
LARGE_Q = np.array([1.0, 1.0, 0.0, 1.0])


def _synthetic(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores uniform on [0, 1]; large right with p 0.8; small right with p 0.8 (1 + s) / 2.

    The true relative drop at threshold thr is (1 - thr)^2 / 4.
    """
    scores = rng.random(n)
    large = (rng.random(n) < 0.8).astype(np.float64)
    small = (rng.random(n) < 0.8 * (0.5 + 0.5 * scores)).astype(np.float64)
    return scores, small, large


def _realised_drop(
    threshold: float, scores: np.ndarray, small: np.ndarray, large: np.ndarray
) -> float:
    routed = np.where(scores >= threshold, small, large).mean()
    return float((large.mean() - routed) / large.mean())


def test_table_by_hand() -> None:
    table = CalibrationTable.from_scores(SCORES, SMALL_Q, LARGE_Q, n_bootstrap=500, unseen_losses=0)
    assert table.thresholds[:3].tolist() == [0.3, 0.8, 0.9]
    assert table.thresholds[-1] > 1.0
    # Sent small: all 4, the three >= 0.8, the one >= 0.9, none.
    np.testing.assert_allclose(table.cost_advantage, [1.0, 0.75, 0.25, 0.0])
    # Large total 3. All small: quality 2 -> drop 1/3; >= 0.8: 1 + 0 + 1 + 1 = 3 -> 0.
    np.testing.assert_allclose(table.quality_drop, [1 / 3, 0.0, 0.0, 0.0], atol=1e-15)
    # The query at 0.9 has equal qualities, so every resample has drop 0 there.
    assert table.drop_upper[2] == 0.0
    assert table.drop_upper[-1] == 0.0
    assert table.drop_upper[0] >= 1 / 3
    assert table.n == 4
    assert table.method == "bootstrap_percentile"
    assert table.threshold_for_quality_drop(0.0) == 0.9
    assert table.threshold_for_quality_drop(10.0) == 0.3


def test_table_is_monotone() -> None:
    rng = np.random.default_rng(1)
    scores, small, large = _synthetic(rng, 3000)
    table = CalibrationTable.from_scores(scores, small, large, n_bootstrap=200, max_points=100)
    assert table.thresholds.size <= 100
    assert np.all(np.diff(table.thresholds) > 0)
    assert table.cost_advantage[0] == 1.0
    assert table.cost_advantage[-1] == 0.0
    assert np.all(np.diff(table.cost_advantage) <= 0)
    assert np.all(np.diff(table.drop_upper) <= 0)
    assert table.thresholds[-1] > scores.max()
    # Tighter drop budgets never give more cost advantage.
    advantages = [
        float((scores >= table.threshold_for_quality_drop(d)).mean())
        for d in (0.0, 0.01, 0.02, 0.05, 0.1, 0.3)
    ]
    assert advantages == sorted(advantages)
    assert advantages[-1] > advantages[0]


def test_bootstrap_matches_a_direct_computation() -> None:
    # One resample at confidence 0.5 is that resample's drop (before the running maximum).
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(50), 1)
    small = (rng.random(50) < scores).astype(np.float64)
    large = (rng.random(50) < 0.8).astype(np.float64)
    for seed in range(3):
        table = CalibrationTable.from_scores(
            scores, small, large, n_bootstrap=1, confidence=0.5, seed=seed, unseen_losses=0
        )
        order = np.argsort(-scores, kind="stable")
        rows = np.random.default_rng(seed).integers(0, 50, size=(1, 50))[0]
        s, q_small, q_large = scores[order][rows], small[order][rows], large[order][rows]
        drops = np.array([_realised_drop(t, s, q_small, q_large) for t in table.thresholds])
        expected = np.maximum.accumulate(drops[::-1])[::-1]
        np.testing.assert_allclose(table.drop_upper, expected, atol=1e-12)


def test_unseen_losses_term_by_hand() -> None:
    plain = CalibrationTable.from_scores(SCORES, SMALL_Q, LARGE_Q, n_bootstrap=200, unseen_losses=0)
    table = CalibrationTable.from_scores(SCORES, SMALL_Q, LARGE_Q, n_bootstrap=200)
    # Default: -ln(0.05) = 2.996 worst-case losses of 1 (large 1, small 0) over a large total
    # of 3 on every threshold that routes anything; nothing to add at the all-large one.
    term = -np.log(0.05) / 3
    np.testing.assert_allclose(table.drop_upper[:-1], plain.drop_upper[:-1] + term)
    assert table.drop_upper[-1] == 0.0
    assert table.method == "bootstrap_percentile+unseen_losses=2.996"
    assert table.threshold_for_quality_drop(0.5) == table.thresholds[-1]
    with pytest.raises(CalibrationError, match="unseen_losses"):
        CalibrationTable.from_scores(SCORES, SMALL_Q, LARGE_Q, unseen_losses=-1.0)


def _rare_losses(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uninformative scores; the large model always right, the small one wrong 5% of the time.

    The true relative drop at cost advantage c is 0.05 c: a 1% budget allows c = 20%.
    """
    return rng.random(n), (rng.random(n) >= 0.05).astype(np.float64), np.ones(n)


def test_small_calibration_sets_keep_the_promise() -> None:
    # On 60 rows, the top-scored queries often hold no loss, so a plain bootstrap bounds
    # their drop by 0 and routes them: the 1% promise breaks on fresh traffic for many seeds.
    # The unseen-losses term keeps it.
    over = {0.0: 0, None: 0}
    for seed in range(40):
        rng = np.random.default_rng(seed)
        calibration, fresh = _rare_losses(rng, 60), _rare_losses(rng, 20_000)
        for unseen in over:
            table = CalibrationTable.from_scores(
                *calibration, n_bootstrap=300, seed=seed, unseen_losses=unseen
            )
            over[unseen] += _realised_drop(table.threshold_for_quality_drop(0.01), *fresh) > 0.01
    assert over[0.0] >= 10
    assert over[None] <= 4


def test_bound_holds_on_fresh_samples() -> None:
    # The threshold chosen for a 2% budget keeps the realised drop on a fresh sample within
    # 2% for nearly every seed; choosing by the point estimate alone does not.
    within_bound = within_point = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        table = CalibrationTable.from_scores(*_synthetic(rng, 2000), n_bootstrap=300, seed=seed)
        fresh = _synthetic(rng, 20_000)
        bounded = table.threshold_for_quality_drop(0.02)
        ok = table.quality_drop <= 0.02
        point = float(table.thresholds[ok][np.argmax(table.cost_advantage[ok])])
        within_bound += _realised_drop(bounded, *fresh) <= 0.02
        within_point += _realised_drop(point, *fresh) <= 0.02
    assert within_bound >= 36
    assert within_point <= 30


def test_seed_makes_the_bound_reproducible() -> None:
    data = _synthetic(np.random.default_rng(5), 500)
    first = CalibrationTable.from_scores(*data, n_bootstrap=100, seed=7)
    again = CalibrationTable.from_scores(*data, n_bootstrap=100, seed=7)
    other = CalibrationTable.from_scores(*data, n_bootstrap=100, seed=8)
    np.testing.assert_array_equal(first.drop_upper, again.drop_upper)
    assert not np.array_equal(first.drop_upper, other.drop_upper)


def test_large_share_picks_the_quantile() -> None:
    scores = np.random.default_rng(2).permutation(np.arange(1000) / 1000)
    table = CalibrationTable.from_scores(scores, np.ones(1000), np.ones(1000), n_bootstrap=10)
    for share in (0.1, 0.3, 0.5, 0.9):
        threshold = table.threshold_for_large_share(share)
        assert np.mean(scores < threshold) == pytest.approx(share)
    assert table.threshold_for_large_share(0.3) == pytest.approx(0.2997)
    assert np.all(scores >= table.threshold_for_large_share(0.0))
    assert np.all(scores < table.threshold_for_large_share(1.0))
    with pytest.raises(KnobError, match="share"):
        table.threshold_for_large_share(1.5)
    with pytest.raises(KnobError, match="max_drop"):
        table.threshold_for_quality_drop(-0.01)


def test_json_round_trip() -> None:
    table = CalibrationTable.from_scores(*_synthetic(np.random.default_rng(4), 800), n_bootstrap=50)
    loaded = CalibrationTable.from_dict(json.loads(json.dumps(table.to_dict())))
    for name in ("thresholds", "cost_advantage", "quality_drop", "drop_upper", "score_quantiles"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(table, name))
    assert (loaded.confidence, loaded.n, loaded.method) == (table.confidence, table.n, table.method)
    for drop in (0.0, 0.01, 0.05):
        assert loaded.threshold_for_quality_drop(drop) == table.threshold_for_quality_drop(drop)


def _broken(change: str) -> dict[str, Any]:
    d = CalibrationTable.from_scores(SCORES, SMALL_Q, LARGE_Q, n_bootstrap=20).to_dict()
    if change == "format":
        d["format"] = "something-else"
    elif change == "missing":
        del d["drop_upper"]
    elif change == "length":
        d["quality_drop"] = d["quality_drop"][:-1]
    elif change == "order":
        d["thresholds"] = d["thresholds"][::-1]
    elif change == "text":
        d["cost_advantage"][0] = "one"
    elif change == "n":
        d["n"] = True
    elif change == "confidence":
        d["confidence"] = 1.5
    elif change == "nan":
        d["drop_upper"][0] = float("nan")
    return d


@pytest.mark.parametrize(
    "change", ["format", "missing", "length", "order", "text", "n", "confidence", "nan"]
)
def test_from_dict_rejects_malformed_dicts(change: str) -> None:
    with pytest.raises(CalibrationError):
        CalibrationTable.from_dict(_broken(change))


def test_from_scores_rejects_bad_input() -> None:
    with pytest.raises(CalibrationError, match="one entry per query"):
        CalibrationTable.from_scores([0.5, 0.6], [1.0], [1.0, 0.0])
    with pytest.raises(CalibrationError, match="undefined"):
        CalibrationTable.from_scores([0.5, 0.6], [1.0, 1.0], [0.0, 0.0])
    with pytest.raises(CalibrationError, match="finite"):
        CalibrationTable.from_scores([np.nan], [1.0], [1.0])
    with pytest.raises(CalibrationError, match="confidence"):
        CalibrationTable.from_scores(SCORES, SMALL_Q, LARGE_Q, confidence=1.0)


def test_pacer_uses_the_initial_threshold_until_warm() -> None:
    pacer = OnlinePacer(0.3, window=100, initial_threshold=0.42, warmup=5)
    for score in (0.1, 0.2, 0.3, 0.4):
        pacer.observe(score)
        assert pacer.threshold() == 0.42
    pacer.observe(0.5)
    assert pacer.threshold() == pytest.approx(np.quantile([0.1, 0.2, 0.3, 0.4, 0.5], 0.3))
    assert OnlinePacer(0.3).threshold() == 0.3


def test_pacer_holds_the_share_over_its_window() -> None:
    rng = np.random.default_rng(0)
    pacer = OnlinePacer(0.3, window=1000)
    for score in rng.permutation(np.arange(1000) / 1000):
        pacer.observe(score)
    assert pacer.threshold() == pytest.approx(0.2997)
    # Traffic shifts upwards: after a full window of new scores only they count.
    for score in 0.5 + rng.permutation(np.arange(1000) / 2000):
        pacer.observe(score)
    assert pacer.n_observed == 1000
    assert pacer.threshold() == pytest.approx(0.5 + 0.2997 / 2)
    assert OnlinePacer(1.0, warmup=1).threshold() == 1.0
    full = OnlinePacer(1.0, warmup=1)
    full.observe(0.99)
    assert full.threshold() > 1.0
    none = OnlinePacer(0.0, warmup=1)
    none.observe(0.2)
    assert none.threshold() <= 0.0


def test_pacer_is_thread_safe() -> None:
    pacer = OnlinePacer(0.25, window=8000, warmup=1)
    values = np.arange(1000) / 1000
    errors: list[Exception] = []

    def feed() -> None:
        try:
            for score in values:
                pacer.observe(float(score))
                pacer.threshold()
        except Exception as exc:  # collected and checked below
            errors.append(exc)

    threads = [threading.Thread(target=feed) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert pacer.n_observed == 8000
    assert pacer.threshold() == pytest.approx(np.quantile(np.tile(values, 8), 0.25))


def test_pacer_rejects_bad_settings() -> None:
    with pytest.raises(KnobError):
        OnlinePacer(1.2)
    with pytest.raises(KnobError):
        OnlinePacer(0.5, window=0)
    with pytest.raises(KnobError):
        OnlinePacer(0.5, window=10, warmup=11)
