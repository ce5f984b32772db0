"""Cost-quality curves and the metrics that compare a router with its baselines.

A curve gives the mean quality of routed answers against the cost advantage (the share of
queries sent to the small model), from 0 (all large) to 1 (all small). All curves are exact:

- router: one point per achievable threshold; queries with tied scores move together.
- random: the expected quality of sending a random share small, a straight line.
- oracle: the best possible ordering (queries where the small model is better go first).
- heuristic: "shorter prompts go to the small model" (a router whose score is minus the
  prompt length), shown when the queries are given.

Metrics: the cost advantage at a relative quality drop, where
``drop = (mean_q_all_large - mean_q_routed) / mean_q_all_large`` (the router's best achievable
point, never interpolated); the gap recovered
``(area_router - area_random) / (area_oracle - area_random)``; and RouteLLM's APGR (the area
under the performance-gap-recovered curve) and CPT(x%) (the share of calls to the large model
needed to recover x% of the small-to-large quality gap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared_router._internal.validation import finite_quality_pair, finite_vector
from shared_router.errors import DataError
from shared_router.model.calibration import all_large_threshold

__all__ = [
    "DEFAULT_DROPS",
    "HEURISTIC_NAME",
    "RESERVED_NAMES",
    "Curve",
    "apgr",
    "cost_advantage_at_drop",
    "cpt",
    "curve_area",
    "gap_recovered",
    "gap_recovered_by_scores",
    "oracle_curve",
    "paired_qualities",
    "random_curve",
    "router_curve",
]

DEFAULT_DROPS: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02, 0.05, 0.10)


HEURISTIC_NAME = "shorter prompts go small"


RESERVED_NAMES = ("random", "oracle", HEURISTIC_NAME)


_TOLERANCE = 1e-12


@dataclass(frozen=True, eq=False)
class Curve:
    """Mean routed quality against cost advantage.

    Attributes:
        name: What the curve is (``"router"``, ``"random"``, ``"oracle"``, ...).
        cost_advantage: Share of queries sent small at each point, ascending from 0 to 1.
        quality: Mean quality of the routed answers at each point.
        thresholds: For a router, the threshold that reaches each point (``s >= thr`` goes
            small; the first one sends everything large), else None.
        linear: True when every point on the straight segments between the points can be
            reached (the random baseline); the metrics then interpolate, otherwise they use
            the points only.
    """

    name: str
    cost_advantage: np.ndarray
    quality: np.ndarray
    thresholds: np.ndarray | None = None
    linear: bool = False


def _vector(values: np.ndarray | Sequence[float], name: str) -> np.ndarray:
    array = finite_vector(values, name)
    if array.size == 0:
        raise DataError(f"{name} is empty; evaluation needs at least one query")
    return array


def paired_qualities(
    small_quality: np.ndarray | Sequence[float], large_quality: np.ndarray | Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    small, large = finite_quality_pair(small_quality, large_quality)
    if small.size == 0:
        raise DataError("small_quality is empty; evaluation needs at least one query")
    return small, large


def router_curve(
    scores: np.ndarray | Sequence[float],
    small_quality: np.ndarray | Sequence[float],
    large_quality: np.ndarray | Sequence[float],
    name: str = "router",
) -> Curve:
    """Return the exact curve of a router: one point per achievable threshold.

    Args:
        scores: p(small good enough) per query; higher goes small first.
        small_quality: The small model's quality per query.
        large_quality: The large model's quality per query.
        name: The curve's name.

    Returns:
        Points from all-large (cost advantage 0) to all-small (1); tied scores form one step.

    Raises:
        DataError: If the arrays are empty, differ in length or hold non-finite values.
    """
    small, large = paired_qualities(small_quality, large_quality)
    s = _vector(scores, "scores")
    if s.size != small.size:
        raise DataError(f"scores has {s.size} entries but the qualities have {small.size}")
    n = s.size
    order = np.argsort(-s, kind="stable")
    descending = s[order]
    ends = np.concatenate(([0], np.flatnonzero(np.diff(descending) != 0) + 1, [n]))
    gains = np.concatenate(([0.0], np.cumsum((small - large)[order])))
    thresholds = np.concatenate(
        ([all_large_threshold(float(descending[0]))], descending[ends[1:] - 1])
    )
    return Curve(
        name=name,
        cost_advantage=ends / n,
        quality=(large.sum() + gains[ends]) / n,
        thresholds=thresholds,
    )


def random_curve(
    small_quality: np.ndarray | Sequence[float], large_quality: np.ndarray | Sequence[float]
) -> Curve:
    """Return the expected curve of random routing: a straight line from all-large to all-small."""
    small, large = paired_qualities(small_quality, large_quality)
    return Curve(
        name="random",
        cost_advantage=np.array([0.0, 1.0]),
        quality=np.array([large.mean(), small.mean()]),
        linear=True,
    )


def oracle_curve(
    small_quality: np.ndarray | Sequence[float], large_quality: np.ndarray | Sequence[float]
) -> Curve:
    """Return the best possible curve: queries go small by decreasing ``q_small - q_large``."""
    small, large = paired_qualities(small_quality, large_quality)
    n = small.size
    gains = np.concatenate(([0.0], np.cumsum(np.sort(small - large)[::-1])))
    return Curve(
        name="oracle",
        cost_advantage=np.arange(n + 1) / n,
        quality=(large.sum() + gains) / n,
    )


def curve_area(curve: Curve) -> float:
    """Return the area under the curve over cost advantage (trapezoids between the points)."""
    x, y = curve.cost_advantage, curve.quality
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def _max_cost_reaching(curve: Curve, target: float) -> float:
    """The largest cost advantage whose quality is at least ``target``, or NaN if none."""
    x, y = curve.cost_advantage, curve.quality
    slack = _TOLERANCE * max(1.0, abs(target))
    reached = y >= target - slack
    best = float(x[reached].max()) if np.any(reached) else math.nan
    if curve.linear and x.size > 1:
        y0, y1, x0, x1 = y[:-1], y[1:], x[:-1], x[1:]
        crossing = (y0 - target) * (y1 - target) < 0
        if np.any(crossing):
            at = x0[crossing] + (target - y0[crossing]) / (y1[crossing] - y0[crossing]) * (
                x1[crossing] - x0[crossing]
            )
            best = float(np.nanmax(np.append(at, best)))
    return best


def cost_advantage_at_drop(
    curve: Curve, large_mean: float, drops: Sequence[float] = DEFAULT_DROPS
) -> dict[float, float]:
    """Return, per relative quality drop, the largest cost advantage whose drop is within it.

    For a router or the oracle only the curve's points count (no interpolation); for a
    ``linear`` curve (random) the straight segments count too.

    Args:
        curve: A curve.
        large_mean: The mean quality of always using the large model (positive).
        drops: Relative drops (0.01 is 1%), each at least 0.

    Returns:
        ``{drop: cost_advantage}``; 0.0 where no point qualifies.

    Raises:
        DataError: If ``large_mean`` is not positive or a drop is negative.
    """
    if not large_mean > 0.0:
        raise DataError(
            "the large model's mean quality must be positive for a relative drop, "
            f"got {large_mean!r}"
        )
    out: dict[float, float] = {}
    for drop in drops:
        if not drop >= 0.0:
            raise DataError(f"quality drops must be >= 0 (0.01 is 1%), got {drop!r}")
        best = _max_cost_reaching(curve, large_mean * (1.0 - drop))
        out[float(drop)] = 0.0 if math.isnan(best) else best
    return out


def gap_recovered(router: Curve, random: Curve, oracle: Curve) -> float:
    """Return ``(area_router - area_random) / (area_oracle - area_random)``; NaN without a gap."""
    base = curve_area(random)
    gap = curve_area(oracle) - base
    if gap <= _TOLERANCE:
        return math.nan
    return (curve_area(router) - base) / gap


def gap_recovered_by_scores(
    scores: np.ndarray | Sequence[float],
    small_quality: np.ndarray | Sequence[float],
    large_quality: np.ndarray | Sequence[float],
) -> float:
    """The gap recovered (random 0, oracle 1) of routing these rows by ``scores``."""
    return gap_recovered(
        router_curve(scores, small_quality, large_quality),
        random_curve(small_quality, large_quality),
        oracle_curve(small_quality, large_quality),
    )


def apgr(curve: Curve, small_mean: float, large_mean: float) -> float:
    """Return RouteLLM's average performance gap recovered: the exact area under the PGR curve.

    ``PGR = (q - small_mean) / (large_mean - small_mean)`` integrated over the share of calls to
    the large model, which equals ``(area - small_mean) / (large_mean - small_mean)``.
    NaN when the large model is not better on average.
    """
    gap = large_mean - small_mean
    if gap <= _TOLERANCE:
        return math.nan
    return (curve_area(curve) - small_mean) / gap


def cpt(curve: Curve, small_mean: float, large_mean: float, pgr: float) -> float:
    """Return RouteLLM's CPT: the smallest share of calls to the large model reaching a PGR.

    Args:
        curve: A curve.
        small_mean: Mean quality of always using the small model.
        large_mean: Mean quality of always using the large model.
        pgr: The performance gap recovered to reach, in [0, 1] (0.5 for CPT(50%)).

    Returns:
        The share of large calls (``1 - cost advantage``) at the cheapest qualifying point;
        NaN when the large model is not better on average or no point qualifies.

    Raises:
        DataError: If ``pgr`` is outside [0, 1].
    """
    if not 0.0 <= pgr <= 1.0:
        raise DataError(f"pgr must lie in [0, 1] (0.5 for CPT(50%)), got {pgr!r}")
    gap = large_mean - small_mean
    if gap <= _TOLERANCE:
        return math.nan
    return 1.0 - _max_cost_reaching(curve, small_mean + pgr * gap)
