"""ChatHybrid with ``live=``: shadow calls off the caller's path, live calibration in the record.

The router is a stand-in that always scores 0.9 (so no torch is needed); the models are
stand-ins for remote ones. A shadow model that blocks, or raises, never holds or fails the
caller's call: the call returns while the shadow call is still blocked.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.prompts import ChatPromptTemplate
from pydantic import PrivateAttr, ValidationError

from langchain_hybrid import ChatHybrid
from shared_router.errors import ConfigurationError
from shared_router.live.costs import ShadowCosts, TokenCosts
from shared_router.live.judges import CallableJudge, PointwiseJudge, ShadowCase
from shared_router.live.serving_loop import live_loop
from shared_router.live.serving_stats import LiveServingStats
from shared_router.live.settings import LiveSettings
from shared_router.live.store import open_store
from shared_router.pipeline.quality_lexical import MatchMetric
from shared_router.routing.accounting import ModelPrices
from tests.fixed_router import FixedRouter
from tests.langchain_hybrid.run_recorder import RunRecorder
from tests.langchain_hybrid.stand_ins import StandInChatModel
from tests.shared_router.live_serving_support import (
    check_pickled_tasks_share_one_loop,
    planted_rows,
    settings_for,
)

QUESTION = "What is 2 + 2?"
SMALL_ANSWER = f"small-model answers: {QUESTION}"
LARGE_ANSWER = f"large-model answers: {QUESTION}"


class GatedChatModel(StandInChatModel):
    """A stand-in whose calls wait until :attr:`gate` is set (:attr:`entered`: one is waiting)."""

    _gate: threading.Event = PrivateAttr(default_factory=threading.Event)
    _entered: threading.Event = PrivateAttr(default_factory=threading.Event)

    @property
    def gate(self) -> threading.Event:
        return self._gate

    @property
    def entered(self) -> threading.Event:
        return self._entered

    def _reply(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AIMessage:
        self._entered.set()
        self._gate.wait()
        return super()._reply(messages, stop, kwargs)


def _judge(case: ShadowCase) -> tuple[float, float]:
    return float("small-model" in case.small_answer), float("large-model" in case.large_answer)


def _settings(tmp_path: Path, **changes: Any) -> LiveSettings:
    """The core tests' settings, judged by which model's answer each answer is."""
    return settings_for(
        tmp_path, **{"judge": CallableJudge(_judge), "keep_answers": True} | changes
    )


def _llm(small: Any, large: Any, live: LiveSettings, **fields: Any) -> ChatHybrid:
    return ChatHybrid(
        small=small, large=large, router=FixedRouter("small"), threshold=0.5, live=live, **fields
    )


def test_a_blocking_shadow_model_never_holds_the_caller(tmp_path: Path) -> None:
    large = GatedChatModel(model="large-model")
    settings = _settings(tmp_path)
    llm = _llm(StandInChatModel(model="small-model"), large, settings)
    try:
        answer = llm.invoke(QUESTION)
        assert large.entered.wait(10)  # the shadow call has started, and is blocked
        assert answer.content == SMALL_ANSWER
        assert answer.response_metadata["routing"]["model"] == "small"
        streamed = "".join(str(chunk.content) for chunk in llm.stream(QUESTION))
        asynced = asyncio.run(llm.ainvoke(QUESTION))
        assert streamed == SMALL_ANSWER and asynced.content == SMALL_ANSWER
        assert not large.gate.is_set()  # every call above returned while it was blocked
        live = llm.stats.live
        assert (live.calls, live.shadowed, live.labelled, live.pending) == (3, 3, 0, 3)
    finally:
        large.gate.set()
    assert live_loop(settings).drain(timeout=30)
    stats = llm.stats
    assert isinstance(stats, LiveServingStats)
    assert (stats.calls, stats.small, stats.live.labelled, stats.live.rows_written) == (3, 3, 3, 3)
    rows = open_store(settings.store).rows()  # type: ignore[arg-type]
    assert {(r.row.small_answer, r.row.large_answer) for r in rows} == {
        (SMALL_ANSWER, LARGE_ANSWER)
    }
    assert {(r.row.small_quality, r.row.large_quality, r.row.text) for r in rows} == {
        (1.0, 1.0, QUESTION)
    }


def test_a_raising_shadow_model_is_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    broken = StandInChatModel(model="large-model", error=ConnectionError("provider down"))
    llm = _llm(StandInChatModel(model="small-model"), broken, settings)
    with caplog.at_level(logging.WARNING, logger="shared_router.live.shadow"):
        answer = llm.invoke(QUESTION)
        assert answer.content == SMALL_ANSWER
        assert live_loop(settings).drain(timeout=30)
    live = llm.stats.live
    assert (live.shadowed, live.shadow_errors, live.labelled, live.rows_written) == (1, 1, 0, 0)
    assert "shadow call" in caplog.text and "provider down" in caplog.text
    assert llm.stats.failed == 0 and llm.stats.calls == 1


def test_a_judge_that_raises_is_counted_and_the_call_unharmed(tmp_path: Path) -> None:
    def failing(case: ShadowCase) -> tuple[float, float]:
        raise ValueError("judge model returned nothing")

    settings = _settings(tmp_path, judge=CallableJudge(failing))
    llm = _llm(
        StandInChatModel(model="small-model"), StandInChatModel(model="large-model"), settings
    )
    assert llm.invoke(QUESTION).content == SMALL_ANSWER
    assert live_loop(settings).drain(timeout=30)
    assert (llm.stats.live.judge_errors, llm.stats.live.labelled) == (1, 0)


def test_a_full_shadow_queue_drops_the_work_and_counts_it(tmp_path: Path) -> None:
    large = GatedChatModel(model="large-model")
    settings = _settings(tmp_path, queue_size=1, workers=1)
    llm = _llm(StandInChatModel(model="small-model"), large, settings)
    try:
        assert llm.invoke(QUESTION).content == SMALL_ANSWER
        assert large.entered.wait(10)  # the one worker is busy with the first shadow call
        answers = [llm.invoke(QUESTION).content for _ in range(3)]
        assert answers == [SMALL_ANSWER] * 3
        live = llm.stats.live
        assert (live.calls, live.shadowed, live.dropped) == (4, 2, 2)
    finally:
        large.gate.set()
    assert live_loop(settings).drain(timeout=30)
    assert llm.stats.live.labelled == 2


def test_shadow_and_judge_calls_are_priced_in_stats(tmp_path: Path) -> None:
    costs = ShadowCosts(small=0.1, large=1.0, judge=0.05)
    settings = _settings(tmp_path, costs=costs)
    llm = _llm(
        StandInChatModel(model="small-model"), StandInChatModel(model="large-model"), settings
    )
    llm.invoke(QUESTION)
    assert live_loop(settings).drain(timeout=30)
    live = llm.stats.live
    assert live.shadow_cost == pytest.approx(1.05)  # the large shadow call and the judge
    assert live.cost_saved_net == pytest.approx(1.0 - 0.1 - 1.05)


SMALL_PRICES = ModelPrices(input_per_million=1.0, output_per_million=2.0)
LARGE_PRICES = ModelPrices(input_per_million=10.0, output_per_million=30.0)


def test_with_prices_the_live_costs_are_priced_per_token_like_stats(tmp_path: Path) -> None:
    settings = _settings(tmp_path)  # no costs: the model's prices price the live traffic
    small, large = StandInChatModel(model="small-model"), StandInChatModel(model="large-model")
    llm = _llm(small, large, settings, prices={"small": SMALL_PRICES, "large": LARGE_PRICES})
    assert llm.invoke(QUESTION).content == SMALL_ANSWER
    assert "".join(str(chunk.content) for chunk in llm.stream(QUESTION)) == SMALL_ANSWER
    assert live_loop(settings).drain(timeout=30)
    stats, live = llm.stats, llm.stats.live
    assert len(large.calls) == 2  # the two shadow calls
    usage = StandInChatModel(model="large-model").invoke(QUESTION).usage_metadata
    assert usage is not None
    shadow_cost = 2 * LARGE_PRICES.cost(usage["input_tokens"], usage["output_tokens"])
    assert live.shadow_cost == pytest.approx(shadow_cost) and shadow_cost > 0
    assert stats.cost_saved is not None and stats.cost_saved > 0
    assert live.cost_saved_net == pytest.approx(stats.cost_saved - shadow_cost)
    # costs in the settings win over the model's prices
    per_call = _settings(tmp_path / "per-call", costs=ShadowCosts(small=0.1, large=1.0))
    llm = _llm(small, large, per_call, prices={"small": SMALL_PRICES, "large": LARGE_PRICES})
    llm.invoke(QUESTION)
    assert live_loop(per_call).drain(timeout=30)
    assert llm.stats.live.shadow_cost == pytest.approx(1.0)


def test_live_costs_of_another_type_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="LiveSettings.costs must be None, a Shadow"):
        _settings(tmp_path, costs={"small": 0.1})
    with pytest.raises(ConfigurationError, match="TokenCosts.small must be a ModelPrices"):
        TokenCosts(small=0.1, large=LARGE_PRICES)  # type: ignore[arg-type]


def test_a_reference_answer_reaches_the_judge_and_no_model(tmp_path: Path) -> None:
    settings = _settings(tmp_path, judge=PointwiseJudge(MatchMetric(mode="exact")))
    small, large = StandInChatModel(model="small-model"), StandInChatModel(model="large-model")
    llm = _llm(small, large, settings)
    assert llm.invoke(QUESTION, reference=LARGE_ANSWER).content == SMALL_ANSWER
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | llm
    answer = chain.invoke({"question": QUESTION}, config={"metadata": {"reference": SMALL_ANSWER}})
    assert answer.content == SMALL_ANSWER
    events = llm.stream_events(  # v3 runs _stream without the config
        QUESTION, version="v3", config={"metadata": {"reference": SMALL_ANSWER}}
    )
    list(events)
    llm.invoke(QUESTION)  # no reference: the match judge cannot score it, counted
    assert live_loop(settings).drain(timeout=30)
    rows = open_store(settings.store).rows()  # type: ignore[arg-type]
    qualities = sorted((r.row.small_quality, r.row.large_quality) for r in rows)
    assert qualities == [(0.0, 1.0), (1.0, 0.0), (1.0, 0.0)]  # each against its reference
    assert (llm.stats.live.labelled, llm.stats.live.judge_errors) == (3, 1)
    assert all("reference" not in call["kwargs"] for call in small.calls + large.calls)
    with pytest.raises(ConfigurationError, match="reference must be the reference answer"):
        llm.invoke(QUESTION, reference=4)


def test_calls_with_tools_are_not_shadowed(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    llm = _llm(
        StandInChatModel(model="small-model"), StandInChatModel(model="large-model"), settings
    )

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    message = llm.bind_tools([add]).invoke("add 2 and 3")
    assert isinstance(message, AIMessage) and message.tool_calls
    assert llm.stats.live.calls == 0


def test_max_quality_drop_routes_at_the_live_calibration_and_says_so(tmp_path: Path) -> None:
    settings = _settings(tmp_path, shadow_rate=0.0)
    open_store(settings.store).append(planted_rows(400))  # type: ignore[arg-type]
    llm = ChatHybrid(
        small=StandInChatModel(model="small-model"),
        large=StandInChatModel(model="large-model"),
        router=FixedRouter("small"),
        max_quality_drop=0.05,
        live=settings,
    )
    first = llm.invoke(QUESTION).response_metadata["routing"]
    # before the loop has read the rows: no prior table, so the cautious all-large threshold
    assert (first["model"], first["calibration"], first["calibration_rows"]) == (
        "large",
        "prior",
        0,
    )
    assert live_loop(settings).drain(timeout=30)
    recorder = RunRecorder()
    message = llm.invoke(QUESTION, config={"callbacks": [recorder]})
    routing = message.response_metadata["routing"]
    assert message.content == SMALL_ANSWER
    assert (routing["model"], routing["calibration"], routing["calibration_rows"]) == (
        "small",
        "live",
        400,
    )
    assert routing["knob"] == "max_quality_drop (live)" and routing["drop_bound"] <= 0.05
    (run,) = recorder.named("ChatHybrid")
    assert run.metadata["hybrid_calibration_source"] == "live"
    assert run.metadata["hybrid_calibration_rows"] == 400
    assert run.metadata["hybrid_drop_bound"] == routing["drop_bound"]
    live = llm.stats.live
    assert (live.calibration, live.calibration_rows) == ("live", 400)
    assert live.drop_bound == routing["drop_bound"] and live.router_version == routing["router"]
    # a per-call level other than max_quality_drop is not touched
    plain = llm.invoke(QUESTION, threshold=0.5).response_metadata["routing"]
    assert plain["knob"] == "threshold" and "calibration" not in plain


def test_copies_share_the_live_loop(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    llm = _llm(
        StandInChatModel(model="small-model"), StandInChatModel(model="large-model"), settings
    )
    copied = llm.model_copy(update={"threshold": 0.4})
    assert copied.live is settings
    copied.invoke(QUESTION)
    llm.invoke(QUESTION)
    assert live_loop(settings).drain(timeout=30)
    assert llm.stats.live.labelled == copied.stats.live.labelled == 2
    assert (llm.stats.calls, copied.stats.calls) == (1, 1)


def test_live_must_be_live_settings() -> None:
    with pytest.raises(ValidationError, match="live must be None or a LiveSettings"):
        ChatHybrid(
            small=StandInChatModel(model="s"),
            large=StandInChatModel(model="l"),
            live={"store": "live.sqlite"},
        )


def test_models_unpickled_in_one_process_share_one_loop(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    small = FakeListChatModel(responses=[SMALL_ANSWER])  # picklable, as providers' models are
    llm = ChatHybrid(  # a real router: it unpickles as this process's one router
        small=small,
        large=FakeListChatModel(responses=[LARGE_ANSWER]),
        router="default",
        threshold=0.0,
        live=settings,
    )
    llm.invoke(QUESTION)
    check_pickled_tasks_share_one_loop(llm, lambda m: m.invoke(QUESTION).content, SMALL_ANSWER)
