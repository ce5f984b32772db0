"""The evaluation report: a router's curves beside random, the oracle and the length heuristic.

:func:`evaluate_scores` builds an :class:`EvaluationReport` from router scores and both models'
qualities on the same queries; the report holds every curve with its metrics
(:class:`CurveMetrics`) and writes JSON and markdown.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared_router._internal.atomic import write_text_atomic
from shared_router.errors import DataError, UnknownNameError
from shared_router.evaluation.curves import (
    DEFAULT_DROPS,
    HEURISTIC_NAME,
    RESERVED_NAMES,
    Curve,
    apgr,
    cost_advantage_at_drop,
    cpt,
    curve_area,
    gap_recovered,
    oracle_curve,
    paired_qualities,
    random_curve,
    router_curve,
)

__all__ = ["CurveMetrics", "EvaluationReport", "evaluate_scores"]


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
        raise UnknownNameError(f"no curve {name!r}; curves: {[c.name for c in self.curves]}")

    def metric(self, name: str) -> CurveMetrics:
        """Return the metrics of the curve called ``name``."""
        for metrics in self.metrics:
            if metrics.name == name:
                return metrics
        raise UnknownNameError(f"no curve {name!r}; curves: {[m.name for m in self.metrics]}")

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
            write_text_atomic(path, text + "\n")
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
    small, large = paired_qualities(small_quality, large_quality)
    named = dict(scores) if isinstance(scores, Mapping) else {"router": scores}
    if not named:
        raise DataError("scores is an empty mapping; give at least one router's scores")
    clashing = [name for name in named if name in RESERVED_NAMES]
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
