"""What the live store says: the realised quality drop with its bound, savings, retraining.

:func:`live_report` reads a store and returns a JSON-ready dict: per requested level seen in
the rows, the live estimate of the quality drop (the shadow rows are a uniform sample of the
traffic, so the drop of the decisions actually taken on them estimates the traffic's) with a
bootstrap interval beside the promise; the small share; the cost saved net of shadow cost
(from the workers' traffic counters); the number of labelled rows; the retraining history; and
a learning curve (per block of rows: the realised drop and small share). :func:`report_summary`
gives it as lines a person reads, :func:`plot_live_report` draws the learning curve
(matplotlib, the ``plot`` extra).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from shared_router._internal.extras import require_extra
from shared_router.live.rows import StoredRow
from shared_router.live.store import ShadowStore
from shared_router.types import QualityKnobs

__all__ = ["drop_interval", "live_report", "plot_live_report", "report_summary"]


def drop_interval(
    went_small: np.ndarray,
    small_quality: np.ndarray,
    large_quality: np.ndarray,
    *,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The relative quality drop of decisions, with a two-sided percentile-bootstrap interval.

    Returns:
        ``(drop, low, high)``; NaNs without rows or without large-model quality.
    """
    n = went_small.size
    large_total = float(large_quality.sum())
    if n == 0 or large_total <= 0:
        return math.nan, math.nan, math.nan
    loss = np.where(went_small, large_quality - small_quality, 0.0)
    drop = float(loss.sum()) / large_total
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_bootstrap, n))
    totals = large_quality[draws].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        drops = np.where(totals > 0, loss[draws].sum(axis=1) / totals, 0.0)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(drops, [tail, 1.0 - tail])
    return drop, float(low), float(high)


