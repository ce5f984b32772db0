"""Routing decisions: a quality knob turned into a score threshold, a score into a decision.

:class:`RoutingDecisions` is the half of :class:`~shared_router.routing.router.Router` that
decides: :meth:`~RoutingDecisions.threshold_for` (a knob to a threshold, through the
calibration table), :meth:`~RoutingDecisions.route`, :meth:`~RoutingDecisions.route_batch` and
:meth:`~RoutingDecisions.route_scored`. A score ``p >= threshold`` goes to the small model; an
empty text goes large unscored. The other half, what scores (fit, calibrate, score, save,
load), is the router itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

import numpy as np

from shared_router._internal.validation import text_list
from shared_router.errors import CalibrationError, KnobError, RoutingError
from shared_router.model.calibration import CalibrationTable
from shared_router.types import KNOB_NAMES, QualityKnobs, RouteDecision

__all__ = ["RoutingDecisions"]

_EMPTY_REASON = "empty text: routed to the large model"


class RoutingDecisions(ABC):
    """Decides small or large from scores and quality knobs; a subclass gives the scores.

    Attributes:
        name: The router's name (in error messages).
        calibration_: The calibration table, or None for an uncalibrated router.
    """

    name: str
    calibration_: CalibrationTable | None

    @property
    @abstractmethod
    def default_knobs(self) -> QualityKnobs:
        """The quality level for callers that set none."""

    @abstractmethod
    def score(self, texts: str | Iterable[str]) -> np.ndarray:
        """Return p(the small model is good enough) per text, float64 of shape ``(n,)``."""

    def threshold_for(self, knobs: QualityKnobs) -> float:
        """Turn a quality level into a score threshold.

        Args:
            knobs: Exactly one knob set.

        Returns:
            The threshold; ``p >= threshold`` goes small.

        Raises:
            KnobError: When no knob is set.
            CalibrationError: For ``max_quality_drop`` / ``large_share`` on an uncalibrated
                router.
        """
        active = knobs.active
        if active is None:
            raise KnobError(
                "give exactly one of max_quality_drop, large_share, threshold; got none "
                f"(this router's default is {self.default_knobs.set_knobs()})"
            )
        knob, value = active
        if knob == "threshold":
            return value
        if self.calibration_ is None:
            raise CalibrationError(
                f"router {self.name!r} has no calibration table, so {knob}={value} cannot be "
                "turned into a threshold; call router.calibrate(texts, small_quality, "
                "large_quality) on held-out data, or route with threshold=..."
            )
        if knob == "max_quality_drop":
            return self.calibration_.threshold_for_quality_drop(value)
        return self.calibration_.threshold_for_large_share(value)

    def route(
        self,
        text: str,
        *,
        max_quality_drop: float | None = None,
        large_share: float | None = None,
        threshold: float | None = None,
    ) -> RouteDecision:
        """Decide which model answers one text.

        Args:
            text: The query (see :func:`shared_router.routing.text.routing_text` for conversations).
            max_quality_drop: Most relative quality drop versus all-large (0.01 is 1%).
            large_share: Share of traffic to send large (0.3 is 30%).
            threshold: A raw score threshold.

        Returns:
            The decision. Empty or whitespace-only text goes large without scoring.

        Raises:
            KnobError: Unless exactly one knob is given (pass ``**router.default_knobs
                .set_knobs()`` for the router's default).
            CalibrationError: For a calibrated knob on an uncalibrated router.
        """
        if not isinstance(text, str):
            raise RoutingError(f"text must be a str, got {type(text).__name__}")
        return self.route_batch(
            [text],
            max_quality_drop=max_quality_drop,
            large_share=large_share,
            threshold=threshold,
        )[0]

    def route_batch(
        self,
        texts: Iterable[str],
        *,
        max_quality_drop: float | None = None,
        large_share: float | None = None,
        threshold: float | None = None,
    ) -> list[RouteDecision]:
        """Decide which model answers each text (one encoder pass for all of them).

        Args and rules as :meth:`route`; ``texts`` is any iterable of str (a generator is
        consumed once), but not one str or a mapping.

        Returns:
            One decision per text, in order.
        """
        if isinstance(texts, str):
            raise RoutingError("route_batch takes a sequence of texts; use route() for one str")
        items = text_list(texts, "texts", RoutingError)
        knobs = self._requested_knobs(max_quality_drop, large_share, threshold)
        thr = self.threshold_for(knobs)  # before scoring: a bad knob fails at once
        scored = [i for i, text in enumerate(items) if text.strip()]
        scores = self.score([items[i] for i in scored]) if scored else np.zeros(0)
        by_row = dict(zip(scored, scores.tolist(), strict=True))
        return [self._decision(by_row.get(i), knobs, thr) for i in range(len(items))]

    def route_scored(
        self,
        score: float | None,
        *,
        max_quality_drop: float | None = None,
        large_share: float | None = None,
        threshold: float | None = None,
    ) -> RouteDecision:
        """The decision :meth:`route` makes for a text whose :meth:`score` is ``score``.

        What a caller that scores texts itself (in batches of its own, as
        :class:`~shared_router.routing.serving.RoutingService` does) uses to decide.

        Args:
            score: The text's score, or None for an empty (whitespace-only) text.
            max_quality_drop: As for :meth:`route`.
            large_share: As for :meth:`route`.
            threshold: As for :meth:`route`.

        Returns:
            The decision, equal to ``route(text, ...)`` for that text.

        Raises:
            KnobError: Unless exactly one knob is given.
            CalibrationError: For a calibrated knob on an uncalibrated router.
        """
        knobs = self._requested_knobs(max_quality_drop, large_share, threshold)
        return self._decision(score, knobs, self.threshold_for(knobs))

    def _requested_knobs(
        self, max_quality_drop: float | None, large_share: float | None, threshold: float | None
    ) -> QualityKnobs:
        """The one knob a route call was given; a KnobError naming the default when none."""
        knobs = QualityKnobs(
            max_quality_drop=max_quality_drop, large_share=large_share, threshold=threshold
        )
        if knobs.is_empty:
            raise KnobError(
                f"give exactly one of {', '.join(KNOB_NAMES)}; got none. For the router's "
                f"default use router.route(text, **router.default_knobs.set_knobs()) "
                f"(here {self.default_knobs.set_knobs()})"
            )
        return knobs

    def _decision(self, score: float | None, knobs: QualityKnobs, thr: float) -> RouteDecision:
        knob, value = knobs.set_knobs().popitem()
        if score is None:
            return RouteDecision("large", None, None, knob, knob_value=value, reason=_EMPTY_REASON)
        small = score >= thr
        reason = (
            f"score {score:.4f} {'>=' if small else '<'} threshold {thr:.4f} from "
            f"{knob}={value:g}: "
            + ("the small model is predicted good enough" if small else "needs the large model")
        )
        return RouteDecision(
            "small" if small else "large", score, thr, knob, knob_value=value, reason=reason
        )
