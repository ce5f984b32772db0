"""HybridLLM as a LlamaIndex LLM: delegation, routing records, knobs, fallbacks, events."""

from __future__ import annotations

import asyncio
import json
import threading
import warnings
from types import SimpleNamespace
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)
from pydantic import ValidationError

from llamaindex_hybrid import HybridLLM, ModelPrices, RoutingEvent
from llamaindex_hybrid._responses import token_usage
from shared_router.errors import ConfigurationError, EmptyInputError, KnobError
from shared_router.routing.text import routing_text
from tests.conftest import ROUTING_RECORD_KEYS
from tests.llamaindex_hybrid.stand_ins import EASY, HARD, StandInLLM

ENTRY_POINTS = [
    "chat",
    "stream_chat",
    "achat",
    "astream_chat",
    "complete",
    "stream_complete",
    "acomplete",
    "astream_complete",
]


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


async def call(llm: HybridLLM, method: str, text: str) -> list[Any]:
    """Call one entry point and return every response (each chunk for streams)."""
    arg: Any = text if "complete" in method else user(text)
    result = getattr(llm, method)(arg)
    if method.startswith("astream"):
        return [chunk async for chunk in await result]
    if method.startswith("stream"):
        return list(result)
    return [await result] if method.startswith("a") else [result]


def text_of(response: Any) -> str:
    return response.text if hasattr(response, "text") else response.message.content


@pytest.fixture
def hybrid(small: StandInLLM, large: StandInLLM, planted_router: Any) -> HybridLLM:
    return HybridLLM(small, large, router=planted_router, threshold=0.5)


@pytest.mark.parametrize("method", ENTRY_POINTS)
@pytest.mark.parametrize(("text", "expected"), [(EASY, "small"), (HARD, "large")])
async def test_every_entry_point_delegates_to_the_routed_model_with_a_record(
    hybrid: HybridLLM,
    small: StandInLLM,
    large: StandInLLM,
    planted_router: Any,
    method: str,
    text: str,
    expected: str,
) -> None:
    responses = await call(hybrid, method, text)

    chosen, other = (small, large) if expected == "small" else (large, small)
    assert [c["method"] for c in chosen.calls] == [method]
    assert chosen.texts == [text]
    assert other.calls == []
    assert text_of(responses[-1]) == f"[{expected}] answered"
    for response in responses:
        record = response.additional_kwargs["routing"]
        assert set(record) == ROUTING_RECORD_KEYS
        assert record["model"] == expected
        assert record["model_name"] == expected
        assert record["score"] == pytest.approx(planted_router.score(text)[0])
        assert (record["threshold"], record["knob"], record["fallback"]) == (
            0.5,
            "threshold",
            False,
        )
        assert record["router"] == "planted-test-router"
    stats = hybrid.stats
    assert (stats.calls, getattr(stats, expected)) == (1, 1)
    assert stats.output_tokens[expected] == 2  # "[name] answered", reported on the last chunk


def test_metadata_is_what_both_models_allow(planted_router: Any) -> None:
    small = StandInLLM(name="s", context_window=8000, num_output=512, function_calling=False)
    large = StandInLLM(name="l", context_window=128_000, num_output=4096)
    meta = HybridLLM(small, large, router=planted_router).metadata
    assert (meta.context_window, meta.num_output) == (8000, 512)
    assert meta.is_function_calling_model is True  # calls with tools go to the large model
    assert meta.is_chat_model is True
    assert meta.model_name == "HybridLLM(s, l)"

    unknown_output = StandInLLM(name="s", num_output=-1, chat_model=False)
    meta = HybridLLM(unknown_output, large, router=planted_router).metadata
    assert (meta.num_output, meta.is_chat_model, meta.is_function_calling_model) == (
        4096,
        False,
        True,
    )


def test_to_dict_and_class_name(hybrid: HybridLLM) -> None:
    data = hybrid.to_dict()
    assert HybridLLM.class_name() == data["class_name"] == "HybridLLM"
    assert (data["small"]["class_name"], data["small"]["name"]) == ("StandInLLM", "small")
    assert data["large"]["name"] == "large"
    assert (data["threshold"], data["max_quality_drop"], data["fallback_to_large"]) == (
        0.5,
        None,
        True,
    )
    assert json.loads(hybrid.to_json())["question_variables"] == ["query_str", "question", "query"]


def test_two_knobs_or_a_bad_one_fail_clearly(small: StandInLLM, large: StandInLLM) -> None:
    with pytest.raises(KnobError, match="at most one"):
        HybridLLM(small, large, max_quality_drop=0.01, threshold=0.5)
    with pytest.raises(KnobError, match="large_share"):
        HybridLLM(small, large, large_share=1.5)


