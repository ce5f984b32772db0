"""The live loop of one worker: the current router version, its live calibration, retraining.

:class:`LiveRouting` is what a serving process consults. :meth:`LiveRouting.refresh` reads the
shadow rows written since its last look, picks up a router version another worker swapped in,
retrains when enough new rows have come in (one worker at a time, by the store's lock) and
rebuilds the live calibration from every row the current head did not score in-sample: the
rows it was not fitted on, scored by the current router (the score a row was routed with
when it was this version's, else the row's embedding or text scored again), and the rows it
was fitted on by their cross-fitted scores (:attr:`VersionRecord.fit_row_scores
<shared_router.live.rows.VersionRecord.fit_row_scores>`; left out when a version has none).
:meth:`LiveRouting.threshold_for` answers, per call,
the threshold for a ``max_quality_drop`` (:class:`~shared_router.live.recalibration.LiveThreshold`),
and :meth:`LiveRouting.decide` routes one text through a
:class:`~shared_router.routing.serving.RoutingService` at that threshold.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

import numpy as np

from shared_router.encoders.cache import EmbeddingCache
from shared_router.live.recalibration import LiveCalibrator, LiveThreshold
from shared_router.live.retraining import Retrainer, RetrainOutcome, row_scores
from shared_router.live.rows import StoredRow
from shared_router.live.store import ShadowStore
from shared_router.routing.live_hook import at_live_threshold
from shared_router.routing.router import Router
from shared_router.routing.serving import Routed, RoutingService
from shared_router.types import QualityKnobs

__all__ = ["LiveRouting"]

logger = logging.getLogger(__name__)


class LiveRouting:
    """One worker's live state: router version, calibration from live rows, retraining.

    Args:
        store: The live store.
        router: The router to start from (``"default"`` or a trained one).
        version: That router's version name in the rows (None: the router's own name).
        retrainer: Retrains on live rows; None never retrains.
        make_calibrator: Builds the calibrator of a router version from its prior table
            (default: :class:`LiveCalibrator` with its defaults).
        recalibrate_every: New usable rows between two rebuilds of the live table.
        cache: The embedding cache a picked-up version's encoder uses.
    """

    def __init__(
        self,
        store: ShadowStore,
        router: Router,
        *,
        version: str | None = None,
        retrainer: Retrainer | None = None,
        make_calibrator: Callable[[Router], LiveCalibrator] | None = None,
        recalibrate_every: int = 10,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.store = store
        self.retrainer = retrainer
        self.recalibrate_every = max(1, recalibrate_every)
        self.cache = cache
        self._make_calibrator = make_calibrator or (lambda r: LiveCalibrator(r.calibration_))
        self._lock = threading.RLock()
        self._rows: list[StoredRow] = []
        self._last_id = 0
        self._rows_at_retrain = 0
        self._calibrated_at = -1
        self.history: list[RetrainOutcome] = []
        self._unloadable: set[str] = set()
        self._use(router, version or router.name, frozenset(), {})

    def _use(
        self, router: Router, version: str, fit_ids: frozenset[int], cross_fit: dict[int, float]
    ) -> None:
        self.router = router
        self.version = version
        self.fit_ids = fit_ids
        self.calibrator = self._make_calibrator(router)
        self._scores: dict[int, float] = dict(cross_fit)
        self._calibrated_at = -1

    def threshold_for(self, max_quality_drop: float) -> LiveThreshold:
        """The threshold for ``max_quality_drop`` now (thread-safe, no store access)."""
        return self.calibrator.threshold_for(max_quality_drop)

    def decide(
        self, service: RoutingService, text: str, max_quality_drop: float
    ) -> tuple[Routed, LiveThreshold]:
        """Route one text through ``service`` at the live threshold for ``max_quality_drop``.

        ``service`` must route with :attr:`router`. A threshold above 1 (nothing qualifies)
        sends the call large while keeping its score.
        """
        live = self.threshold_for(max_quality_drop)
        routed = service.decide(text, QualityKnobs(threshold=min(1.0, live.threshold)))
        decision = at_live_threshold(routed.decision, live, max_quality_drop)
        return dataclasses.replace(routed, decision=decision, calibration=live), live

    def refresh(self) -> RetrainOutcome | None:
        """Read new rows; pick up, or make, a new version; rebuild the live calibration.

        Returns:
            This worker's retraining outcome when it retrained, else None.
        """
        with self._lock:
            fresh = self.store.rows(after_id=self._last_id)
            if fresh:
                self._rows.extend(fresh)
                self._last_id = fresh[-1].row_id
            self._pick_up_version()
            # Before retraining, which takes a while: calls meanwhile route on every row read.
            self._recalibrate()
            outcome = None
            if self.retrainer is not None and self.retrainer.due(
                len(self._rows), self._rows_at_last_retrain()
            ):
                self._rows_at_retrain = len(self._rows)
                outcome = self.retrainer.retrain(
                    self.router,
                    self.version,
                    self.fit_ids,
                    self._rows,
                    current_fit_scores={
                        i: self._scores[i] for i in self.fit_ids & self._scores.keys()
                    },
                )
                if outcome is not None:
                    self.history.append(outcome)
                    if outcome.swapped:
                        self._use(
                            outcome.router,
                            outcome.record.version,
                            frozenset(outcome.record.fit_row_ids),
                            outcome.record.cross_fit_scores(),
                        )
                        self._recalibrate()  # the new version's calibration, on every row
            return outcome

    def _rows_at_last_retrain(self) -> int:
        """Rows the newest retraining in the store (by any worker) or this one's last try saw."""
        versions = self.store.versions()
        newest = versions[-1].n_fit if versions else 0
        return max(newest, self._rows_at_retrain)

    def pick_up_version(self) -> None:
        """Route with the version swapped in last (by any worker), when it is not this one.

        A version this worker cannot load is warned about once; routing goes on as before.

        Raises:
            RoutingError: When the store cannot be read.
        """
        with self._lock:
            self._pick_up_version()

    def _pick_up_version(self) -> None:
        current = self.store.current_version()
        if current is None or current.version == self.version:
            return
        try:
            router = Router.load(current.path, cache=self.cache)
        except Exception as exc:  # a version this worker cannot read: keep routing as before
            # Warned once per version; each later refresh tries again, quietly.
            warned = current.version in self._unloadable
            self._unloadable.add(current.version)
            (logger.debug if warned else logger.warning)(
                "router version %s at %s not loaded (%s: %s); routing goes on with %s",
                current.version,
                current.path,
                type(exc).__name__,
                exc,
                self.version,
            )
            return
        logger.info("picked up router version %s", current.version)
        self._use(
            router,
            current.version,
            frozenset(current.fit_row_ids),
            current.cross_fit_scores(),
        )

    def calibration_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The current version's ``(scores, small_quality, large_quality)`` on the rows its
        head was not fitted on, and on the rows it was fitted on that have a cross-fitted
        score (rows that were routed without a score are left out)."""
        cross_fitted = [
            r for r in self._rows if r.row_id in self.fit_ids and r.row_id in self._scores
        ]
        rows = [r for r in self._rows if r.row_id not in self.fit_ids and r.row.score is not None]
        missing = [
            r for r in rows if r.row_id not in self._scores and r.row.router_version != self.version
        ]
        for r in rows:
            if r.row.router_version == self.version and r.row.score is not None:
                self._scores.setdefault(r.row_id, float(r.row.score))
        if missing:
            scores, usable = row_scores(self.router, missing)
            for r, score in zip(
                [m for m, ok in zip(missing, usable, strict=True) if ok], scores, strict=True
            ):
                self._scores[r.row_id] = float(score)
        kept = cross_fitted + [r for r in rows if r.row_id in self._scores]
        return (
            np.array([self._scores[r.row_id] for r in kept]),
            np.array([r.row.small_quality for r in kept]),
            np.array([r.row.large_quality for r in kept]),
        )

    def _recalibrate(self) -> None:
        n = len(self._rows)
        if self._calibrated_at >= 0 and n - self._calibrated_at < self.recalibrate_every:
            return
        self._calibrated_at = n
        scores, small, large = self.calibration_rows()
        self.calibrator.fit(scores, small, large)
