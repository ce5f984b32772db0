"""Tests of r_det, r_prob, r_trans and the t* search, against hand-computed values."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from shared_router.data import PairData, load_pair
from shared_router.errors import DataError
from shared_router.training.labels import (
    det_labels,
    diff_labels,
    find_t_star,
    label_spread,
    make_labels,
    prob_labels,
    trans_labels,
)

# Three rows whose labels are worked out by hand in the tests below.
SMALL = [np.array([0.5, 1.0]), np.array([0.0]), np.array([0.25])]
LARGE = [np.array([0.75]), np.array([1.0, 0.5]), np.array([0.25])]


def _pair_data(small: list[np.ndarray], large: list[np.ndarray]) -> PairData:
    n = len(small)
    return PairData(
        small="s",
        large="l",
        source="memory",
        ids=tuple(str(i) for i in range(n)),
        queries=tuple(f"q{i}" for i in range(n)),
        splits=(None,) * n,
        small_quality=np.array([v.mean() for v in small]),
        large_quality=np.array([v.mean() for v in large]),
        small_samples=tuple(small),
        large_samples=tuple(large),
    )


def test_det_labels() -> None:
    y = det_labels([1.0, 0.0, 0.5, 0.7], [1.0, 1.0, 0.2, 0.9])
    np.testing.assert_array_equal(y, [1.0, 0.0, 1.0, 0.0])
    assert y.dtype == np.float64
    with pytest.raises(DataError, match="differ in length"):
        det_labels([1.0], [1.0, 0.0])


def test_diff_labels_keep_the_margin_and_lie_in_zero_one() -> None:
    y = diff_labels([1.0, 0.0, 0.5, 0.7, 1.4], [0.0, 1.0, 0.5, 0.9, -0.2])
    np.testing.assert_allclose(y, [1.0, 0.0, 0.5, 0.4, 1.0])  # qualities clipped to [0, 1]
    assert y.dtype == np.float64
    with pytest.raises(DataError, match="differ in length"):
        diff_labels([1.0], [1.0, 0.0])
    with pytest.raises(DataError):
        diff_labels([float("nan")], [1.0])


def test_prob_labels_by_hand() -> None:
    # Row 0: 0.5 >= 0.75 no, 1 >= 0.75 yes -> 1/2.  Row 1: 0 >= 1 no, 0 >= 0.5 no -> 0.
    # Row 2: 0.25 >= 0.25 yes -> 1.
    np.testing.assert_allclose(prob_labels(SMALL, LARGE), [0.5, 0.0, 1.0])
    # Every pair of a 3 x 2 row: s = 1 beats both, s = 0 ties l = 0 only -> 5/6.
    np.testing.assert_allclose(prob_labels([[1.0, 0.0, 1.0]], [[1.0, 0.0]]), [5 / 6])


def test_prob_labels_with_a_relaxation_by_hand() -> None:
    # t = 0.25: row 0: 0.5 >= 0.5 yes, 1 yes -> 1; row 1: 0 >= 0.75 no, 0 >= 0.25 no -> 0.
    np.testing.assert_allclose(prob_labels(SMALL, LARGE, 0.25), [1.0, 0.0, 1.0])
    # t = 0.5: row 1: 0 >= 0.5 no, 0 >= 0 yes -> 1/2.
    np.testing.assert_allclose(prob_labels(SMALL, LARGE, 0.5), [1.0, 0.5, 1.0])


def test_prob_labels_match_brute_force_on_ragged_samples() -> None:
    rng = np.random.default_rng(3)
    small = [rng.random(rng.integers(1, 5)) for _ in range(40)]
    large = [rng.random(rng.integers(1, 5)) for _ in range(40)]
    expected = [
        np.mean([s >= l_ - 0.1 for s, l_ in itertools.product(a, b)])
        for a, b in zip(small, large, strict=True)
    ]
    np.testing.assert_allclose(prob_labels(small, large, 0.1), expected)


def test_label_spread_by_hand_and_against_brute_force() -> None:
    # Pairs of [0, 0.5, 1]: |0-0.5| + |0-1| + |0.5-1| = 2, both orders -> 4, over 3^2.
    assert label_spread([1.0, 0.0, 0.5]) == pytest.approx(4 / 9)
    assert label_spread([0.3]) == 0.0
    assert label_spread([0.2, 0.2, 0.2]) == 0.0
    y = np.random.default_rng(0).random(57)
    brute = np.abs(y[:, None] - y[None, :]).sum() / y.size**2
    assert label_spread(y) == pytest.approx(brute)


def test_t_star_ties_go_to_the_smallest_t() -> None:
    # Spreads on the grid [0, 0.25, 0.5]: labels [.5, 0, 1] -> 4/9, [1, 0, 1] -> 4/9,
    # [1, .5, 1] -> 2/9. The tie between 0 and 0.25 goes to 0.
    assert find_t_star(SMALL, LARGE, [0.5, 0.25, 0.0]) == 0.0
    assert find_t_star(SMALL, LARGE, [0.25, 0.5]) == 0.25


def test_t_star_on_a_case_with_a_known_answer() -> None:
    # Half the rows: small 0.5 vs large 0.75, labelled 1 from t = 0.25 on.
    # Half the rows: small 0 vs large 1, labelled 1 only at t = 1.
    # Spread: 0 for t < 0.25, 1/2 for 0.25 <= t < 1, 0 at t = 1 -> t* = 0.25 on the default grid.
    small = [np.array([0.5])] * 5 + [np.array([0.0])] * 5
    large = [np.array([0.75])] * 5 + [np.array([1.0])] * 5
    assert find_t_star(small, large) == 0.25
    labels = trans_labels(small, large)
    assert labels.t_star == 0.25
    np.testing.assert_array_equal(labels.y, [1.0] * 5 + [0.0] * 5)


def test_trans_labels_use_a_given_t_star() -> None:
    labels = trans_labels(SMALL, LARGE, t_star=0.5)
    assert labels.kind == "trans"
    assert labels.t_star == 0.5
    np.testing.assert_allclose(labels.y, [1.0, 0.5, 1.0])


def test_make_labels_kinds() -> None:
    data = _pair_data(SMALL, LARGE)
    det = make_labels(data, "det")
    # Means: small [0.75, 0, 0.25] vs large [0.75, 0.75, 0.25].
    np.testing.assert_array_equal(det.y, [1.0, 0.0, 1.0])
    assert (det.kind, det.t_star) == ("det", None)
    prob = make_labels(data, "prob")
    np.testing.assert_allclose(prob.y, [0.5, 0.0, 1.0])
    trans = make_labels(data, "trans")
    assert trans.t_star == 0.0  # the tie at 0 and 0.25 (and the rest of the grid) goes to 0
    np.testing.assert_allclose(trans.y, prob.y)
    given = make_labels(data, "trans", t_star=0.25)
    np.testing.assert_allclose(given.y, [1.0, 0.0, 1.0])


def test_make_labels_rejects_bad_arguments() -> None:
    data = _pair_data(SMALL, LARGE)
    with pytest.raises(DataError, match="label kind"):
        make_labels(data, "soft")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="t_star applies"):
        make_labels(data, "prob", t_star=0.1)
    with pytest.raises(DataError, match="no samples|non-empty"):
        prob_labels([np.array([])], [np.array([1.0])])
    with pytest.raises(DataError, match="differ in length"):
        prob_labels(SMALL, LARGE[:2])
    with pytest.raises(DataError, match="finite"):
        prob_labels([[np.nan]], [[1.0]])


def test_real_date_samples_give_probabilistic_labels(shared_data: Path) -> None:
    path = shared_data / "mot_cascade_date" / "date.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    data = load_pair(path, "gpt-3.5-turbo", "gpt-4").take(range(30))
    assert {len(s) for s in data.small_samples} == {20}
    assert {len(s) for s in data.large_samples} == {3}
    np.testing.assert_allclose([s.mean() for s in data.small_samples], data.small_quality)
    y = make_labels(data, "prob").y
    expected = [
        np.mean([s >= l_ for s, l_ in itertools.product(a, b)])
        for a, b in zip(data.small_samples, data.large_samples, strict=True)
    ]
    np.testing.assert_allclose(y, expected)
    assert np.any((y > 0.0) & (y < 1.0))  # soft labels, not only 0/1


def test_real_binary_single_samples_give_t_star_zero(shared_data: Path) -> None:
    # With one 0/1 sample per model, labels for t < 1 equal the deterministic ones and t = 1
    # labels everything 1 (spread 0), so t* is 0 and r_trans equals r_det.
    path = shared_data / "mmlu_pro" / "mmlu_pro_scores.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    data = load_pair(path, "Meta-Llama-3.1-8B-Instruct", "Meta-Llama-3.1-70B-Instruct")
    trans = make_labels(data.split("val"), "trans")
    assert trans.t_star == 0.0
    np.testing.assert_array_equal(trans.y, make_labels(data.split("val"), "det").y)