def test_a_misspelt_argument_is_an_error_and_an_unknown_one_a_warning(
    small: StandInLLM, large: StandInLLM
) -> None:
    with pytest.raises(ConfigurationError, match="got max_qualty_drop=.*mean max_quality_drop\\?"):
        HybridLLM(small, large, max_qualty_drop=0.05)
    with pytest.warns(UserWarning, match="HybridLLM ignores temperature: set provider") as warned:
        HybridLLM(small, large, temperature=0.0)
    assert warned[0].filename == __file__  # it points at the line that built the model
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # LlamaIndex's own fields pass without a word
        HybridLLM(small, large, system_prompt="Be brief.", callback_manager=CallbackManager())


def test_a_model_that_is_not_a_llamaindex_llm_is_named_in_the_error(large: StandInLLM) -> None:
    fake_chat = pytest.importorskip("langchain_core.language_models.fake_chat_models")
    chat_model = fake_chat.FakeListChatModel(responses=["4"])
    with pytest.raises(ConfigurationError, match="small must be a LlamaIndex LLM") as raised:
        HybridLLM(chat_model, large)  # pydantic's "Input should be a valid dictionary" before
    assert "got FakeListChatModel" in str(raised.value)
    assert "a LangChain model: route LangChain models with langchain_hybrid.ChatHybrid" in str(
        raised.value
    )
    with pytest.raises(ConfigurationError, match=r"large must be .*; got str \('gpt-4o'\)\.$"):
        HybridLLM(large, "gpt-4o")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="small must be a LlamaIndex LLM"):
        HybridLLM.model_validate({"small": chat_model, "large": large})


async def test_empty_input_is_a_clear_error(hybrid: HybridLLM, small: StandInLLM) -> None:
    with pytest.raises(EmptyInputError, match="no messages"):
        hybrid.chat([])
    with pytest.raises(EmptyInputError, match="no messages"):
        await hybrid.achat([])
    with pytest.raises(EmptyInputError, match="empty prompt"):
        hybrid.complete("   ")
    assert small.calls == []


def test_formatted_is_passed_on(hybrid: HybridLLM, small: StandInLLM) -> None:
    hybrid.complete(EASY, formatted=True)
    hybrid.complete(EASY)
    assert [call["kwargs"]["formatted"] for call in small.calls] == [True, False]


# -- quality per call / per block -----------------------------------------------------


def test_quality_block_replaces_the_models_own_knob_for_its_calls(
    hybrid: HybridLLM, small: StandInLLM, large: StandInLLM, planted_router: Any
) -> None:
    other = HybridLLM(small, large, router=planted_router, threshold=0.5)
    with hybrid.quality(threshold=0.0):
        inside = hybrid.chat(user(HARD)).additional_kwargs["routing"]
        untouched = other.chat(user(HARD)).additional_kwargs["routing"]
    after = hybrid.chat(user(HARD)).additional_kwargs["routing"]
    assert (inside["model"], inside["threshold"]) == ("small", 0.0)
    assert untouched["model"] == after["model"] == "large"

    with hybrid.quality(max_quality_drop=0.05):
        record = hybrid.chat(user(EASY)).additional_kwargs["routing"]
    expected = planted_router.route(EASY, max_quality_drop=0.05)
    assert (record["knob"], record["model"]) == ("max_quality_drop", expected.model)
    assert record["threshold"] == pytest.approx(expected.threshold)


def test_quality_needs_exactly_one_valid_knob(hybrid: HybridLLM) -> None:
    with pytest.raises(KnobError, match="needs one of"), hybrid.quality():
        pass
    with (
        pytest.raises(KnobError, match="at most one"),
        hybrid.quality(threshold=0.1, large_share=0.2),
    ):
        pass


async def test_quality_block_is_private_to_its_asyncio_task(hybrid: HybridLLM) -> None:
    entered, done = asyncio.Event(), asyncio.Event()

    async def inside() -> str:
        with hybrid.quality(threshold=0.0):
            entered.set()
            await done.wait()
            response = await hybrid.achat(user(HARD))
        return response.additional_kwargs["routing"]["model"]

    async def outside() -> str:
        await entered.wait()
        response = await hybrid.achat(user(HARD))
        done.set()
        return response.additional_kwargs["routing"]["model"]

    assert await asyncio.gather(inside(), outside()) == ["small", "large"]


