"""HybridLLM with ``live=``: shadow calls off the caller's path, live calibration in the record.

The same contract as ChatHybrid's (tests/langchain_hybrid/test_live_shadowing.py), through
LlamaIndex's entry points: the router is a stand-in that always scores 0.9, the models are
stand-ins for remote ones; a shadow model that blocks or raises never holds or fails a call.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from llamaindex_hybrid import HybridLLM, ModelPrices, RoutingEvent
from shared_router.errors import ConfigurationError
from shared_router.live.costs import ShadowCosts
from shared_router.live.judges import CallableJudge, PointwiseJudge, ShadowCase
from shared_router.live.serving_loop import live_loop
from shared_router.live.serving_stats import LiveServingStats
from shared_router.live.settings import LiveSettings
from shared_router.live.store import open_store
from shared_router.pipeline.quality_lexical import MatchMetric
from tests.fixed_router import FixedRouter
from tests.llamaindex_hybrid.stand_ins import EventLog, StandInLLM
from tests.shared_router.live_serving_support import (
    check_pickled_tasks_share_one_loop,
    planted_rows,
    settings_for,
)

QUESTION = "What is 2 + 2?"
CHAT = [ChatMessage(role=MessageRole.USER, content=QUESTION)]


class Gate:
    """An answer function that waits until :attr:`opened` is set (:attr:`entered`: one waits)."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()

    def __call__(self, text: str) -> str:
        self.entered.set()
        self.opened.wait()
        return "[large] answered"


def _judge(case: ShadowCase) -> tuple[float, float]:
    return float("[small]" in case.small_answer), float("[large]" in case.large_answer)


def _settings(tmp_path: Path, **changes: Any) -> LiveSettings:
    """The core tests' settings, judged by which model's answer each answer is."""
    return settings_for(
        tmp_path, **{"judge": CallableJudge(_judge), "keep_answers": True} | changes
    )


def _llm(large: StandInLLM, live: LiveSettings, **fields: Any) -> HybridLLM:
    return HybridLLM(
        small=StandInLLM(name="small"),
        large=large,
        live=live,
        **({"router": FixedRouter("small"), "threshold": 0.5} | fields),
    )


def test_a_blocking_shadow_model_never_holds_the_caller(tmp_path: Path) -> None:
    gate = Gate()
    settings = _settings(tmp_path)
    llm = _llm(StandInLLM(name="large", answer=gate), settings)
    try:
        response = llm.chat(CHAT)
        assert gate.entered.wait(10)  # the shadow call has started, and is blocked
        assert response.message.content == "[small] answered"
        assert response.additional_kwargs["routing"]["model"] == "small"
        assert llm.complete(QUESTION).text == "[small] answered"
        streamed = list(llm.stream_chat(CHAT))
        assert streamed[-1].message.content == "[small] answered"
        assert asyncio.run(llm.achat(CHAT)).message.content == "[small] answered"
        assert not gate.opened.is_set()  # every call above returned while it was blocked
        live = llm.stats.live
        assert (live.calls, live.shadowed, live.labelled) == (4, 4, 0)
    finally:
        gate.opened.set()
    assert live_loop(settings).drain(timeout=30)
    stats = llm.stats
    assert isinstance(stats, LiveServingStats)
    assert (stats.calls, stats.small, stats.live.labelled, stats.live.rows_written) == (4, 4, 4, 4)
    rows = open_store(settings.store).rows()  # type: ignore[arg-type]
    assert {(r.row.small_answer, r.row.large_answer) for r in rows} == {
        ("[small] answered", "[large] answered")
    }
    assert {(r.row.small_quality, r.row.large_quality, r.row.text) for r in rows} == {
        (1.0, 1.0, QUESTION)
    }


