"""What the live loop's traffic costs: per call (:class:`ShadowCosts`) or per token.

Both price one call of a model (:meth:`ShadowCosts.call`, :meth:`TokenCosts.call`) and one
judgement (``judge``), for ``stats.live.shadow_cost`` and ``stats.live.cost_saved_net``:

- :class:`ShadowCosts` prices every call of a model the same, in any unit (the replay's
  ``--small-cost`` is one: 1 for a large call);
- :class:`TokenCosts` prices a call by the tokens it used, at the same
  :class:`~shared_router.routing.accounting.ModelPrices` as an adapter's ``prices=``, so the
  live loop's costs are in the currency of ``stats.cost`` and ``stats.cost_saved``. An adapter
  with ``prices=`` and live settings without ``costs`` prices its live traffic this way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from shared_router.errors import ConfigurationError
from shared_router.routing.accounting import ModelPrices, TokenUsage
from shared_router.types import ModelChoice

__all__ = ["LiveCosts", "ShadowCosts", "TokenCosts"]


@dataclass(frozen=True)
class ShadowCosts:
    """The price of one call of each model and of one judgement, in any one unit.

    Attributes:
        small: One call of the small model.
        large: One call of the large model.
        judge: One judgement (0 for a metric that calls no model).
    """

    small: float = 0.1
    large: float = 1.0
    judge: float = 0.0

    def __post_init__(self) -> None:
        for name in ("small", "large", "judge"):
            _check_price(f"ShadowCosts.{name}", getattr(self, name))

    def call(self, model: ModelChoice, usage: TokenUsage | None = None) -> float:
        """The price of one call of ``model`` (its tokens do not change it)."""
        return self.small if model == "small" else self.large


@dataclass(frozen=True)
class TokenCosts:
    """Token prices of both models, and the price of one judgement in the same currency.

    Attributes:
        small: The small model's token prices.
        large: The large model's token prices.
        judge: One judgement (0 for a metric that calls no model).
    """

    small: ModelPrices
    large: ModelPrices
    judge: float = 0.0

    def __post_init__(self) -> None:
        for name in ("small", "large"):
            value = getattr(self, name)
            if not isinstance(value, ModelPrices):
                raise ConfigurationError(
                    f"TokenCosts.{name} must be a ModelPrices(input_per_million=..., "
                    f"output_per_million=...), got {type(value).__name__}"
                )
        _check_price("TokenCosts.judge", self.judge)

    @classmethod
    def from_prices(cls, prices: Mapping[str, ModelPrices], judge: float = 0.0) -> TokenCosts:
        """The costs of an adapter's ``prices={"small": ..., "large": ...}``."""
        return cls(prices["small"], prices["large"], judge)

    def call(self, model: ModelChoice, usage: TokenUsage | None = None) -> float:
        """The price of one call of ``model`` that used ``usage`` (0 without a count)."""
        if usage is None:
            return 0.0
        prices = self.small if model == "small" else self.large
        return prices.cost(usage.input_tokens, usage.output_tokens)


LiveCosts = ShadowCosts | TokenCosts
"""How the live loop prices calls: per call or per token."""


def _check_price(name: str, value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value >= 0)
    ):
        raise ConfigurationError(f"{name} must be a finite number >= 0, got {value!r}")
