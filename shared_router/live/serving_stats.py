"""What ``llm.stats`` shows of the live loop: :class:`LiveStats` beside the routing counters.

With ``live=`` set, an adapter's ``stats`` is a :class:`LiveServingStats`: the routing
service's :class:`~shared_router.routing.accounting.StatsSnapshot` with ``live`` added.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared_router.live.shadow import ShadowStats
from shared_router.routing.accounting import StatsSnapshot

__all__ = ["LiveServingStats", "LiveStats"]


@dataclass(frozen=True)
class LiveStats(ShadowStats):
    """The live loop of a model at one moment: its shadow evaluator's counters and more.

    The counters are :class:`~shared_router.live.shadow.ShadowStats`' (``calls`` are the
    answered calls offered for shadowing: those the router scored). Costs are priced by
    :attr:`LiveSettings.costs <shared_router.live.settings.LiveSettings.costs>`, or per token
    by the model's ``prices=`` (in the currency of ``stats.cost_saved``).

    Attributes:
        cost_saved_net: What routing saved against always-large on the calls offered
            (``calls``), minus ``shadow_cost``.
        calibration: Which calibration chose the last live threshold (``"prior"`` or
            ``"live"``), or None before the first ``max_quality_drop`` call.
        calibration_rows: Live rows that calibration stood on.
        drop_bound: Its upper bound on the quality drop at that threshold, or None.
        router_version: The router version that routes now (None before the first routed
            call starts the loop).
        retrains: Retrainings this process ran (swapped in or not).
        refresh_errors: Refreshes that failed (the store unreachable, a retraining that
            raised); routing went on as before.
    """

    cost_saved_net: float
    calibration: str | None
    calibration_rows: int
    drop_bound: float | None
    router_version: str | None
    retrains: int
    refresh_errors: int


@dataclass(frozen=True)
class LiveServingStats(StatsSnapshot):
    """The routing counters (:class:`StatsSnapshot`) with the live loop's (:class:`LiveStats`).

    Attributes:
        live: The live loop's counters and current calibration.
    """

    live: LiveStats = field(kw_only=True)