def test_a_raising_shadow_model_is_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    llm = _llm(StandInLLM(name="large", fail_with="provider down"), settings)
    with caplog.at_level(logging.WARNING, logger="shared_router.live.shadow"):
        assert llm.chat(CHAT).message.content == "[small] answered"
        assert live_loop(settings).drain(timeout=30)
    live = llm.stats.live
    assert (live.shadowed, live.shadow_errors, live.labelled, live.rows_written) == (1, 1, 0, 0)
    assert "shadow call" in caplog.text and "provider down" in caplog.text
    assert llm.stats.failed == 0 and llm.stats.calls == 1


def test_a_full_shadow_queue_drops_the_work_and_counts_it(tmp_path: Path) -> None:
    gate = Gate()
    settings = _settings(tmp_path, queue_size=1, workers=1)
    llm = _llm(StandInLLM(name="large", answer=gate), settings)
    try:
        assert llm.chat(CHAT).message.content == "[small] answered"
        assert gate.entered.wait(10)  # the one worker is busy with the first shadow call
        answers = [llm.complete(QUESTION).text for _ in range(3)]
        assert answers == ["[small] answered"] * 3
        live = llm.stats.live
        assert (live.calls, live.shadowed, live.dropped) == (4, 2, 2)
    finally:
        gate.opened.set()
    assert live_loop(settings).drain(timeout=30)
    assert llm.stats.live.labelled == 2


def test_shadow_and_judge_calls_are_priced_in_stats(tmp_path: Path) -> None:
    settings = _settings(tmp_path, costs=ShadowCosts(small=0.1, large=1.0, judge=0.05))
    llm = _llm(StandInLLM(name="large"), settings)
    llm.chat(CHAT)
    assert live_loop(settings).drain(timeout=30)
    live = llm.stats.live
    assert live.shadow_cost == pytest.approx(1.05)
    assert live.cost_saved_net == pytest.approx(1.0 - 0.1 - 1.05)


def test_with_prices_the_live_costs_are_priced_per_token_like_stats(tmp_path: Path) -> None:
    settings = _settings(tmp_path)  # no costs: the model's prices price the live traffic
    large_prices = ModelPrices(input_per_million=10.0, output_per_million=30.0)
    prices = {"small": ModelPrices(1.0, 2.0), "large": large_prices}
    llm = _llm(StandInLLM(name="large"), settings, prices=prices)
    assert llm.chat(CHAT).message.content == "[small] answered"
    assert [r.delta for r in llm.stream_complete(QUESTION)] == ["[small]", " answered"]
    assert live_loop(settings).drain(timeout=30)
    stats, live = llm.stats, llm.stats.live
    # each shadow call is the stand-in's "[large] answered": 10 prompt tokens, 2 completion
    shadow_cost = 2 * large_prices.cost(10, 2)
    assert live.labelled == 2 and live.shadow_cost == pytest.approx(shadow_cost)
    assert stats.cost_saved is not None and stats.cost_saved > 0
    assert live.cost_saved_net == pytest.approx(stats.cost_saved - shadow_cost)


def test_a_reference_answer_reaches_the_judge_and_no_model(tmp_path: Path) -> None:
    settings = _settings(tmp_path, judge=PointwiseJudge(MatchMetric(mode="exact")))
    small, large = StandInLLM(name="small"), StandInLLM(name="large")
    llm = HybridLLM(
        small=small, large=large, router=FixedRouter("small"), threshold=0.5, live=settings
    )
    assert llm.chat(CHAT, reference="[large] answered").message.content == "[small] answered"
    assert llm.complete(QUESTION, reference="[small] answered").text == "[small] answered"
    llm.chat(CHAT)  # no reference: the match judge cannot score it, counted
    assert live_loop(settings).drain(timeout=30)
    rows = open_store(settings.store).rows()  # type: ignore[arg-type]
    qualities = sorted((r.row.small_quality, r.row.large_quality) for r in rows)
    assert qualities == [(0.0, 1.0), (1.0, 0.0)]  # each scored against its own reference
    assert (llm.stats.live.labelled, llm.stats.live.judge_errors) == (2, 1)
    assert all("reference" not in call["kwargs"] for call in small.calls + large.calls)
    with pytest.raises(ConfigurationError, match="reference must be the reference answer"):
        llm.chat(CHAT, reference=["a list"])