def test_quality_block_is_private_to_its_thread(hybrid: HybridLLM) -> None:
    entered, done = threading.Event(), threading.Event()
    seen: dict[str, str] = {}

    def outside() -> None:
        entered.wait(timeout=30)
        seen["outside"] = hybrid.chat(user(HARD)).additional_kwargs["routing"]["model"]
        done.set()

    worker = threading.Thread(target=outside)
    worker.start()
    with hybrid.quality(threshold=0.0):
        entered.set()
        done.wait(timeout=30)
        seen["inside"] = hybrid.chat(user(HARD)).additional_kwargs["routing"]["model"]
    worker.join()
    assert seen == {"inside": "small", "outside": "large"}


# -- what of a chat is routed, sticky conversations -------------------------------------


def test_chat_routes_on_the_last_user_turn_or_the_conversation(
    small: StandInLLM, large: StandInLLM, planted_router: Any
) -> None:
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="You are a careful assistant."),
        ChatMessage(role=MessageRole.USER, content=HARD),
        ChatMessage(role=MessageRole.ASSISTANT, content="Here is the memo."),
        ChatMessage(role=MessageRole.USER, content=EASY),
    ]
    last_user = HybridLLM(small, large, router=planted_router, threshold=0.5)
    whole = HybridLLM(
        small, large, router=planted_router, threshold=0.5, routed_text="conversation"
    )
    turns = [(m.role.value, m.content or "") for m in messages]

    record = last_user.chat(messages).additional_kwargs["routing"]
    assert record["score"] == pytest.approx(planted_router.score(EASY)[0])
    record = whole.chat(messages).additional_kwargs["routing"]
    conversation = routing_text(turns, mode="conversation")
    assert record["score"] == pytest.approx(planted_router.score(conversation)[0])


@pytest.mark.parametrize("sticky", [True, False])
def test_sticky_keeps_a_conversation_on_the_large_model(
    small: StandInLLM, large: StandInLLM, planted_router: Any, sticky: bool
) -> None:
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5, sticky=sticky)
    first = [ChatMessage(role=MessageRole.USER, content=HARD)]
    follow_up = [
        *first,
        ChatMessage(role=MessageRole.ASSISTANT, content="Here is the memo."),
        ChatMessage(role=MessageRole.USER, content=EASY),
    ]
    with llm.conversation("session-1"):
        assert llm.chat(first).additional_kwargs["routing"]["model"] == "large"
        record = llm.chat(follow_up).additional_kwargs["routing"]
    with llm.conversation("session-2"):
        other_conversation = llm.chat(user(EASY)).additional_kwargs["routing"]
    assert record["model"] == ("large" if sticky else "small")
    assert ("sticky" in record["reason"]) is sticky
    assert other_conversation["model"] == "small"


# -- fallbacks ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ENTRY_POINTS)
async def test_small_model_failure_falls_back_to_large_visibly(
    large: StandInLLM, planted_router: Any, method: str
) -> None:
    broken = StandInLLM(name="small", fail_with="rate limited")
    llm = HybridLLM(broken, large, router=planted_router, threshold=0.5)
    responses = await call(llm, method, EASY)
    assert [c["method"] for c in broken.calls] == [method]
    assert text_of(responses[-1]) == "[large] answered"
    record = responses[-1].additional_kwargs["routing"]
    assert (record["model"], record["fallback"]) == ("large", True)
    assert record["reason"].startswith(
        "small model failed (ConnectionError: rate limited); the large model answered instead "
        "(routing: score "
    )
    assert record["score"] == pytest.approx(planted_router.score(EASY)[0])
    stats = llm.stats
    assert (stats.calls, stats.small, stats.large, stats.fallbacks) == (1, 0, 1, 1)


async def test_without_fallback_the_small_models_error_surfaces(
    large: StandInLLM, planted_router: Any
) -> None:
    broken = StandInLLM(name="small", fail_with="rate limited")
    llm = HybridLLM(broken, large, router=planted_router, threshold=0.5, fallback_to_large=False)
    with pytest.raises(ConnectionError, match="rate limited"):
        llm.chat(user(EASY))
    with pytest.raises(ConnectionError, match="rate limited"):
        await llm.achat(user(EASY))
    assert large.calls == []


def test_a_failing_large_model_is_not_retried_on_the_small_one(
    small: StandInLLM, planted_router: Any
) -> None:
    broken = StandInLLM(name="large", fail_with="overloaded")
    llm = HybridLLM(small, broken, router=planted_router, threshold=0.5)
    with pytest.raises(ConnectionError, match="overloaded"):
        llm.chat(user(HARD))
    assert small.calls == []


