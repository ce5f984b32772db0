"""What a routing service counts: answered and failed calls, tokens, and their cost.

:class:`CallCounters` holds one :class:`~shared_router.routing.serving.RoutingService`'s
counters behind a lock of its own; :attr:`RoutingService.stats
<shared_router.routing.serving.RoutingService.stats>` is their :class:`StatsSnapshot`. With
:class:`ModelPrices` for both models the counters also price each call, and what it would
have cost on the large model.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from shared_router.errors import ConfigurationError
from shared_router.types import ModelChoice

__all__ = ["CallCounters", "ModelPrices", "StatsSnapshot", "TokenUsage"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelPrices:
    """Token prices of one model, in any currency, per million tokens.

    Attributes:
        input_per_million: Price of one million prompt tokens.
        output_per_million: Price of one million completion tokens.
    """

    input_per_million: float
    output_per_million: float

    def __post_init__(self) -> None:
        for name in ("input_per_million", "output_per_million"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigurationError(
                    f"ModelPrices.{name} must be a finite number >= 0 (a price per million "
                    f"tokens, e.g. 0.15), got {value!r}"
                )

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Return the price of one call."""
        return (
            input_tokens * self.input_per_million + output_tokens * self.output_per_million
        ) / 1e6


@dataclass(frozen=True)
class TokenUsage:
    """The tokens one model call used (0 where the provider reported no count).

    Attributes:
        input_tokens: Prompt tokens.
        output_tokens: Completion tokens.
    """

    input_tokens: int = 0
    output_tokens: int = 0

    @classmethod
    def reported(cls, input_tokens: int | None, output_tokens: int | None) -> TokenUsage:
        """The usage a provider reported, counting a missing count as 0."""
        return cls(int(input_tokens or 0), int(output_tokens or 0))


@dataclass(frozen=True)
class StatsSnapshot:
    """Counters of a routing service at one moment.

    Attributes:
        calls: Calls answered.
        small: Calls answered by the small model.
        large: Calls answered by the large model (fallbacks included).
        fallbacks: Calls the large model answered because the small model or the router failed.
        router_errors: Calls on which the router failed.
        input_tokens: Prompt tokens by answering model (``"small"``/``"large"``).
        output_tokens: Completion tokens by answering model.
        cost: Estimated cost of the answered calls, or None without prices.
        cost_always_large: Estimated cost had every call gone to the large model, or None.
        cost_saved: ``cost_always_large - cost``, or None without prices.
        failed: Calls that raised to the caller instead of answering: the answering model
            failed (the large one, or the small one without fallback), or a stream broke
            after its first chunk. They are not in ``calls``.
        unpriced: Answered calls, with prices set, whose model reported no token usage:
            their cost is not in ``cost`` and ``cost_always_large``, which undercount.
    """

    calls: int
    small: int
    large: int
    fallbacks: int
    router_errors: int
    input_tokens: Mapping[str, int]
    output_tokens: Mapping[str, int]
    cost: float | None
    cost_always_large: float | None
    cost_saved: float | None
    failed: int = 0
    unpriced: int = 0

    @property
    def small_share(self) -> float:
        """Share of calls the small model answered (the realised cost advantage)."""
        return self.small / self.calls if self.calls else 0.0


class CallCounters:
    """Thread-safe counters of one routing service's calls, tokens and costs.

    Args:
        prices: ``{"small": ModelPrices, "large": ModelPrices}`` to price the calls, or None
            to count tokens only.
    """

    def __init__(self, prices: Mapping[str, ModelPrices] | None) -> None:
        self._prices = prices
        self._lock = threading.Lock()
        self._counts = {
            "calls": 0,
            "small": 0,
            "large": 0,
            "fallbacks": 0,
            "router_errors": 0,
            "failed": 0,
            "unpriced": 0,
        }
        self._tokens_in = {"small": 0, "large": 0}
        self._tokens_out = {"small": 0, "large": 0}
        self._cost = 0.0
        self._cost_large = 0.0

    def count_answer(
        self, answered_by: ModelChoice, *, fallback: bool, router_failed: bool
    ) -> None:
        """Count one answered call: by whom, as a fallback or not, the router failed or not."""
        with self._lock:
            self._counts["calls"] += 1
            self._counts[answered_by] += 1
            self._counts["fallbacks"] += int(fallback)
            self._counts["router_errors"] += int(router_failed)

    def count_failure(self, *, router_failed: bool) -> None:
        """Count one call that raised to its caller (and whether the router failed on it too)."""
        with self._lock:
            self._counts["failed"] += 1
            self._counts["router_errors"] += int(router_failed)

    def count_tokens(
        self, answered_by: ModelChoice, input_tokens: int | None, output_tokens: int | None
    ) -> None:
        """Add one call's token usage (and its cost, when prices are set).

        A call that reported neither count (both None) adds no tokens; with prices set it
        is counted in ``unpriced``, with a WARNING for the first.
        """
        if input_tokens is None and output_tokens is None:
            if self._prices is not None:
                with self._lock:
                    self._counts["unpriced"] += 1
                    first = self._counts["unpriced"] == 1
                if first:
                    logger.warning(
                        "the %s model reported no token usage for a call, so its cost is not "
                        "counted (stats.unpriced counts these calls; cost and cost_saved "
                        "undercount); prices need a model that reports usage_metadata or "
                        "token counts",
                        answered_by,
                    )
            return
        tokens_in, tokens_out = input_tokens or 0, output_tokens or 0
        with self._lock:
            self._tokens_in[answered_by] += tokens_in
            self._tokens_out[answered_by] += tokens_out
            if self._prices is not None:
                self._cost += self._prices[answered_by].cost(tokens_in, tokens_out)
                self._cost_large += self._prices["large"].cost(tokens_in, tokens_out)

    def snapshot(self) -> StatsSnapshot:
        """A consistent snapshot of the counters."""
        with self._lock:
            priced = self._prices is not None
            return StatsSnapshot(
                calls=self._counts["calls"],
                small=self._counts["small"],
                large=self._counts["large"],
                fallbacks=self._counts["fallbacks"],
                router_errors=self._counts["router_errors"],
                input_tokens=dict(self._tokens_in),
                output_tokens=dict(self._tokens_out),
                cost=self._cost if priced else None,
                cost_always_large=self._cost_large if priced else None,
                cost_saved=self._cost_large - self._cost if priced else None,
                failed=self._counts["failed"],
                unpriced=self._counts["unpriced"],
            )
