"""Streaming, async calls, fallbacks while streaming, and traces of the inner call."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk

from langchain_hybrid import ChatHybrid
from tests.langchain_hybrid.conftest import EASY, HARD
from tests.langchain_hybrid.stand_ins import StandInChatModel


class _ChatStarts(BaseCallbackHandler):
    """Records every chain and chat model run that starts: (run id, parent run id, tags)."""

    def __init__(self) -> None:
        self.starts: list[tuple[UUID, UUID | None, list[str]]] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.starts.append((run_id, parent_run_id, tags or []))

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.starts.append((run_id, parent_run_id, tags or []))


def _merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    return merged


def test_stream_passes_tokens_through_and_ends_with_the_routing(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5)

    chunks = list(llm.stream(EASY))
    invoked = llm.invoke(EASY)

    assert len(chunks) == len(f"small-model answers: {EASY}".split()) + 1
    assert [("routing" in c.response_metadata) for c in chunks] == [False] * (len(chunks) - 1) + [
        True
    ]
    assert [c.chunk_position for c in chunks].count("last") == 1
    assert chunks[-1].chunk_position == "last"
    merged = _merge(chunks)
    assert merged.text == invoked.text
    assert merged.usage_metadata == invoked.usage_metadata
    assert merged.response_metadata["model_name"] == "small-model"
    routing = merged.response_metadata["routing"]
    timings = {key: routing[key] for key in ("router_ms", "router_queue_ms", "router_compute_ms")}
    assert routing == {**invoked.response_metadata["routing"], **timings}
    assert llm.stats.input_tokens["small"] == 2 * invoked.usage_metadata["input_tokens"]


def test_a_stream_falls_back_when_the_small_model_fails_before_its_first_chunk(
    large: StandInChatModel, planted_router: Any
) -> None:
    small = StandInChatModel(model="small-model", error=ConnectionError("refused"))
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.0)

    merged = _merge(list(llm.stream(EASY)))

    assert merged.text == f"large-model answers: {EASY}"
    routing = merged.response_metadata["routing"]
    assert (routing["model"], routing["fallback"]) == ("large", True)
    assert routing["reason"].startswith("small model failed (ConnectionError: refused)")


def test_a_stream_that_fails_after_its_first_chunk_raises(
    large: StandInChatModel, planted_router: Any
) -> None:
    small = StandInChatModel(
        model="small-model", error=ConnectionError("reset"), fail_after_chunks=2
    )
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.0)
    received: list[AIMessageChunk] = []

    with pytest.raises(ConnectionError, match="reset"):
        for chunk in llm.stream(EASY):
            received.append(chunk)

    assert "".join(c.text for c in received) == "small-model answers: "
    assert large.calls == []
    assert llm.stats.calls == 0


async def test_async_calls_route_and_fall_back_like_sync_ones(
    large: StandInChatModel, planted_router: Any
) -> None:
    small = StandInChatModel(model="small-model")
    broken = StandInChatModel(model="small-model", error=ConnectionError("overloaded"))
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5)
    falling = ChatHybrid(small=broken, large=large, router=planted_router, threshold=0.5)

    easy, hard = await llm.abatch([EASY, HARD])
    streamed = _merge([chunk async for chunk in llm.astream(EASY)])
    fallback = await falling.ainvoke(EASY)
    streamed_fallback = _merge([chunk async for chunk in falling.astream(EASY)])

    assert easy.text == streamed.text == f"small-model answers: {EASY}"
    assert hard.response_metadata["routing"]["model"] == "large"
    assert streamed.response_metadata["routing"]["model"] == "small"
    for message in (fallback, streamed_fallback):
        assert message.text == f"large-model answers: {EASY}"
        assert message.response_metadata["routing"]["fallback"] is True


def test_per_call_and_per_chain_levels_reach_streams(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.0)
    careful = llm.with_config(configurable={"threshold": 1.0})

    per_call = _merge(list(llm.stream(EASY, threshold=1.0)))
    per_chain = _merge(list(careful.stream(EASY)))
    events = careful.stream_events(EASY, version="v3")
    list(events)

    assert per_call.response_metadata["routing"]["model"] == "large"
    assert per_chain.response_metadata["routing"]["model"] == "large"
    assert events.output.response_metadata["routing"]["model"] == "large"


async def test_astream_events_show_the_tokens_and_the_routing(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5)

    events = [event async for event in llm.astream_events(HARD, version="v2")]

    tokens = [e["data"]["chunk"].text for e in events if e["event"] == "on_chat_model_stream"]
    (end,) = [e for e in events if e["event"] == "on_chain_end" and e["name"] == "ChatHybrid"]
    assert "".join(tokens) == f"large-model answers: {HARD}"
    assert end["data"]["output"].response_metadata["routing"]["model"] == "large"


def test_streaming_true_makes_invoke_stream_from_the_chosen_model(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5, streaming=True)
    tokens: list[str] = []

    class _Tokens(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            tokens.append(token)

    answer = llm.invoke(EASY, config={"callbacks": [_Tokens()]})

    assert "".join(tokens) == answer.text == f"small-model answers: {EASY}"
    assert answer.response_metadata["routing"]["model"] == "small"


def test_the_inner_call_is_a_child_run_tagged_with_the_model(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5)
    invoked, events = _ChatStarts(), _ChatStarts()

    llm.invoke(HARD, config={"callbacks": [invoked], "tags": ["my-chain"]})
    list(llm.stream_events(EASY, version="v3", config={"callbacks": [events]}))

    (outer, outer_parent, outer_tags), (inner, inner_parent, inner_tags) = invoked.starts
    assert outer_parent is None and inner_parent == outer
    assert "my-chain" in outer_tags
    assert {"my-chain", "hybrid:large"} <= set(inner_tags)
    (outer, _, _), (_, inner_parent, inner_tags) = events.starts
    assert inner_parent == outer and "hybrid:small" in inner_tags
