"""RoutingService: what both adapters share (knobs, pacing, fallbacks, sticky, stats)."""

from __future__ import annotations

import logging

import pytest

from shared_router.errors import ConfigurationError, KnobError
from shared_router.routing.accounting import ModelPrices
from shared_router.routing.router import Router
from shared_router.routing.serving import RoutingService
from shared_router.types import QualityKnobs
from tests.conftest import EASY_QUERIES, HARD_QUERIES


class FailingRouter:
    """A router whose every decision raises."""

    name = "broken"
    default_knobs = QualityKnobs(threshold=0.5)
    calibration_ = None

    def route(self, text: str, **knobs: float) -> None:
        raise RuntimeError("encoder exploded")


def test_per_call_knob_replaces_the_service_knob(planted_router: Router) -> None:
    service = RoutingService(planted_router, knobs=QualityKnobs(large_share=0.2))
    assert service.resolve_knobs() == QualityKnobs(large_share=0.2)
    assert service.resolve_knobs(QualityKnobs(threshold=0.9)) == QualityKnobs(threshold=0.9)
    assert RoutingService(planted_router).resolve_knobs() == planted_router.default_knobs


def test_decisions_follow_the_router(planted_router: Router) -> None:
    service = RoutingService(planted_router, knobs=QualityKnobs(threshold=0.5))
    easy, hard = service.decide(EASY_QUERIES[0]), service.decide(HARD_QUERIES[0])
    assert (easy.model, hard.model) == ("small", "large")
    assert easy.decision.knob == "threshold" and easy.router_ms > 0


def test_bad_knobs_raise_but_router_failures_fall_back() -> None:
    service = RoutingService(FailingRouter())  # type: ignore[arg-type]
    routed = service.decide("hello")
    assert routed.model == "large" and routed.router_failed
    assert "router failed: RuntimeError: encoder exploded" in routed.decision.reason
    record = service.record(routed, answered_by="large", model_name="big")
    assert record.fallback and record.router == "broken"
    assert service.stats.router_errors == 1 and service.stats.fallbacks == 1
    with pytest.raises(KnobError):
        service.decide("hello", QualityKnobs(threshold=2.0))


def test_paced_large_share_holds_the_share_on_live_traffic(planted_router: Router) -> None:
    service = RoutingService(
        planted_router, knobs=QualityKnobs(large_share=0.5), pace_large_share=True
    )
    traffic = (EASY_QUERIES + HARD_QUERIES) * 6
    decisions = [service.decide(text).decision for text in traffic]
    assert {d.knob for d in decisions} == {"large_share (paced)"}
    late = decisions[len(decisions) // 2 :]
    share_large = sum(d.model == "large" for d in late) / len(late)
    assert 0.35 <= share_large <= 0.65


def test_paced_large_share_of_one_sends_everything_large(planted_router: Router) -> None:
    service = RoutingService(
        planted_router, knobs=QualityKnobs(large_share=1.0), pace_large_share=True
    )
    assert all(service.decide(text).model == "large" for text in EASY_QUERIES * 2)


def test_sticky_conversation_stays_large(planted_router: Router) -> None:
    service = RoutingService(planted_router, knobs=QualityKnobs(threshold=0.5), sticky=True)
    first = service.decide(HARD_QUERIES[0], conversation_key="c1")
    service.record(first, answered_by="large", model_name="big")
    later = service.decide(EASY_QUERIES[0], conversation_key="c1")
    other = service.decide(EASY_QUERIES[0], conversation_key="c2")
    assert later.model == "large" and later.decision.reason.startswith("sticky")
    assert other.model == "small"


def test_prices_give_the_cost_saved(planted_router: Router) -> None:
    prices = {"small": ModelPrices(1.0, 2.0), "large": ModelPrices(10.0, 20.0)}
    service = RoutingService(planted_router, knobs=QualityKnobs(threshold=0.5), prices=prices)
    routed = service.decide(EASY_QUERIES[0])
    record = service.record(routed, answered_by="small", model_name="tiny")
    service.account(record, input_tokens=1_000_000, output_tokens=500_000)
    stats = service.stats
    assert stats.cost == pytest.approx(2.0) and stats.cost_always_large == pytest.approx(20.0)
    assert stats.cost_saved == pytest.approx(18.0) and stats.small_share == 1.0
    with pytest.raises(KnobError, match="'small' and 'large'"):
        RoutingService(planted_router, prices={"small": prices["small"]})


def test_a_call_without_usage_is_counted_unpriced_with_one_warning(
    planted_router: Router, caplog: pytest.LogCaptureFixture
) -> None:
    prices = {"small": ModelPrices(1.0, 2.0), "large": ModelPrices(10.0, 20.0)}
    priced = RoutingService(planted_router, knobs=QualityKnobs(threshold=0.5), prices=prices)
    unpriced = RoutingService(planted_router, knobs=QualityKnobs(threshold=0.5))
    with caplog.at_level(logging.WARNING, logger="shared_router.routing.accounting"):
        for service in (priced, unpriced):
            routed = service.decide(EASY_QUERIES[0])
            record = service.record(routed, answered_by="small", model_name="tiny")
            for _ in range(2):
                service.account(record, input_tokens=None, output_tokens=None)
            service.account(record, input_tokens=1_000_000, output_tokens=None)
    assert (priced.stats.unpriced, priced.stats.cost) == (2, pytest.approx(1.0))
    assert unpriced.stats.unpriced == 0 and unpriced.stats.cost is None
    (warning,) = caplog.records
    assert "small model reported no token usage" in warning.getMessage()


@pytest.mark.parametrize("price", [-1.0, float("nan"), float("inf"), "0.15", True])
def test_a_price_that_is_not_a_finite_number_at_least_0_is_refused(price: object) -> None:
    with pytest.raises(ConfigurationError, match=r"ModelPrices.input_per_million must be a finite"):
        ModelPrices(price, 0.6)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"ModelPrices.output_per_million .* got"):
        ModelPrices(0.15, price)  # type: ignore[arg-type]
