"""A ``large_share`` knob held on live traffic, by a running quantile of recent scores.

A routing service made with ``pace_large_share=True`` decides a ``large_share`` knob with an
:class:`~shared_router.model.calibration.OnlinePacer` per share (:class:`LargeSharePacers`)
instead of the calibration table's quantile, so the share of large calls follows the traffic
the router sees, not the traffic it was calibrated on.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from shared_router.types import RouteDecision

if TYPE_CHECKING:
    from shared_router.model.calibration import CalibrationTable, OnlinePacer

__all__ = ["LargeSharePacers"]


class LargeSharePacers:
    """One :class:`~shared_router.model.calibration.OnlinePacer` per ``large_share`` value.

    Args:
        calibration: Returns the router's calibration table (or None), asked once per share,
            when that share's pacer is made: it gives the pacer its starting threshold.
    """

    def __init__(self, calibration: Callable[[], CalibrationTable | None]) -> None:
        self._calibration = calibration
        self._lock = threading.Lock()
        self._pacers: dict[float, OnlinePacer] = {}

    def route(self, share: float, route: Callable[..., RouteDecision]) -> RouteDecision:
        """``route(threshold=...)`` at the pacer's threshold for ``share``, the score observed.

        Args:
            share: The ``large_share`` to hold.
            route: Decides at a ``threshold`` knob (a router's ``route`` for one text).

        Returns:
            The decision against the pacer's threshold, its knob ``"large_share (paced)"``.
        """
        pacer = self._pacer(share)
        threshold = pacer.threshold()
        # The pacer may ask for more than 1 (large_share=1: everything large), which a
        # threshold knob cannot express; route at the clipped value, then compare again.
        decision = route(threshold=min(1.0, max(0.0, threshold)))
        if decision.score is None:
            return decision
        pacer.observe(decision.score)
        return dataclasses.replace(
            decision,
            model="small" if decision.score >= threshold else "large",
            threshold=threshold,
            knob="large_share (paced)",
            knob_value=share,
        )

    def _pacer(self, share: float) -> OnlinePacer:
        with self._lock:
            pacer = self._pacers.get(share)
            if pacer is None:
                from shared_router.model.calibration import OnlinePacer

                table = self._calibration()
                start = table.threshold_for_large_share(share) if table is not None else None
                pacer = OnlinePacer(share, initial_threshold=start)
                self._pacers[share] = pacer
            return pacer
