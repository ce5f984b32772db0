"""Live recalibration on synthetic traffic with a known truth: the promise holds, prior tightens."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared_router.errors import KnobError
from shared_router.live.recalibration import LiveCalibrator, bound_at
from shared_router.model.calibration import CalibrationTable


def _traffic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores in [0, 1]; the small model is right with probability 0.2 + 0.8 * score."""
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    small = (rng.random(n) < 0.2 + 0.8 * scores).astype(float)
    large = (rng.random(n) < 0.9).astype(float)
    return scores, small, large


def _stream(seed: int, requested: float, rate: float = 0.1, n: int = 3000, warmup: int = 800):
    """Realised drop and small share after the warm-up, recalibrating as labels come in."""
    scores, small, large = _traffic(n, seed)
    rng = np.random.default_rng(seed + 100)
    calibrator = LiveCalibrator(None, min_rows=100, n_bootstrap=200, seed=seed)
    labelled: list[int] = []
    went_small = np.zeros(n, dtype=bool)
    for i in range(n):
        went_small[i] = scores[i] >= calibrator.threshold_for(requested).threshold
        if rng.random() < rate:
            labelled.append(i)
            if len(labelled) % 30 == 0:
                calibrator.fit(scores[labelled], small[labelled], large[labelled])
    after = slice(warmup, n)
    routed = np.where(went_small[after], small[after], large[after])
    drop = (large[after].sum() - routed.sum()) / large[after].sum()
    return float(drop), float(went_small[after].mean())


@pytest.mark.parametrize("requested", [0.02, 0.05])
def test_the_realised_drop_stays_within_the_request_in_95_percent_of_seeds(
    requested: float,
) -> None:
    outcomes = [_stream(seed, requested) for seed in range(20)]
    kept = sum(drop <= requested for drop, _ in outcomes)
    assert kept >= 19, outcomes
    # and it is not kept by sending everything large
    assert np.mean([share for _, share in outcomes]) > 0.02


def _table(scores: np.ndarray, small: np.ndarray, large: np.ndarray) -> CalibrationTable:
    return CalibrationTable.from_scores(scores, small, large, n_bootstrap=200)


def test_without_live_rows_the_prior_decides() -> None:
    prior = _table(*_traffic(2000, 1))
    live = LiveCalibrator(prior).threshold_for(0.05)
    assert (live.source, live.n_rows) == ("prior", 0)
    assert live.threshold == prior.threshold_for_quality_drop(0.05)
    assert live.bound == bound_at(prior, live.threshold) <= 0.05


def test_with_few_rows_the_more_cautious_of_prior_and_live_decides() -> None:
    scores, small, large = _traffic(2000, 2)
    loose_prior = _table(scores, np.ones_like(small), large)  # a pair where small never fails
    few = LiveCalibrator(loose_prior, min_rows=300).fit(scores[:150], small[:150], large[:150])
    chosen = few.threshold_for(0.05)
    assert chosen.source == "live" and chosen.n_rows == 150
    assert chosen.threshold >= loose_prior.threshold_for_quality_drop(0.05)
    strict_prior = _table(scores, np.zeros_like(small), large)  # small always fails
    cautious = LiveCalibrator(strict_prior, min_rows=300).fit(
        scores[:150], small[:150], large[:150]
    )
    chosen = cautious.threshold_for(0.05)
    assert chosen.source == "prior"
    assert chosen.threshold == strict_prior.threshold_for_quality_drop(0.05)


def test_from_min_rows_on_the_live_table_alone_decides() -> None:
    scores, small, large = _traffic(2000, 3)
    strict_prior = _table(scores, np.zeros_like(small), large)
    calibrator = LiveCalibrator(strict_prior, min_rows=300).fit(scores, small, large)
    chosen = calibrator.threshold_for(0.05)
    assert (chosen.source, chosen.n_rows) == ("live", 2000)
    assert chosen.threshold < strict_prior.threshold_for_quality_drop(0.05)
    assert chosen.bound <= 0.05
    assert chosen.record_fields() == {
        "calibration": "live",
        "calibration_rows": 2000,
        "drop_bound": chosen.bound,
    }


def test_a_bad_level_is_a_knob_error() -> None:
    calibrator = LiveCalibrator(None)
    for bad in (-0.1, 5.0, math.nan):
        with pytest.raises(KnobError, match=r"in \[0, 1\] \(for 5% write 0.05\)|finite"):
            calibrator.threshold_for(bad)
    with pytest.raises(KnobError, match="must be a number"):
        calibrator.threshold_for("0.05")  # type: ignore[arg-type]
    assert calibrator.threshold_for(0.05) is calibrator.threshold_for(0.05)
