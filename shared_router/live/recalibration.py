"""Live recalibration: the threshold for ``max_quality_drop`` re-chosen from the user's own traffic.

:class:`LiveCalibrator` builds a :class:`~shared_router.model.calibration.CalibrationTable`
from shadow rows (the current router's scores and both judged qualities), so the bound is the
same as the shipped one's: a percentile bootstrap plus the unseen-losses term, made monotone
in the threshold. :meth:`LiveCalibrator.threshold_for` then answers with the threshold of the
largest small share whose *bound* stays within the request:

- with no live rows, the prior (the router's own calibration table) decides;
- with fewer than ``min_rows`` rows, the more cautious (higher) of the prior's and the live
  threshold decides: the shipped calibration can only make routing more cautious;
- from ``min_rows`` rows on, the live table alone decides.

The scores given to :meth:`LiveCalibrator.fit` must be out of sample: a row the router's head
was fitted on comes only with its cross-fitted score, from a head of the cross-validation that
was not fitted on it (:class:`~shared_router.live.live_routing.LiveRouting` gives those, and
leaves out fitted rows without one).

Served: a ``RoutingService`` made with ``live=`` (what ``ChatHybrid(live=...)`` and
``HybridLLM(live=...)`` build, see :mod:`shared_router.live.serving_loop`) asks
``threshold_for(max_quality_drop)`` per call, routes at that threshold (an all-large threshold
above 1 sends the call large, see :mod:`shared_router.routing.live_hook`) and puts
:meth:`LiveThreshold.record_fields` into the routing record's ``extra``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from shared_router.errors import ConfigurationError
from shared_router.model.calibration import CalibrationTable, all_large_threshold
from shared_router.types import QualityKnobs

__all__ = ["CalibrationSource", "LiveCalibrator", "LiveThreshold", "bound_at"]

CalibrationSource = Literal["prior", "live"]


@dataclass(frozen=True)
class LiveThreshold:
    """The threshold for one quality level, and which calibration chose it.

    Attributes:
        threshold: ``score >= threshold`` goes small; above 1 sends everything large.
        source: ``"prior"`` (the router's own calibration) or ``"live"`` (shadow rows).
        n_rows: Live rows the live calibration stood on.
        bound: Upper confidence bound on the relative quality drop at ``threshold``, by the
            live table when there is one, else by the prior (NaN without either).
        max_quality_drop: The level asked for.
    """

    threshold: float
    source: CalibrationSource
    n_rows: int
    bound: float
    max_quality_drop: float

    def record_fields(self) -> dict[str, Any]:
        """The fields a routing record carries about its calibration (JSON-ready)."""
        return {
            "calibration": self.source,
            "calibration_rows": self.n_rows,
            "drop_bound": self.bound if math.isfinite(self.bound) else None,
        }


def bound_at(table: CalibrationTable, threshold: float) -> float:
    """The table's upper bound on the drop at any ``threshold`` (the next table threshold's)."""
    index = int(np.searchsorted(table.thresholds, threshold, side="left"))
    if index >= table.thresholds.size:
        return 0.0
    return float(table.drop_upper[index])


class LiveCalibrator:
    """Turns ``max_quality_drop`` into a threshold from live rows, with a prior until enough.

    Thread-safe: :meth:`fit` swaps the live table in one step while other threads ask
    :meth:`threshold_for`, whose answers are kept per level until the next :meth:`fit`.

    Args:
        prior: The router's own calibration table, or None.
        min_rows: Live rows from which the live table alone decides (at least 1).
        confidence: One-sided level of the bound.
        n_bootstrap: Bootstrap resamples.
        unseen_losses: The small-sample term (None: ``-ln(1 - confidence)``, the rule of three).
        seed: Seed of the bootstrap.

    Attributes:
        table_: The live calibration table, or None before :meth:`fit` with rows.
        n_rows_: Rows the live table stands on.
    """

    def __init__(
        self,
        prior: CalibrationTable | None,
        *,
        min_rows: int = 300,
        confidence: float = 0.95,
        n_bootstrap: int = 500,
        unseen_losses: float | None = None,
        seed: int = 0,
    ) -> None:
        if min_rows < 1:
            raise ConfigurationError(f"min_rows must be >= 1, got {min_rows!r}")
        self.prior = prior
        self.min_rows = min_rows
        self.confidence = confidence
        self.n_bootstrap = n_bootstrap
        self.unseen_losses = unseen_losses
        self.seed = seed
        self.table_: CalibrationTable | None = None
        self.n_rows_ = 0
        self._lock = threading.Lock()
        self._answers: dict[float, LiveThreshold] = {}

    def fit(
        self,
        scores: np.ndarray | Sequence[float],
        small_quality: np.ndarray | Sequence[float],
        large_quality: np.ndarray | Sequence[float],
    ) -> LiveCalibrator:
        """Rebuild the live table from out-of-sample scores (see the module docstring).

        Rows where the large model scored 0 everywhere leave no table (a relative drop is
        undefined there); the prior keeps deciding.

        Returns:
            self.
        """
        s = np.asarray(scores, dtype=np.float64)
        table = None
        if s.size and float(np.sum(large_quality)) > 0.0:
            table = CalibrationTable.from_scores(
                s,
                small_quality,
                large_quality,
                confidence=self.confidence,
                n_bootstrap=self.n_bootstrap,
                seed=self.seed,
                unseen_losses=self.unseen_losses,
            )
        with self._lock:
            self.table_ = table
            self.n_rows_ = int(s.size) if table is not None else 0
            self._answers = {}
        return self

    def threshold_for(self, max_quality_drop: float) -> LiveThreshold:
        """The threshold for a quality level (see the module docstring for the rule).

        Raises:
            KnobError: If ``max_quality_drop`` is not a number in [0, 1] (the check every
                entry point makes, :class:`~shared_router.types.QualityKnobs`).
        """
        with self._lock:
            table, n, answers = self.table_, self.n_rows_, self._answers
        known = answers.get(max_quality_drop) if type(max_quality_drop) is float else None
        if known is None:  # checked once per level: the answers keep only checked ones
            budget = float(QualityKnobs(max_quality_drop=max_quality_drop).max_quality_drop or 0.0)
            known = answers.get(budget)
            if known is None:
                known = self._choose(budget, table, n)
                answers[budget] = known
        return known

    def _choose(self, budget: float, table: CalibrationTable | None, n: int) -> LiveThreshold:
        prior = self.prior
        prior_threshold = (
            prior.threshold_for_quality_drop(budget) if prior is not None else all_large_threshold()
        )
        if table is None:
            bound = bound_at(prior, prior_threshold) if prior is not None else 0.0
            return LiveThreshold(prior_threshold, "prior", 0, bound, budget)
        live_threshold = table.threshold_for_quality_drop(budget)
        if n >= self.min_rows or live_threshold >= prior_threshold:
            return LiveThreshold(live_threshold, "live", n, bound_at(table, live_threshold), budget)
        return LiveThreshold(prior_threshold, "prior", n, bound_at(table, prior_threshold), budget)
