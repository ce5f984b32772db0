"""Training labels for the router: r_det, r_prob and r_trans (Ding et al., 2024, section 3).

A label is the target p(x) = Pr[the small model's answer is as good as the large model's]:

- ``det``: ``1[q_small >= q_large]`` on the per-query quality.
- ``prob``: the share of all (small sample, large sample) pairs with ``s_i >= l_j``.
- ``trans``: the share of pairs with ``s_i >= l_j - t*``, where the relaxation ``t*`` is the
  grid value that spreads the labels the most, ``(1/N^2) sum_ij |y_i(t) - y_j(t)|``, so that
  the labels separate easy from hard queries best.

Beside the paper's, :func:`diff_labels` gives ``(1 + q_small - q_large) / 2``: a head fitted
on them orders queries by the expected quality difference, which keeps how much better or
worse the small answer is (continuous qualities) where ``det`` keeps only which is better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from shared_router._internal.validation import finite_quality_pair, finite_vector
from shared_router.data import PairData
from shared_router.errors import DataError

__all__ = [
    "DEFAULT_T_GRID",
    "LabelKind",
    "Labels",
    "det_labels",
    "diff_labels",
    "find_t_star",
    "label_spread",
    "make_labels",
    "prob_labels",
    "trans_labels",
]

LabelKind = Literal["det", "prob", "trans"]
DEFAULT_T_GRID: np.ndarray = np.arange(101) / 100.0
"""The default search grid for t*: 0, 0.01, ..., 1."""


@dataclass(frozen=True, eq=False)
class Labels:
    """Router training targets.

    Attributes:
        y: One soft label in [0, 1] per query, float64.
        kind: ``"det"``, ``"prob"`` or ``"trans"``.
        t_star: The relaxation used for ``"trans"`` labels, else None.
    """

    y: np.ndarray
    kind: str
    t_star: float | None


def det_labels(
    small_quality: np.ndarray | Sequence[float], large_quality: np.ndarray | Sequence[float]
) -> np.ndarray:
    """Return deterministic labels ``1[q_small >= q_large]`` as float64.

    Args:
        small_quality: The small model's quality per query.
        large_quality: The large model's quality per query.

    Raises:
        DataError: If the arrays differ in length or hold non-finite values.
    """
    small, large = finite_quality_pair(small_quality, large_quality)
    return (small >= large).astype(np.float64)


def diff_labels(
    small_quality: np.ndarray | Sequence[float], large_quality: np.ndarray | Sequence[float]
) -> np.ndarray:
    """Return quality-difference labels ``(1 + q_small - q_large) / 2`` as float64.

    Qualities are clipped to [0, 1] first, so each label lies in [0, 1]: 1 where the small
    answer is perfect and the large one worthless, 0.5 on a tie, 0 the other way round.
    Ordering queries by ``E[q_small - q_large]`` is what maximises the mean quality at a
    given small share; ``det`` labels order them by ``P(q_small >= q_large)`` instead, which
    loses the size of the difference (with continuous qualities a tiny difference flips a
    ``det`` label).

    Args:
        small_quality: The small model's quality per query.
        large_quality: The large model's quality per query.

    Raises:
        DataError: If the arrays differ in length or hold non-finite values.
    """
    small, large = finite_quality_pair(small_quality, large_quality)
    labels: np.ndarray = (1.0 + np.clip(small, 0.0, 1.0) - np.clip(large, 0.0, 1.0)) / 2.0
    return labels


@dataclass(frozen=True)
class _SamplePairs:
    """Every (small sample, large sample) pair of every query, flattened."""

    small: np.ndarray
    large: np.ndarray
    row: np.ndarray
    count: np.ndarray

    def labels(self, t: float) -> np.ndarray:
        hits = (self.small >= self.large - t).astype(np.float64)
        labels: np.ndarray = np.bincount(self.row, weights=hits, minlength=self.count.size)
        labels /= self.count
        return labels


def _sample_pairs(
    small_samples: Sequence[np.ndarray | Sequence[float]],
    large_samples: Sequence[np.ndarray | Sequence[float]],
) -> _SamplePairs:
    if len(small_samples) != len(large_samples):
        raise DataError(
            f"small_samples and large_samples differ in length: "
            f"{len(small_samples)} vs {len(large_samples)}"
        )
    smalls = [np.asarray(v, dtype=np.float64) for v in small_samples]
    larges = [np.asarray(v, dtype=np.float64) for v in large_samples]
    # Rows with the same numbers of samples are stacked and paired in one step.
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (small, large) in enumerate(zip(smalls, larges, strict=True)):
        if small.ndim != 1 or large.ndim != 1 or small.size == 0 or large.size == 0:
            raise DataError(
                f"row {i}: samples must be non-empty one-dimensional sequences, got shapes "
                f"{small.shape} and {large.shape}"
            )
        groups.setdefault((small.size, large.size), []).append(i)
    counts = np.array(
        [s.size * v.size for s, v in zip(smalls, larges, strict=True)], dtype=np.int64
    )
    parts_small, parts_large, parts_row = [], [], []
    for (n_small, n_large), rows in groups.items():
        small_block = np.stack([smalls[i] for i in rows])
        large_block = np.stack([larges[i] for i in rows])
        parts_small.append(np.repeat(small_block, n_large, axis=1).ravel())
        parts_large.append(np.tile(large_block, (1, n_small)).ravel())
        parts_row.append(np.repeat(np.asarray(rows, dtype=np.intp), n_small * n_large))
    if not parts_row:
        empty = np.empty(0, dtype=np.float64)
        return _SamplePairs(empty, empty, np.empty(0, dtype=np.intp), counts)
    pairs = _SamplePairs(
        small=np.concatenate(parts_small),
        large=np.concatenate(parts_large),
        row=np.concatenate(parts_row),
        count=counts,
    )
    if not (np.all(np.isfinite(pairs.small)) and np.all(np.isfinite(pairs.large))):
        raise DataError("samples must be finite; some hold NaN or infinity")
    return pairs


def _finite(value: float, name: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise DataError(f"{name} must be a finite number, got {value!r}")
    return number


def prob_labels(
    small_samples: Sequence[np.ndarray | Sequence[float]],
    large_samples: Sequence[np.ndarray | Sequence[float]],
    t: float = 0.0,
) -> np.ndarray:
    """Return probabilistic labels: per query, the mean of ``1[s_i >= l_j - t]`` over all pairs.

    With ``t = 0`` these are r_prob; with ``t = t*`` they are r_trans.

    Args:
        small_samples: Per query, the small model's quality of each sampled answer.
        large_samples: Per query, the large model's quality of each sampled answer.
        t: The relaxation: how much worse the small answer may be and still count.

    Returns:
        One label in [0, 1] per query, float64.

    Raises:
        DataError: If the sequences differ in length, a query has no samples, or a value is
            not finite.
    """
    return _sample_pairs(small_samples, large_samples).labels(_finite(t, "t"))


def label_spread(y: np.ndarray | Sequence[float]) -> float:
    """Return the average pairwise label difference ``(1/N^2) sum_ij |y_i - y_j|``.

    Computed in O(N log N): with ``y`` sorted ascending (0-based ranks ``k``),
    ``sum_ij |y_i - y_j| = 2 sum_k (2k - N + 1) y_(k)``.

    Args:
        y: Labels.

    Returns:
        The spread; 0.0 for fewer than two labels.
    """
    values = np.sort(finite_vector(y, "y"))
    n = values.size
    if n < 2:
        return 0.0
    weights = 2.0 * np.arange(n, dtype=np.float64) - (n - 1)
    return float(2.0 * np.dot(weights, values) / (n * n))


def find_t_star(
    small_samples: Sequence[np.ndarray | Sequence[float]],
    large_samples: Sequence[np.ndarray | Sequence[float]],
    grid: np.ndarray | Sequence[float] | None = None,
) -> float:
    """Return the relaxation t that maximises the spread of the r_trans labels.

    Args:
        small_samples: Per query, the small model's quality of each sampled answer.
        large_samples: Per query, the large model's quality of each sampled answer.
        grid: The candidate values of t (default 0, 0.01, ..., 1).

    Returns:
        The grid value with the largest :func:`label_spread`; the smallest one on ties.

    Raises:
        DataError: If the samples are malformed or the grid is empty or not finite.
    """
    candidates = np.sort(finite_vector(DEFAULT_T_GRID if grid is None else grid, "grid"))
    if candidates.size == 0:
        raise DataError("grid must hold at least one value of t")
    pairs = _sample_pairs(small_samples, large_samples)
    spreads = np.array([label_spread(pairs.labels(float(t))) for t in candidates])
    return float(candidates[int(np.argmax(spreads))])


def trans_labels(
    small_samples: Sequence[np.ndarray | Sequence[float]],
    large_samples: Sequence[np.ndarray | Sequence[float]],
    *,
    t_star: float | None = None,
    grid: np.ndarray | Sequence[float] | None = None,
) -> Labels:
    """Return r_trans labels, searching t* on these samples unless it is given.

    Args:
        small_samples: Per query, the small model's quality of each sampled answer.
        large_samples: Per query, the large model's quality of each sampled answer.
        t_star: A relaxation found earlier (for example on the training split), or None to
            search it with :func:`find_t_star`.
        grid: The search grid when ``t_star`` is None.

    Returns:
        ``Labels`` of kind ``"trans"`` with the t* used.
    """
    t = find_t_star(small_samples, large_samples, grid) if t_star is None else t_star
    t = _finite(t, "t_star")
    return Labels(y=prob_labels(small_samples, large_samples, t), kind="trans", t_star=t)


def make_labels(data: PairData, kind: LabelKind, *, t_star: float | None = None) -> Labels:
    """Return the router's training labels for a pair's data.

    Args:
        data: The rows to label (usually the training split).
        kind: ``"det"`` (per-query quality), ``"prob"`` (all sample pairs, t = 0) or
            ``"trans"`` (all sample pairs, t = t*).
        t_star: For ``"trans"``, a relaxation found earlier; None searches it on ``data``.

    Returns:
        The labels, their kind and the t* used (None unless ``"trans"``).

    Raises:
        DataError: If ``kind`` is unknown or ``t_star`` is given for another kind.
    """
    if kind not in ("det", "prob", "trans"):
        raise DataError(f"label kind must be 'det', 'prob' or 'trans', got {kind!r}")
    if t_star is not None and kind != "trans":
        raise DataError(
            f"t_star applies to 'trans' labels only; got t_star={t_star!r} with {kind!r}"
        )
    if kind == "det":
        return Labels(y=det_labels(data.small_quality, data.large_quality), kind="det", t_star=None)
    if kind == "prob":
        y = prob_labels(data.small_samples, data.large_samples, 0.0)
        return Labels(y=y, kind="prob", t_star=None)
    return trans_labels(data.small_samples, data.large_samples, t_star=t_star)