async def test_a_failure_after_the_first_streamed_chunk_propagates(
    large: StandInLLM, planted_router: Any
) -> None:
    broken = StandInLLM(name="small", fail_with="connection reset", fail_mid_stream=True)
    broken.answer = lambda text: "two words"
    llm = HybridLLM(broken, large, router=planted_router, threshold=0.5)
    received = []
    with pytest.raises(ConnectionError, match="connection reset"):
        for chunk in llm.stream_chat(user(EASY)):
            received.append(chunk.delta)
    assert received == ["two"]
    assert large.calls == []


# -- accounting and observability ---------------------------------------------------------


def test_prices_give_cost_saved(small: StandInLLM, large: StandInLLM, planted_router: Any) -> None:
    prices = {"small": ModelPrices(1.0, 2.0), "large": ModelPrices(10.0, 20.0)}
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5, prices=prices)
    llm.chat(user(EASY))  # small: 10 prompt tokens, 2 completion tokens
    stats = llm.stats
    assert stats.cost == pytest.approx((10 * 1.0 + 2 * 2.0) / 1e6)
    assert stats.cost_always_large == pytest.approx((10 * 10.0 + 2 * 20.0) / 1e6)
    assert stats.cost_saved == pytest.approx(126 / 1e6)


async def test_callbacks_and_instrumentation_fire_once_per_call(
    small: StandInLLM, large: StandInLLM, planted_router: Any, events: Any
) -> None:
    debug = LlamaDebugHandler()
    llm = HybridLLM(
        small,
        large,
        router=planted_router,
        threshold=0.5,
        callback_manager=CallbackManager([debug]),
    )
    for n, method in enumerate(ENTRY_POINTS, start=1):
        responses = await call(llm, method, EASY)
        # The small model's own callback manager lacks the handler: HybridLLM reports once.
        assert len(debug.get_event_pairs(CBEventType.LLM)) == n
        start, end = (
            (LLMCompletionStartEvent, LLMCompletionEndEvent)
            if "complete" in method
            else (LLMChatStartEvent, LLMChatEndEvent)
        )
        assert events.of(start, "HybridLLM") == []
        assert len(events.of(start, "StandInLLM")) == 1  # the answering model's own events
        (inner_end,) = events.of(end)
        assert "routing" not in inner_end.response.additional_kwargs  # its own, untouched
        (decision,) = events.of(RoutingEvent)
        assert decision.model == responses[-1].additional_kwargs["routing"]["model"] == "small"
        events.events.clear()


async def test_200_concurrent_achat_calls_are_all_answered(
    hybrid: HybridLLM, planted_router: Any
) -> None:
    questions = [f"What is {a} + {b}?" for a in (2, 7, 13, 21, 40) for b in (3, 5, 9, 11)]
    texts = [questions[i % 20] if i % 2 else HARD for i in range(200)]
    responses = await asyncio.gather(*(hybrid.achat(user(text)) for text in texts))
    expected = [d.model for d in planted_router.route_batch(texts, threshold=0.5)]
    models = [r.additional_kwargs["routing"]["model"] for r in responses]
    assert models == expected
    assert {"small", "large"} <= set(models)
    assert all(
        r.message.content == f"[{m}] answered" for r, m in zip(responses, models, strict=True)
    )
    assert hybrid.stats.calls == 200


@pytest.mark.parametrize(
    ("additional_kwargs", "raw", "expected"),
    [
        ({"prompt_tokens": 12, "completion_tokens": 3}, None, (12, 3)),  # OpenAI
        ({}, {"usage": {"prompt_tokens": 7, "completion_tokens": 2}}, (7, 2)),  # Ollama
        ({}, SimpleNamespace(usage=SimpleNamespace(input_tokens=5, output_tokens=9)), (5, 9)),
        ({}, {"content": "no usage"}, (None, None)),
    ],
    ids=["additional_kwargs", "raw-usage-dict", "raw-usage-object", "none"],
)
def test_token_usage_is_read_where_providers_report_it(
    additional_kwargs: dict[str, Any], raw: Any, expected: tuple[int | None, int | None]
) -> None:
    response = ChatResponse(message=ChatMessage(content="x"), raw=raw)
    response.additional_kwargs.update(additional_kwargs)
    assert token_usage(response) == expected


def test_paced_large_share_is_held_on_live_traffic(planted_router: Any) -> None:
    llm = HybridLLM(
        small=StandInLLM(name="s"),
        large=StandInLLM(name="l"),
        router=planted_router,
        large_share=1.0,
        pace_large_share=True,
    )
    response = llm.complete(EASY[0])
    assert response.additional_kwargs["routing"]["model"] == "large"
    assert response.additional_kwargs["routing"]["knob"] == "large_share (paced)"
