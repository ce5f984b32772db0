"""Turning quality knobs into score thresholds.

A router score ``s`` is p(small is good enough); a threshold ``thr`` sends ``s >= thr`` to the
small model. :class:`CalibrationTable` holds, for a set of achievable thresholds on held-out
data, the cost advantage (share sent small), the relative quality drop versus always using the
large model, and an upper confidence bound on that drop, so that a ``max_quality_drop`` knob
becomes a threshold whose drop stays within the bound on fresh traffic. :class:`OnlinePacer`
holds a ``large_share`` on live traffic from a running quantile of recent scores.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared_router._internal.validation import finite_vector
from shared_router.errors import CalibrationError, KnobError

__all__ = ["CALIBRATION_FORMAT", "CalibrationTable", "OnlinePacer", "all_large_threshold"]

CALIBRATION_FORMAT = "hybrid-llm-calibration/1"
_QUANTILE_LEVELS = np.linspace(0.0, 1.0, 1001)
_BOOTSTRAP_CELLS = 4_000_000  # bootstrap weights held in memory at once (rows x resamples)
_TOLERANCE = 1e-12
_ARRAY_FIELDS = ("thresholds", "cost_advantage", "quality_drop", "drop_upper", "score_quantiles")


def all_large_threshold(max_score: float = 1.0) -> float:
    """Return a threshold above every score up to ``max(max_score, 1)``: it sends all large."""
    return float(np.nextafter(max(float(max_score), 1.0), np.inf))


def _vector(values: np.ndarray | Sequence[float], name: str) -> np.ndarray:
    return finite_vector(values, name, CalibrationError)


def _candidate_thresholds(sorted_scores: np.ndarray, max_points: int) -> np.ndarray:
    """Achievable thresholds (distinct scores), ascending, at most ``max_points - 1`` of them."""
    unique = np.unique(sorted_scores)
    if unique.size <= max_points - 1:
        return unique
    # Keep thresholds evenly spaced in rank so the cost advantages are evenly spread.
    positions = np.round(np.linspace(0, sorted_scores.size - 1, max_points - 1)).astype(np.intp)
    return np.unique(sorted_scores[positions])


@dataclass(frozen=True, eq=False)
class CalibrationTable:
    """Cost advantage and quality drop at achievable thresholds, with an upper bound on the drop.

    Attributes:
        thresholds: Ascending; each is a calibration score (``s >= thr`` goes small) and the
            last one is above every score, so it sends everything large.
        cost_advantage: Share of calibration queries sent small at each threshold
            (non-increasing).
        quality_drop: Relative quality drop versus all-large at each threshold, measured on
            the calibration data.
        drop_upper: Upper confidence bound on the drop at each threshold: the bootstrap
            percentile at ``confidence`` plus the small-sample term (see :meth:`from_scores`),
            made non-increasing in the threshold (a running maximum from the all-large end, so
            that taking the largest cost advantage within a budget is a fixed-sequence test);
            0 at the last threshold.
        score_quantiles: Quantiles of the calibration scores at ``linspace(0, 1, 1001)``.
        confidence: The one-sided confidence level of ``drop_upper``.
        n: Number of calibration queries.
        method: How ``drop_upper`` was computed: ``"bootstrap_percentile"``, followed by
            ``"+unseen_losses=k"`` when the small-sample term was added.
    """

    thresholds: np.ndarray
    cost_advantage: np.ndarray
    quality_drop: np.ndarray
    drop_upper: np.ndarray
    score_quantiles: np.ndarray
    confidence: float
    n: int
    method: str

    def __post_init__(self) -> None:
        for name in _ARRAY_FIELDS:
            object.__setattr__(self, name, _vector(getattr(self, name), name))
        size = self.thresholds.size
        if size < 1:
            raise CalibrationError("a calibration table needs at least one threshold")
        for name in _ARRAY_FIELDS[1:4]:
            if getattr(self, name).size != size:
                raise CalibrationError(
                    f"{name} has {getattr(self, name).size} entries but thresholds has {size}"
                )
        if np.any(np.diff(self.thresholds) <= 0):
            raise CalibrationError("thresholds must be strictly ascending")
        if np.any((self.cost_advantage < 0) | (self.cost_advantage > 1)):
            raise CalibrationError("cost_advantage must lie in [0, 1]")
        if np.any(np.diff(self.cost_advantage) > _TOLERANCE):
            raise CalibrationError("cost_advantage must not increase with the threshold")
        if self.cost_advantage[-1] != 0.0:
            raise CalibrationError(
                f"the last threshold must send everything large (cost advantage 0), "
                f"got {self.cost_advantage[-1]}"
            )
        if self.score_quantiles.size < 2 or np.any(np.diff(self.score_quantiles) < 0):
            raise CalibrationError("score_quantiles must hold at least two ascending values")
        self._check_ends()
        if not 0.0 < self.confidence < 1.0:
            raise CalibrationError(f"confidence must lie in (0, 1), got {self.confidence!r}")
        if self.n < 1:
            raise CalibrationError(f"n must be a positive number of queries, got {self.n!r}")

    def _check_ends(self) -> None:
        """Check what routing relies on: an all-large last threshold and a monotone bound.

        Raises:
            CalibrationError: Naming the broken invariant.
        """
        top = max(1.0, float(self.score_quantiles[-1]))
        if not self.thresholds[-1] > top:
            raise CalibrationError(
                f"the last threshold must lie above every score (above {top!r}) so that it "
                f"sends everything large, got {float(self.thresholds[-1])!r}"
            )
        inner = self.thresholds[:-1]
        low, high = self.score_quantiles[0], self.score_quantiles[-1]
        if inner.size and (inner[0] < low - _TOLERANCE or inner[-1] > high + _TOLERANCE):
            raise CalibrationError(
                "every threshold but the last must be a calibration score, within "
                f"score_quantiles [{float(low)!r}, {float(high)!r}]"
            )
        if abs(self.quality_drop[-1]) > _TOLERANCE or abs(self.drop_upper[-1]) > _TOLERANCE:
            raise CalibrationError(
                "quality_drop and drop_upper must be 0 at the last (all-large) threshold, got "
                f"{float(self.quality_drop[-1])!r} and {float(self.drop_upper[-1])!r}"
            )
        if np.any(np.diff(self.drop_upper) > _TOLERANCE):
            raise CalibrationError("drop_upper must not increase with the threshold")

    @classmethod
    def from_scores(
        cls,
        scores: np.ndarray | Sequence[float],
        small_quality: np.ndarray | Sequence[float],
        large_quality: np.ndarray | Sequence[float],
        *,
        confidence: float = 0.95,
        n_bootstrap: int = 1000,
        seed: int = 0,
        max_points: int = 512,
        unseen_losses: float | None = None,
    ) -> CalibrationTable:
        """Build the table from router scores and both models' qualities on held-out queries.

        The upper bound is a percentile bootstrap over rows: the queries are resampled with
        replacement ``n_bootstrap`` times (seeded) and, at each threshold, the ``confidence``
        quantile of the resampled relative drops is taken. A bootstrap never resamples a loss
        it has not seen, so on few rows it is overconfident: a threshold that routes a handful
        of queries, none of them worse on the small model, gets a bound of 0. Every threshold
        that routes anything therefore also pays for ``unseen_losses`` routed queries with the
        worst loss in the data (``max(large_quality) - min(small_quality)``): it adds
        ``unseen_losses * worst_loss / sum(large_quality)`` to the bound. The default,
        ``-ln(1 - confidence)`` (3.0 at 95%), is the "rule of three": with no failure in ``n``
        trials, ``3 / n`` bounds the failure rate at 95%. The term shrinks as ``1 / n``: on 1000
        rows with binary quality and a 50% large model it is 0.6% of quality, on 60 rows 10%.

        Args:
            scores: Router scores p(small good enough), one per query.
            small_quality: The small model's quality per query.
            large_quality: The large model's quality per query.
            confidence: One-sided level of the upper bound, in (0, 1).
            n_bootstrap: Number of bootstrap resamples (at least 1).
            seed: Seed of the resampling.
            max_points: Most thresholds in the table (at least 2), the all-large one included.
            unseen_losses: Worst-case routed losses added to the bound at every threshold that
                routes anything, at least 0; None takes ``-ln(1 - confidence)``; 0 leaves the
                plain bootstrap.

        Returns:
            The table.

        Raises:
            CalibrationError: If the arrays are empty, differ in length, hold non-finite values,
                the large model's mean quality is not positive (the relative drop is then
                undefined), or a parameter is out of range.
        """
        s, q_small, q_large, pseudo = _calibration_inputs(
            scores, small_quality, large_quality, confidence, n_bootstrap, max_points, unseen_losses
        )
        large_total = float(q_large.sum())
        order = np.argsort(-s, kind="stable")
        descending = s[order]
        delta = (q_small - q_large)[order]
        candidates = _candidate_thresholds(descending[::-1], max_points)
        thresholds = np.append(candidates, all_large_threshold(float(descending[0])))
        # sent[k]: how many queries score >= thresholds[k] (a prefix of the descending order).
        sent = np.searchsorted(-descending, -thresholds, side="right")
        cumulative_delta = np.concatenate(([0.0], np.cumsum(delta)))
        quality_drop = -cumulative_delta[sent] / large_total
        upper = _bootstrap_upper(
            delta, q_large[order], sent, confidence, n_bootstrap, np.random.default_rng(seed)
        )
        worst_loss = max(0.0, float(q_large.max() - q_small.min()))
        upper = upper + np.where(sent > 0, pseudo * worst_loss / large_total, 0.0)
        drop_upper = np.maximum.accumulate(upper[::-1])[::-1]
        return cls(
            thresholds=thresholds,
            cost_advantage=sent / s.size,
            quality_drop=quality_drop,
            drop_upper=drop_upper,
            score_quantiles=np.quantile(s, _QUANTILE_LEVELS),
            confidence=float(confidence),
            n=int(s.size),
            method="bootstrap_percentile" + (f"+unseen_losses={pseudo:.4g}" if pseudo else ""),
        )

    def threshold_for_quality_drop(self, max_drop: float) -> float:
        """Return the threshold with the largest cost advantage whose ``drop_upper <= max_drop``.

        Args:
            max_drop: The most relative quality drop accepted (0.01 is 1%), at least 0.

        Returns:
            A threshold from the table; the all-large one when no other qualifies.

        Raises:
            KnobError: If ``max_drop`` is negative or not finite.
        """
        budget = float(max_drop)
        if not math.isfinite(budget) or budget < 0.0:
            raise KnobError(f"max_drop must be a finite number >= 0 (0.01 is 1%), got {max_drop!r}")
        qualifying = np.flatnonzero(self.drop_upper <= budget + _TOLERANCE)
        if qualifying.size == 0:
            return float(self.thresholds[-1])
        best = qualifying[np.argmax(self.cost_advantage[qualifying])]
        return float(self.thresholds[best])

    def threshold_for_large_share(self, share: float) -> float:
        """Return the threshold below which a ``share`` of the calibration scores lie.

        Args:
            share: The share of queries to send large, in [0, 1]; 1 sends everything large.

        Returns:
            The ``share`` quantile of the calibration scores; for 1 the all-large threshold,
            for 0 one at or below every score.

        Raises:
            KnobError: If ``share`` is outside [0, 1].
        """
        value = float(share)
        if not 0.0 <= value <= 1.0:
            raise KnobError(f"share must lie in [0, 1] (0.3 is 30% large), got {share!r}")
        if value >= 1.0:
            return float(self.thresholds[-1])
        if value <= 0.0:
            return min(0.0, float(self.score_quantiles[0]))
        levels = np.linspace(0.0, 1.0, self.score_quantiles.size)
        return float(np.interp(value, levels, self.score_quantiles))

    def to_dict(self) -> dict[str, Any]:
        """Return the table as a JSON-ready dict (``from_dict`` reads it back)."""
        out: dict[str, Any] = {"format": CALIBRATION_FORMAT}
        for name in _ARRAY_FIELDS:
            out[name] = [float(v) for v in getattr(self, name)]
        out.update(confidence=self.confidence, n=self.n, method=self.method)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CalibrationTable:
        """Read a table written by :meth:`to_dict`.

        The table's invariants are checked as for a table built in memory, so that a table
        edited by hand cannot route against its own numbers (for example a last threshold
        that lets ``large_share=1.0`` send a query small).

        Raises:
            CalibrationError: If ``d`` is not such a dict: wrong format tag, a missing or
                mistyped field, arrays of unequal length or out of order, or a table that
                breaks an invariant of :class:`CalibrationTable`.
        """
        if not isinstance(d, Mapping):
            raise CalibrationError(f"a calibration table must be a dict, got {type(d).__name__}")
        if d.get("format") != CALIBRATION_FORMAT:
            raise CalibrationError(
                f"unknown calibration format {d.get('format')!r}; expected {CALIBRATION_FORMAT!r}"
            )
        missing = [k for k in (*_ARRAY_FIELDS, "confidence", "n", "method") if k not in d]
        if missing:
            raise CalibrationError(f"calibration dict lacks {missing}")
        arrays: dict[str, np.ndarray] = {}
        for name in _ARRAY_FIELDS:
            values = d[name]
            if not isinstance(values, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
            ):
                raise CalibrationError(f"calibration field {name!r} must be a list of numbers")
            arrays[name] = np.array(values, dtype=np.float64)
        confidence, n, method = d["confidence"], d["n"], d["method"]
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
            raise CalibrationError(f"'confidence' must be a number, got {confidence!r}")
        if isinstance(n, bool) or not isinstance(n, int):
            raise CalibrationError(f"'n' must be an integer, got {n!r}")
        if not isinstance(method, str):
            raise CalibrationError(f"'method' must be a string, got {method!r}")
        return cls(
            thresholds=arrays["thresholds"],
            cost_advantage=arrays["cost_advantage"],
            quality_drop=arrays["quality_drop"],
            drop_upper=arrays["drop_upper"],
            score_quantiles=arrays["score_quantiles"],
            confidence=float(confidence),
            n=n,
            method=method,
        )


def _calibration_inputs(
    scores: np.ndarray | Sequence[float],
    small_quality: np.ndarray | Sequence[float],
    large_quality: np.ndarray | Sequence[float],
    confidence: float,
    n_bootstrap: int,
    max_points: int,
    unseen_losses: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Check :meth:`CalibrationTable.from_scores`' inputs; return the arrays and the pseudo-losses.

    Raises:
        CalibrationError: As documented in :meth:`CalibrationTable.from_scores`.
    """
    s = _vector(scores, "scores")
    q_small = _vector(small_quality, "small_quality")
    q_large = _vector(large_quality, "large_quality")
    if not s.size == q_small.size == q_large.size:
        raise CalibrationError(
            f"scores, small_quality and large_quality must have one entry per query; "
            f"got {s.size}, {q_small.size}, {q_large.size}"
        )
    if s.size == 0:
        raise CalibrationError("calibration needs at least one query; got none")
    if not 0.0 < confidence < 1.0:
        raise CalibrationError(f"confidence must lie in (0, 1), got {confidence!r}")
    if n_bootstrap < 1:
        raise CalibrationError(f"n_bootstrap must be at least 1, got {n_bootstrap!r}")
    if max_points < 2:
        raise CalibrationError(f"max_points must be at least 2, got {max_points!r}")
    pseudo = -math.log1p(-confidence) if unseen_losses is None else float(unseen_losses)
    if not math.isfinite(pseudo) or pseudo < 0.0:
        raise CalibrationError(
            f"unseen_losses must be a finite number >= 0 (or None), got {unseen_losses!r}"
        )
    if float(q_large.sum()) <= 0.0:
        raise CalibrationError(
            "the large model's mean quality is 0 on the calibration data, so a relative "
            "quality drop is undefined; calibrate on data where the large model scores"
        )
    return s, q_small, q_large, pseudo


