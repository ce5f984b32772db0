"""How the serving front end consults a live calibration: the hook and the decision it makes.

A :class:`~shared_router.routing.serving.RoutingService` made with ``live=`` asks the hook
(:class:`LiveHook`, implemented by :class:`shared_router.live.serving_loop.LiveLoop`) two
things per call: which router routes now (:meth:`LiveHook.router_for`: the loaded one until a
retrained version is swapped in) and, for a ``max_quality_drop`` knob, which threshold holds
the promise on the live rows (:meth:`LiveHook.threshold_for`). :func:`at_live_threshold` turns
the router's decision at that threshold into the call's decision. Both answers are cheap and
touch no store: the live loop rebuilds them off the caller's path. After a call has
answered, the adapters offer it to the hook for shadowing (:meth:`LiveHook.offer`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shared_router.routing.accounting import ModelPrices, TokenUsage
from shared_router.types import ModelChoice, RouteDecision

if TYPE_CHECKING:
    from shared_router.routing.router import Router
    from shared_router.routing.serving import Routed

__all__ = ["LIVE_KNOB", "LiveHook", "LiveLevel", "ShadowAnswer", "at_live_threshold"]

LIVE_KNOB = "max_quality_drop (live)"
"""The ``knob`` of a decision whose threshold a live calibration chose."""


@dataclass(frozen=True)
class ShadowAnswer:
    """What a shadow call returns when it knows its token usage (else it returns the text).

    Attributes:
        text: The other model's answer.
        usage: The tokens the call used, which ``shared_router.live.costs.TokenCosts``
            prices; None where the provider reported none.
    """

    text: str
    usage: TokenUsage | None = None


class LiveLevel(Protocol):
    """A threshold for one quality level and the calibration that chose it.

    :class:`shared_router.live.recalibration.LiveThreshold` is one.
    """

    @property
    def threshold(self) -> float:
        """``score >= threshold`` goes small; above 1 sends everything large."""
        ...

    @property
    def source(self) -> str:
        """``"prior"`` or ``"live"``."""
        ...

    @property
    def n_rows(self) -> int:
        """Live rows the calibration stood on."""
        ...

    @property
    def bound(self) -> float:
        """The upper confidence bound on the quality drop at ``threshold``."""
        ...

    def record_fields(self) -> dict[str, Any]:
        """What a routing record carries about the calibration (JSON-ready)."""
        ...


class LiveHook(Protocol):
    """What a routing service asks its live loop on every call (cheap, thread-safe)."""

    def router_for(self, loaded: Router) -> Router:
        """The router to route with now, given the one the service loaded."""
        ...

    def threshold_for(self, max_quality_drop: float) -> LiveLevel:
        """The threshold for ``max_quality_drop`` on the live rows now."""
        ...

    def offer(
        self,
        routed: Routed,
        answered_by: ModelChoice,
        answer: str,
        call_other: Callable[[], str | ShadowAnswer],
        request_id: str | None = None,
        reference: str | None = None,
        usage: TokenUsage | None = None,
        prices: Mapping[str, ModelPrices] | None = None,
    ) -> bool:
        """Offer an answered call for shadowing (returns at once; True when it was queued).

        ``call_other`` makes the same call on the model that did not answer and returns its
        answer's text (or a :class:`ShadowAnswer` with the tokens it used); it runs off the
        caller's path. ``reference`` is the caller's reference answer for judges that compare
        with one; ``usage`` the tokens the answered call used and ``prices`` the offering
        model's token prices, to price the call and its shadow work.
        """
        ...


def at_live_threshold(
    decision: RouteDecision, level: LiveLevel, max_quality_drop: float
) -> RouteDecision:
    """The decision at the live threshold, from the router's decision at ``min(1, threshold)``.

    A threshold above 1 (nothing qualifies) sends the call large while keeping its score. A
    decision without a score (the router did not score the text) is returned as it is.

    Args:
        decision: The router's decision at ``min(1.0, level.threshold)``.
        level: The live threshold and its calibration.
        max_quality_drop: The level the caller asked for.

    Returns:
        The decision, with ``knob`` :data:`LIVE_KNOB` and a reason naming the calibration.
    """
    if decision.score is None:
        return decision
    small = decision.score >= level.threshold
    reason = (
        f"score {decision.score:.4f} {'>=' if small else '<'} threshold "
        f"{level.threshold:.4f} from max_quality_drop={max_quality_drop:g} "
        f"({level.source} calibration, {level.n_rows} live rows, bound {level.bound:.4f})"
    )
    return dataclasses.replace(
        decision,
        model="small" if small else "large",
        threshold=level.threshold,
        knob=LIVE_KNOB,
        knob_value=float(max_quality_drop),
        reason=reason,
    )
