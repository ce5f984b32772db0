"""Tests of the curves and metrics against hand-computed values."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared_router.data import load_pair
from shared_router.errors import DataError
from shared_router.evaluation.curves import (
    HEURISTIC_NAME,
    apgr,
    cost_advantage_at_drop,
    cpt,
    curve_area,
    gap_recovered,
    oracle_curve,
    random_curve,
    router_curve,
)
from shared_router.evaluation.plots import plot_curves
from shared_router.evaluation.report import evaluate_scores

# Five queries worked out by hand. small mean 0.4, large mean 0.8.
SCORES = np.array([0.9, 0.8, 0.8, 0.4, 0.1])
SMALL_Q = np.array([1.0, 0.0, 1.0, 0.0, 0.0])
LARGE_Q = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
QUERIES = ["aaaaa", "b", "cc", "ddd", "eeee"]  # shortest first: rows 1, 2, 3, 4, 0


def test_router_curve_by_hand() -> None:
    curve = router_curve(SCORES, SMALL_Q, LARGE_Q)
    # Sending small in score order: row 0 (equal), rows 1+2 together (tie: -1 + 1),
    # row 3 (-1), row 4 (-1). Large total 4 of 5.
    np.testing.assert_allclose(curve.cost_advantage, [0.0, 0.2, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(curve.quality, [0.8, 0.8, 0.8, 0.6, 0.4])
    assert curve.thresholds is not None
    assert curve.thresholds[0] > 1.0
    np.testing.assert_array_equal(curve.thresholds[1:], [0.9, 0.8, 0.4, 0.1])
    assert curve_area(curve) == pytest.approx(0.16 + 0.32 + 0.14 + 0.10)


def test_random_and_oracle_curves_by_hand() -> None:
    random = random_curve(SMALL_Q, LARGE_Q)
    np.testing.assert_allclose(random.cost_advantage, [0.0, 1.0])
    np.testing.assert_allclose(random.quality, [0.8, 0.4])
    assert curve_area(random) == pytest.approx(0.6)
    oracle = oracle_curve(SMALL_Q, LARGE_Q)
    # Differences small - large sorted: 1, 0, -1, -1, -1.
    np.testing.assert_allclose(oracle.cost_advantage, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(oracle.quality, [0.8, 1.0, 1.0, 0.8, 0.6, 0.4])
    assert curve_area(oracle) == pytest.approx(0.2 * (0.9 + 1.0 + 0.9 + 0.7 + 0.5))


def test_router_curve_matches_brute_force_with_ties() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(200), 1)
    small, large = rng.random(200), rng.random(200)
    curve = router_curve(scores, small, large)
    assert curve.thresholds is not None
    for threshold, cost, quality in zip(
        curve.thresholds, curve.cost_advantage, curve.quality, strict=True
    ):
        assert cost == pytest.approx(np.mean(scores >= threshold))
        assert quality == pytest.approx(np.where(scores >= threshold, small, large).mean())
    assert curve.cost_advantage.size == np.unique(scores).size + 1


def test_metrics_by_hand() -> None:
    router = router_curve(SCORES, SMALL_Q, LARGE_Q)
    random, oracle = random_curve(SMALL_Q, LARGE_Q), oracle_curve(SMALL_Q, LARGE_Q)
    assert gap_recovered(router, random, oracle) == pytest.approx((0.72 - 0.6) / (0.8 - 0.6))
    assert gap_recovered(random, random, oracle) == pytest.approx(0.0)
    assert gap_recovered(oracle, random, oracle) == pytest.approx(1.0)
    assert apgr(router, 0.4, 0.8) == pytest.approx((0.72 - 0.4) / 0.4)
    assert apgr(random, 0.4, 0.8) == pytest.approx(0.5)
    assert apgr(oracle, 0.4, 0.8) == pytest.approx(1.0)
    # CPT(50%): quality 0.6 needed; the router reaches it sending 80% small -> 20% large.
    assert cpt(router, 0.4, 0.8, 0.5) == pytest.approx(0.2)
    # CPT(80%): quality 0.72 needed; reached at 60% small only (points, no interpolation).
    assert cpt(router, 0.4, 0.8, 0.8) == pytest.approx(0.4)
    # Random is a straight line 0.8 - 0.4 c.
    assert cpt(random, 0.4, 0.8, 0.5) == pytest.approx(0.5)
    assert cpt(random, 0.4, 0.8, 0.8) == pytest.approx(0.8)
    assert math.isnan(apgr(router, 0.8, 0.8))


def test_cost_advantage_at_drop_by_hand() -> None:
    drops = (0.0, 0.1, 0.125, 0.25, 0.5)
    router = cost_advantage_at_drop(router_curve(SCORES, SMALL_Q, LARGE_Q), 0.8, drops)
    # Quality needed: 0.8, 0.72, 0.7, 0.6, 0.4. No interpolation between 0.6 (q .8) and 0.8 (q .6).
    assert router == pytest.approx({0.0: 0.6, 0.1: 0.6, 0.125: 0.6, 0.25: 0.8, 0.5: 1.0})
    random = cost_advantage_at_drop(random_curve(SMALL_Q, LARGE_Q), 0.8, drops)
    assert random == pytest.approx({0.0: 0.0, 0.1: 0.2, 0.125: 0.25, 0.25: 0.5, 0.5: 1.0})
    oracle = cost_advantage_at_drop(oracle_curve(SMALL_Q, LARGE_Q), 0.8, drops)
    assert oracle == pytest.approx({0.0: 0.6, 0.1: 0.6, 0.125: 0.6, 0.25: 0.8, 0.5: 1.0})
    with pytest.raises(DataError, match="positive"):
        cost_advantage_at_drop(random_curve(SMALL_Q, LARGE_Q), 0.0)


def test_report_shows_router_beside_the_baselines(tmp_path: Path) -> None:
    report = evaluate_scores(SCORES, SMALL_Q, LARGE_Q, queries=QUERIES)
    names = [c.name for c in report.curves]
    assert names == ["router", HEURISTIC_NAME, "random", "oracle"]
    assert report.n == 5
    assert report.small_mean == pytest.approx(0.4)
    assert report.large_mean == pytest.approx(0.8)
    assert report.oracle_best == pytest.approx(1.0)
    router = report.metric("router")
    assert router.gap_recovered == pytest.approx(0.6)
    assert router.apgr == pytest.approx(0.8)
    assert router.cpt50 == pytest.approx(0.2)
    assert router.cpt80 == pytest.approx(0.4)
    assert router.cost_advantage_at_drop[0.01] == pytest.approx(0.6)
    # Shortest first: rows 1 (-1), 2 (+1), 3 (-1), 4 (-1), 0 (0).
    heuristic = report.curve(HEURISTIC_NAME)
    np.testing.assert_allclose(heuristic.quality, [0.8, 0.6, 0.8, 0.6, 0.4, 0.4])
    assert report.metric(HEURISTIC_NAME).gap_recovered == pytest.approx(0.0)

    markdown = report.to_markdown()
    for name in names:
        assert f"| {name} |" in markdown
    assert "| router | 0.600 | 0.800 | 20.0% | 40.0% | 60.0%" in markdown

    path = tmp_path / "report.json"
    text = report.to_json(path)
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert loaded == json.loads(text)
    assert loaded["metrics"]["router"]["gap_recovered"] == pytest.approx(0.6)
    assert loaded["curves"]["oracle"]["quality"] == pytest.approx([0.8, 1.0, 1.0, 0.8, 0.6, 0.4])
    assert "curves" not in report.to_dict(include_curves=False)


def test_report_without_queries_and_with_several_routers() -> None:
    report = evaluate_scores({"a": SCORES, "b": -SCORES}, SMALL_Q, LARGE_Q)
    assert [c.name for c in report.curves] == ["a", "b", "random", "oracle"]
    assert report.router_names == ("a", "b")
    assert HEURISTIC_NAME not in report.to_markdown()
    assert report.metric("b").gap_recovered < 0


def test_nan_metrics_are_written_as_null() -> None:
    same = np.array([1.0, 0.0])
    report = evaluate_scores([0.2, 0.1], same, same)
    assert report.to_dict()["metrics"]["router"]["apgr"] is None
    assert "n/a" in report.to_markdown()


def test_evaluate_scores_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="reserved"):
        evaluate_scores({"oracle": SCORES}, SMALL_Q, LARGE_Q)
    with pytest.raises(DataError, match="entries"):
        evaluate_scores(SCORES[:3], SMALL_Q, LARGE_Q)
    with pytest.raises(DataError, match="queries"):
        evaluate_scores(SCORES, SMALL_Q, LARGE_Q, queries=QUERIES[:2])
    with pytest.raises(DataError, match="finite"):
        evaluate_scores(SCORES, SMALL_Q, np.array([1.0, np.nan, 0.0, 1.0, 1.0]))


def test_plot_curves_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = evaluate_scores(SCORES, SMALL_Q, LARGE_Q, queries=QUERIES)
    path = plot_curves(report, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_core_modules_import_no_heavy_dependency() -> None:
    code = (
        "import sys\n"
        "import shared_router.data, shared_router.training.labels\n"
        "import shared_router.model.calibration, shared_router.evaluation.curves\n"
        "heavy = {'matplotlib', 'scipy', 'torch', 'sentence_transformers'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_real_pair_router_sits_between_random_and_oracle(shared_data: Path) -> None:
    path = shared_data / "mmlu_pro" / "mmlu_pro_scores.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    data = load_pair(path, "Meta-Llama-3.1-8B-Instruct", "Meta-Llama-3.1-70B-Instruct")
    test = data.split("test")
    # A "router" that knows the answer with noise: the oracle signal blurred.
    rng = np.random.default_rng(0)
    noisy = (test.small_quality - test.large_quality) + rng.normal(0.0, 1.0, len(test))
    report = evaluate_scores(
        noisy, test.small_quality, test.large_quality, queries=list(test.queries)
    )
    assert 0.0 < report.metric("router").gap_recovered < 1.0
    assert report.oracle_best > report.large_mean > report.small_mean
    assert abs(report.metric(HEURISTIC_NAME).gap_recovered) < 0.5