def _bootstrap_upper(
    delta: np.ndarray,
    large_quality: np.ndarray,
    sent: np.ndarray,
    confidence: float,
    n_bootstrap: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Percentile-bootstrap upper bound on the relative drop at each prefix size in ``sent``.

    Rows are in descending score order, so the rows sent small at a threshold are a prefix.
    Each resample is a vector of row multiplicities; the drop at a threshold is
    ``-sum(w * delta over the prefix) / sum(w * large_quality)``.
    """
    n = delta.size
    # boundaries: the distinct prefix sizes, ascending (0 first); the rows between two of them
    # form one segment, summed per resample with one reduceat.
    boundaries = np.unique(sent)
    top = int(boundaries[-1])
    column = np.searchsorted(boundaries, sent)
    per_block = max(1, _BOOTSTRAP_CELLS // n)
    drops: list[np.ndarray] = []
    for first in range(0, n_bootstrap, per_block):
        size = min(per_block, n_bootstrap - first)
        draws = rng.integers(0, n, size=(size, n))
        draws += (np.arange(size) * n)[:, None]
        weights = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n)
        large_total = weights @ large_quality
        prefix = np.zeros((size, boundaries.size))
        if top > 0:
            segments = np.add.reduceat(weights[:, :top] * delta[:top], boundaries[:-1], axis=1)
            prefix[:, 1:] = np.cumsum(segments, axis=1)
        gain = prefix[:, column]
        with np.errstate(divide="ignore", invalid="ignore"):
            drop = np.where(large_total[:, None] > 0, -gain / large_total[:, None], 0.0)
        drops.append(drop)
    upper: np.ndarray = np.quantile(np.concatenate(drops), confidence, axis=0)
    return upper


class OnlinePacer:
    """Holds a ``large_share`` target on live traffic, without labels.

    The threshold is the ``large_share`` quantile of the last ``window`` observed scores, so
    that about that share of recent traffic scores below it (and goes large). Until ``warmup``
    scores have been seen it returns ``initial_threshold``. Safe to use from many threads.

    Args:
        large_share: The share of queries to send large, in [0, 1].
        window: How many recent scores the quantile covers (at least 1).
        initial_threshold: The threshold before ``warmup`` scores are seen; None uses
            ``large_share`` itself (the right threshold when scores are uniform on [0, 1]).
        warmup: How many scores to see before the running quantile takes over (at least 1,
            at most ``window``).
    """

    def __init__(
        self,
        large_share: float,
        *,
        window: int = 1000,
        initial_threshold: float | None = None,
        warmup: int = 20,
    ) -> None:
        share = float(large_share)
        if not 0.0 <= share <= 1.0:
            raise KnobError(
                f"large_share must lie in [0, 1] (0.3 is 30% large), got {large_share!r}"
            )
        if window < 1:
            raise KnobError(f"window must be at least 1 score, got {window!r}")
        if not 1 <= warmup <= window:
            raise KnobError(f"warmup must lie in [1, window={window}], got {warmup!r}")
        if initial_threshold is not None and not math.isfinite(float(initial_threshold)):
            raise KnobError(f"initial_threshold must be finite, got {initial_threshold!r}")
        self.large_share = share
        self.window = window
        self.initial_threshold = initial_threshold
        self.warmup = warmup
        self._scores: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self._cached: float | None = None

    @property
    def n_observed(self) -> int:
        """How many scores the window holds now."""
        with self._lock:
            return len(self._scores)

    def observe(self, score: float) -> None:
        """Add one live score to the window; non-finite scores are ignored."""
        value = float(score)
        if not math.isfinite(value):
            return
        with self._lock:
            self._scores.append(value)
            self._cached = None

    def threshold(self) -> float:
        """Return the current threshold (``s >= threshold`` goes small)."""
        with self._lock:
            if self._cached is not None:
                return self._cached
            if len(self._scores) < self.warmup:
                start = self.initial_threshold
                return self.large_share if start is None else float(start)
            if self.large_share >= 1.0:
                value = all_large_threshold(max(self._scores))
            elif self.large_share <= 0.0:
                value = min(0.0, min(self._scores))
            else:
                value = float(np.quantile(np.fromiter(self._scores, float), self.large_share))
            self._cached = value
            return value