def test_a_reference_block_reaches_the_judge_from_a_real_query_engine(
    tmp_path: Path, embed_model: Any
) -> None:
    settings = _settings(tmp_path, judge=PointwiseJudge(MatchMetric(mode="exact")))
    llm = _llm(StandInLLM(name="large"), settings)
    index = VectorStoreIndex.from_documents(
        [Document(text="2 + 2 is 4."), Document(text="Paris is the capital of France.")],
        embed_model=embed_model,
    )
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    with llm.reference("[large] answered"):
        engine.query(QUESTION)
        llm.chat(CHAT, reference="[small] answered")  # a per-call reference wins
    llm.chat(CHAT)  # outside the block: no reference, counted
    assert live_loop(settings).drain(timeout=30)
    rows = open_store(settings.store).rows()  # type: ignore[arg-type]
    qualities = sorted((r.row.small_quality, r.row.large_quality) for r in rows)
    assert qualities[-1] == (1.0, 0.0) and set(qualities[:-1]) == {(0.0, 1.0)}
    assert llm.stats.live.judge_errors == 1
    with (
        pytest.raises(ConfigurationError, match="reference answer as a string"),
        llm.reference(None),  # type: ignore[arg-type]
    ):
        pass


def test_max_quality_drop_routes_at_the_live_calibration_and_says_so(
    tmp_path: Path, events: EventLog
) -> None:
    settings = _settings(tmp_path, shadow_rate=0.0)
    open_store(settings.store).append(planted_rows(400))  # type: ignore[arg-type]
    llm = HybridLLM(
        small=StandInLLM(name="small"),
        large=StandInLLM(name="large"),
        router=FixedRouter("small"),
        max_quality_drop=0.05,
        live=settings,
    )
    first = llm.chat(CHAT).additional_kwargs["routing"]
    assert (first["model"], first["calibration"], first["calibration_rows"]) == (
        "large",
        "prior",
        0,
    )
    assert live_loop(settings).drain(timeout=30)
    response = llm.chat(CHAT)
    routing = response.additional_kwargs["routing"]
    assert response.message.content == "[small] answered"
    assert (routing["model"], routing["calibration"], routing["calibration_rows"]) == (
        "small",
        "live",
        400,
    )
    assert routing["knob"] == "max_quality_drop (live)" and routing["drop_bound"] <= 0.05
    event = events.of(RoutingEvent)[-1]
    assert (event.calibration_source, event.calibration_rows) == ("live", 400)
    assert event.drop_bound == routing["drop_bound"]
    live = llm.stats.live
    assert (live.calibration, live.calibration_rows) == ("live", 400)


def test_live_is_checked_and_copies_share_the_loop(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="live must be None or a LiveSettings"):
        _llm(StandInLLM(name="large"), {"store": "live.sqlite"})  # type: ignore[arg-type]
    settings = _settings(tmp_path)
    llm = _llm(StandInLLM(name="large"), settings)
    copied = llm.model_copy(update={"threshold": 0.4})
    assert copied.live is settings
    llm.chat(CHAT)
    copied.chat(CHAT)
    assert live_loop(settings).drain(timeout=30)
    assert llm.stats.live.labelled == copied.stats.live.labelled == 2
    assert "live" not in llm.to_dict()


def test_models_unpickled_in_one_process_share_one_loop(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    llm = _llm(  # a real router: it unpickles as this process's one router
        StandInLLM(name="large"), settings, router="default", threshold=0.0
    )
    llm.chat(CHAT)
    check_pickled_tasks_share_one_loop(
        llm, lambda m: m.chat(CHAT).message.content, "[small] answered"
    )
