"""Plots of an evaluation report's curves (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

from pathlib import Path

from shared_router._internal.extras import require_extra
from shared_router.evaluation.curves import HEURISTIC_NAME
from shared_router.evaluation.report import EvaluationReport

__all__ = ["plot_curves"]


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
        MissingDependencyError: If matplotlib is not installed (``pip install 'hybrid-llm[plot]'``).
    """
    backend = require_extra("matplotlib.backends.backend_agg", extra="plot", purpose="plot_curves")
    figure_module = require_extra("matplotlib.figure", extra="plot", purpose="plot_curves")
    styles = {"random": ":", "oracle": "--", HEURISTIC_NAME: "-."}
    figure = figure_module.Figure(figsize=(6.4, 4.8))
    backend.FigureCanvasAgg(figure)
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
