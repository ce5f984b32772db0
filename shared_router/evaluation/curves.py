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

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared_router._internal.validation import finite_vector
from shared_router.errors import DataError
from shared_router.model.calibration import all_large_threshold

__all__ = [
    "DEFAULT_DROPS",
    "HEURISTIC_NAME",
    "Curve",
    "CurveMetrics",
    "EvaluationReport",
    "apgr",
    "cost_advantage_at_drop",
    "cpt",
    "curve_area",
    "evaluate_scores",
    "gap_recovered",
    "oracle_curve",
    "plot_curves",
    "random_curve",
    "router_curve",
]

DEFAULT_DROPS: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02, 0.05, 0.10)
HEURISTIC_NAME = "shorter prompts go small"
_RESERVED = ("random", "oracle", HEURISTIC_NAME)
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


def _qualities(
    small_quality: np.ndarray | Sequence[float], large_quality: np.ndarray | Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    small = _vector(small_quality, "small_quality")
    large = _vector(large_quality, "large_quality")
    if small.size != large.size:
        raise DataError(
            f"small_quality and large_quality differ in length: {small.size} vs {large.size}"
        )
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
    small, large = _qualities(small_quality, large_quality)
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
    small, large = _qualities(small_quality, large_quality)
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
    small, large = _qualities(small_quality, large_quality)
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


@dataclass(frozen=True, eq=False)
class CurveMetrics:
    """The metrics of one curve.

    Attributes:
        name: The curve's name.
        area: Area under the quality / cost-advantage curve.
        gap_recovered: ``(area - area_random) / (area_oracle - area_random)``.
        apgr: RouteLLM's average performance gap recovered.
        cpt50: Share of large calls needed to recover 50% of the gap.
        cpt80: Share of large calls needed to recover 80% of the gap.
        cost_advantage_at_drop: ``{relative drop: cost advantage}``.
    """

    name: str
    area: float
    gap_recovered: float
    apgr: float
    cpt50: float
    cpt80: float
    cost_advantage_at_drop: Mapping[float, float]

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics as a JSON-ready dict (NaN becomes None)."""
        return {
            "name": self.name,
            "area": _json_float(self.area),
            "gap_recovered": _json_float(self.gap_recovered),
            "apgr": _json_float(self.apgr),
            "cpt50": _json_float(self.cpt50),
            "cpt80": _json_float(self.cpt80),
            "cost_advantage_at_drop": {
                str(d): _json_float(v) for d, v in self.cost_advantage_at_drop.items()
            },
        }


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


@dataclass(frozen=True, eq=False)
class EvaluationReport:
    """One evaluation: the router curves beside the random, oracle and heuristic baselines.

    Attributes:
        n: Number of queries.
        small_mean: Mean quality of always using the small model.
        large_mean: Mean quality of always using the large model.
        oracle_best: The best mean quality any routing reaches (the oracle curve's maximum).
        router_names: The names of the evaluated routers.
        curves: Routers first, then the heuristic (when queries were given), random, oracle.
        metrics: One entry per curve, in the same order.
        drops: The relative drops of ``cost_advantage_at_drop``.
    """

    n: int
    small_mean: float
    large_mean: float
    oracle_best: float
    router_names: tuple[str, ...]
    curves: tuple[Curve, ...]
    metrics: tuple[CurveMetrics, ...]
    drops: tuple[float, ...]

    def curve(self, name: str) -> Curve:
        """Return the curve called ``name``."""
        for curve in self.curves:
            if curve.name == name:
                return curve
        raise KeyError(f"no curve {name!r}; curves: {[c.name for c in self.curves]}")

    def metric(self, name: str) -> CurveMetrics:
        """Return the metrics of the curve called ``name``."""
        for metrics in self.metrics:
            if metrics.name == name:
                return metrics
        raise KeyError(f"no curve {name!r}; curves: {[m.name for m in self.metrics]}")

    def to_dict(self, *, include_curves: bool = True) -> dict[str, Any]:
        """Return the report as a JSON-ready dict.

        Args:
            include_curves: Whether to include every curve's points (long for big sets).
        """
        out: dict[str, Any] = {
            "n": self.n,
            "small_mean": self.small_mean,
            "large_mean": self.large_mean,
            "oracle_best": self.oracle_best,
            "router_names": list(self.router_names),
            "drops": list(self.drops),
            "metrics": {m.name: m.to_dict() for m in self.metrics},
        }
        if include_curves:
            out["curves"] = {
                c.name: {
                    "cost_advantage": c.cost_advantage.tolist(),
                    "quality": c.quality.tolist(),
                    "thresholds": None if c.thresholds is None else c.thresholds.tolist(),
                    "linear": c.linear,
                }
                for c in self.curves
            }
        return out

    def to_json(self, path: str | Path | None = None, *, include_curves: bool = True) -> str:
        """Return the report as JSON text, and write it to ``path`` when given."""
        text = json.dumps(self.to_dict(include_curves=include_curves), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def to_markdown(self) -> str:
        """Return a Markdown summary: every curve's metrics in one table."""
        drop_heads = " | ".join(f"cost adv. @ {_percent(d)} drop" for d in self.drops)
        lines = [
            f"Evaluated on {self.n} queries: mean quality small {self.small_mean:.4f}, "
            f"large {self.large_mean:.4f}, oracle best {self.oracle_best:.4f}.",
            "",
            f"| curve | gap recovered | APGR | CPT(50%) | CPT(80%) | {drop_heads} |",
            "|---" * (5 + len(self.drops)) + "|",
        ]
        for m in self.metrics:
            cells = [
                m.name,
                _number(m.gap_recovered),
                _number(m.apgr),
                _percent(m.cpt50),
                _percent(m.cpt80),
                *(_percent(m.cost_advantage_at_drop[d]) for d in self.drops),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            "Cost advantage: share of queries sent to the small model. Quality drop: relative to "
            "always using the large model. CPT: share of calls to the large model.",
        ]
        return "\n".join(lines) + "\n"


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100.0 * value:.1f}%"


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _metrics(
    curve: Curve,
    random: Curve,
    oracle: Curve,
    small_mean: float,
    large_mean: float,
    drops: Sequence[float],
) -> CurveMetrics:
    return CurveMetrics(
        name=curve.name,
        area=curve_area(curve),
        gap_recovered=gap_recovered(curve, random, oracle),
        apgr=apgr(curve, small_mean, large_mean),
        cpt50=cpt(curve, small_mean, large_mean, 0.5),
        cpt80=cpt(curve, small_mean, large_mean, 0.8),
        cost_advantage_at_drop=cost_advantage_at_drop(curve, large_mean, drops),
    )


def evaluate_scores(
    scores: Mapping[str, np.ndarray | Sequence[float]] | np.ndarray | Sequence[float],
    small_quality: np.ndarray | Sequence[float],
    large_quality: np.ndarray | Sequence[float],
    *,
    queries: Sequence[str] | None = None,
    drops: Sequence[float] = DEFAULT_DROPS,
) -> EvaluationReport:
    """Evaluate one or several routers' scores against random, oracle and heuristic routing.

    Args:
        scores: One router's scores (named ``"router"``) or ``{name: scores}``.
        small_quality: The small model's quality per query.
        large_quality: The large model's quality per query.
        queries: The query texts; when given, the "shorter prompts go small" heuristic is
            evaluated too.
        drops: Relative quality drops for the cost-advantage columns.

    Returns:
        The report.

    Raises:
        DataError: If lengths differ, values are not finite, a router uses a reserved name
            (``random``, ``oracle``, the heuristic's), or the large model's mean quality is
            not positive.
    """
    small, large = _qualities(small_quality, large_quality)
    named = dict(scores) if isinstance(scores, Mapping) else {"router": scores}
    if not named:
        raise DataError("scores is an empty mapping; give at least one router's scores")
    clashing = [name for name in named if name in _RESERVED]
    if clashing:
        raise DataError(f"router names {clashing} are reserved for baselines; rename them")
    curves = [router_curve(values, small, large, name=name) for name, values in named.items()]
    if queries is not None:
        if len(queries) != small.size:
            raise DataError(
                f"queries has {len(queries)} entries but the qualities have {small.size}"
            )
        lengths = np.array([len(q) for q in queries], dtype=np.float64)
        curves.append(router_curve(-lengths, small, large, name=HEURISTIC_NAME))
    random, oracle = random_curve(small, large), oracle_curve(small, large)
    curves += [random, oracle]
    small_mean, large_mean = float(small.mean()), float(large.mean())
    drop_levels = tuple(float(d) for d in drops)
    return EvaluationReport(
        n=int(small.size),
        small_mean=small_mean,
        large_mean=large_mean,
        oracle_best=float(oracle.quality.max()),
        router_names=tuple(named),
        curves=tuple(curves),
        metrics=tuple(
            _metrics(c, random, oracle, small_mean, large_mean, drop_levels) for c in curves
        ),
        drops=drop_levels,
    )


def plot_curves(report: EvaluationReport, path: str | Path, *, title: str | None = None) -> Path:
    """Draw every curve of a report (quality against cost advantage) to a PNG file.

    matplotlib is imported here, not at module import, and drawn with its Agg canvas, so no
    display and no global backend change are needed.

    Args:
        report: An evaluation report.
        path: Where to write the PNG.
        title: The figure title (default: the number of queries).

    Returns:
        The path written.

    Raises:
        ImportError: If matplotlib is not installed (``pip install 'hybrid-llm[plot]'``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plot_curves needs matplotlib: pip install 'hybrid-llm[plot]'") from exc
    styles = {"random": ":", "oracle": "--", HEURISTIC_NAME: "-."}
    figure = Figure(figsize=(6.4, 4.8))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for curve in report.curves:
        axes.plot(
            100.0 * curve.cost_advantage,
            curve.quality,
            linestyle=styles.get(curve.name, "-"),
            label=curve.name,
        )
    axes.axhline(report.large_mean, color="grey", linewidth=0.8)
    axes.set_xlabel("cost advantage (% of queries sent to the small model)")
    axes.set_ylabel("mean quality")
    axes.set_title(title if title is not None else f"{report.n} queries")
    axes.legend()
    out = Path(path)
    figure.savefig(out, format="png", dpi=120)
    return out