def _json(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _levels(rows: list[StoredRow]) -> list[dict[str, Any]]:
    """Per promised bound source (live / prior), the realised drop on the rows it decided."""
    out = []
    for source in ("live", "prior", None):
        chosen = [r for r in rows if r.row.calibration_source == source]
        if not chosen:
            continue
        small = np.array([r.row.small_quality for r in chosen])
        large = np.array([r.row.large_quality for r in chosen])
        went = np.array([r.row.decision == "small" for r in chosen])
        drop, low, high = drop_interval(went, small, large)
        bounds = [r.row.calibration_bound for r in chosen if r.row.calibration_bound is not None]
        out.append(
            {
                "calibration": source or "none",
                "rows": len(chosen),
                "realised_drop": _json(drop),
                "interval_95": [_json(low), _json(high)],
                "mean_promised_bound": _json(float(np.mean(bounds))) if bounds else None,
                "small_share": float(went.mean()),
            }
        )
    return out


def live_report(
    store: ShadowStore, *, blocks: int = 20, requested_drop: float | None = None
) -> dict[str, Any]:
    """Summarise a live store (see the module docstring).

    Args:
        store: The store.
        blocks: Learning-curve points (blocks of consecutive rows).
        requested_drop: The ``max_quality_drop`` the traffic was routed at (the rows do not
            record it), to check the realised drop against: the report gains
            ``requested_drop`` and ``promise_kept`` (realised drop at most the request).

    Returns:
        A JSON-ready dict.

    Raises:
        KnobError: For a ``requested_drop`` outside [0, 1].
    """
    if requested_drop is not None:
        QualityKnobs(max_quality_drop=requested_drop)  # the range every entry point checks
    rows = store.rows()
    traffic = store.traffic()
    small = np.array([r.row.small_quality for r in rows])
    large = np.array([r.row.large_quality for r in rows])
    went = np.array([r.row.decision == "small" for r in rows], dtype=bool)
    drop, low, high = drop_interval(went, small, large)
    curve = []
    if rows:
        for block in np.array_split(np.arange(len(rows)), min(blocks, len(rows))):
            b_drop, b_low, b_high = drop_interval(went[block], small[block], large[block])
            last = rows[int(block[-1])].row
            curve.append(
                {
                    "labelled": int(block[-1]) + 1,
                    "realised_drop": _json(b_drop),
                    "interval_95": [_json(b_low), _json(b_high)],
                    "small_share": float(went[block].mean()),
                    "router_version": last.router_version,
                    "threshold": last.threshold,
                    "promised_bound": last.calibration_bound,
                }
            )
    versions = store.versions()
    current = store.current_version()
    return {
        "store": store.url,
        "labelled_rows": len(rows),
        "realised_drop": _json(drop),
        "interval_95": [_json(low), _json(high)],
        "by_calibration": _levels(rows),
        "small_share_labelled": float(went.mean()) if rows else None,
        "traffic": {
            "calls": traffic.calls,
            "small_share": traffic.small / traffic.calls if traffic.calls else None,
            "shadowed": traffic.shadowed,
            "dropped": traffic.dropped,
            "judge_errors": traffic.judge_errors,
            "shadow_errors": traffic.shadow_errors,
            "cost": traffic.answer_cost,
            "cost_always_large": traffic.large_cost,
            "shadow_cost": traffic.shadow_cost,
            "cost_saved_net": traffic.cost_saved_net,
            "cost_saved_net_share": traffic.cost_saved_net / traffic.large_cost
            if traffic.large_cost
            else None,
        },
        "current_version": current.version if current is not None else None,
        "retrain_history": [v.as_dict() for v in versions],
        "learning_curve": curve,
        **(
            {}
            if requested_drop is None
            else {
                "requested_drop": requested_drop,
                "promise_kept": None if not math.isfinite(drop) else bool(drop <= requested_drop),
            }
        ),
    }


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def report_summary(report: dict[str, Any]) -> str:
    """The report of :func:`live_report` as a few lines a person reads (``hybrid-llm report``).

    The second line says whether the realised drop kept the promise when the report has a
    ``requested_drop``: a drop over it is flagged ``OVER the promise``, a drop within it whose
    95% interval reaches above it says so.
    """
    drop, (low, high) = report["realised_drop"], report["interval_95"]
    version = report["current_version"] or "the starting router (no version swapped in)"
    lines = [
        f"live store {report['store']}: {report['labelled_rows']} labelled rows; "
        f"routing with {version}",
        f"realised quality drop {_percent(drop)} (95% interval {_percent(low)} to "
        f"{_percent(high)})",
    ]
    if "requested_drop" in report:
        requested, kept = report["requested_drop"], report["promise_kept"]
        verdict = {True: "kept", False: "OVER the promise", None: "no labelled rows to tell"}
        said = verdict[kept]
        if kept and high is not None and high > requested:
            said += ", though the interval reaches above it"
        lines[-1] += f" against {_percent(requested)} requested: {said}"
    for level in report["by_calibration"]:
        source = level["calibration"]
        decided = (
            "no calibration recorded" if source == "none" else f"decided by {source} calibration"
        )
        lines.append(
            f"  {decided}: {level['rows']} rows, drop "
            f"{_percent(level['realised_drop'])}, mean promised bound "
            f"{_percent(level['mean_promised_bound'])}, small share "
            f"{_percent(level['small_share'])}"
        )
    traffic = report["traffic"]
    lines.append(
        f"{traffic['calls']:,} calls: small share {_percent(traffic['small_share'])}, cost saved "
        f"net of shadow cost {_percent(traffic['cost_saved_net_share'])} of always-large"
    )
    lines.append(
        f"shadowed {traffic['shadowed']:,}, dropped {traffic['dropped']:,}, judge errors "
        f"{traffic['judge_errors']}, shadow errors {traffic['shadow_errors']}"
    )
    history = report["retrain_history"]
    swapped = sum(1 for v in history if v["swapped"])
    lines.append(f"retrainings {len(history)}, swapped in {swapped}")
    return "\n".join(lines)


def plot_live_report(report: dict[str, Any], path: str | Path) -> Path:
    """Draw the report's learning curve (realised drop with its interval, small share) to a PNG.

    Raises:
        MissingDependencyError: If matplotlib is not installed (``pip install 'hybrid-llm[plot]'``).
    """
    backend = require_extra("matplotlib.backends.backend_agg", extra="plot", purpose="the plot")
    figure_module = require_extra("matplotlib.figure", extra="plot", purpose="the plot")
    figure = figure_module.Figure(figsize=(7.0, 4.5))
    backend.FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    curve = report.get("learning_curve", [])
    x = [point.get("labelled", point.get("rows")) for point in curve]
    drop = [_nan(point.get("realised_drop", point.get("window_drop"))) for point in curve]
    axes.plot(x, [100 * d for d in drop], marker="o", label="realised quality drop (%)")
    if curve and "interval_95" in curve[0]:
        low = [100 * _nan(p["interval_95"][0]) for p in curve]
        high = [100 * _nan(p["interval_95"][1]) for p in curve]
        axes.fill_between(x, low, high, alpha=0.2, label="95% interval")
    bound = [p.get("promised_bound", p.get("drop_bound")) for p in curve]
    if any(b is not None for b in bound):
        axes.plot(x, [100 * _nan(b) for b in bound], linestyle="--", label="promised bound (%)")
    share = [p.get("small_share", p.get("window_small_share")) for p in curve]
    axes.plot(x, [100 * _nan(s) for s in share], linestyle=":", label="small share (%)")
    requested = report.get("requested_drop")
    if requested is not None:
        axes.axhline(100 * requested, color="black", linewidth=0.8, label="requested drop (%)")
    axes.set_xlabel("labelled rows" if not curve or "labelled" in curve[0] else "rows")
    axes.set_ylabel("%")
    axes.set_title("hybrid-llm live learning curve")
    axes.legend(fontsize="small")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    return out


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)
