"""ChatHybrid inside agents, chains and tracers: each token once, nested runs, usage once.

The chosen model's run is a child of ChatHybrid's run in every mode (invoke, stream, astream,
astream_events, inside a chain, with tools bound); streamed tokens reach handlers once;
LangChain's usage callback counts each call once; ChatHybrid's run carries the decision.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.messages import AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool

from langchain_hybrid import ChatHybrid
from tests.langchain_hybrid.conftest import EASY, HARD
from tests.langchain_hybrid.run_recorder import RunRecorder
from tests.langchain_hybrid.stand_ins import StandInChatModel

PROMPT = ChatPromptTemplate.from_messages([("human", "{question}")])


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@pytest.fixture
def llm(small: StandInChatModel, large: StandInChatModel, planted_router: Any) -> ChatHybrid:
    """ChatHybrid over the two stand-ins, routed by the planted router."""
    return ChatHybrid(small=small, large=large, router=planted_router)


def test_agent_message_stream_yields_each_token_once(llm: ChatHybrid) -> None:
    agent = create_agent(llm, tools=[])
    pieces = [
        chunk.text
        for chunk, _ in agent.stream({"messages": [("human", EASY)]}, stream_mode="messages")
        if isinstance(chunk, AIMessageChunk)
    ]
    assert "".join(pieces) == f"small-model answers: {EASY}"


def test_agent_with_tools_streams_each_token_once(llm: ChatHybrid) -> None:
    agent = create_agent(llm, tools=[add])
    texts = [
        chunk.text
        for chunk, _ in agent.stream(
            {"messages": [("human", "Use add on 2 and 3. What is 2 + 3?")]},
            stream_mode="messages",
        )
        if isinstance(chunk, AIMessageChunk)
    ]
    assert "".join(texts) == "small-model read the tool result: 5"


async def test_chain_astream_events_v2_emit_each_token_once(llm: ChatHybrid) -> None:
    chain = PROMPT | llm | StrOutputParser()
    streamed = [
        event["data"]["chunk"].text
        async for event in chain.astream_events({"question": EASY}, version="v2")
        if event["event"] == "on_chat_model_stream"
    ]
    assert "".join(streamed) == f"small-model answers: {EASY}"


@pytest.mark.parametrize("mode", ["invoke", "stream", "streaming_invoke"])
def test_token_callbacks_see_each_token_once(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any, mode: str
) -> None:
    llm = ChatHybrid(
        small=small, large=large, router=planted_router, streaming=mode == "streaming_invoke"
    )
    recorder = RunRecorder()
    chain = PROMPT | llm
    config: Any = {"callbacks": [recorder]}
    if mode == "stream":
        list(chain.stream({"question": EASY}, config))
    else:
        chain.invoke({"question": EASY}, config)
    expected = "" if mode == "invoke" else f"small-model answers: {EASY}"
    assert recorder.tokens == expected


@pytest.mark.parametrize("mode", ["invoke", "stream", "ainvoke", "astream"])
async def test_handlers_given_to_chat_hybrid_see_the_chosen_models_run(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any, mode: str
) -> None:
    """``ChatHybrid(callbacks=[h])`` sees what ``ChatOpenAI(callbacks=[h])`` would: the chat
    model's run and its tokens, once, even when the same handler is also the call's."""
    recorder = RunRecorder()
    llm = ChatHybrid(small=small, large=large, router=planted_router, callbacks=[recorder])
    config: Any = {"callbacks": [recorder]} if mode == "invoke" else {}
    if mode == "invoke":
        llm.invoke(EASY, config)
    elif mode == "stream":
        list(llm.stream(EASY))
    elif mode == "ainvoke":
        await llm.ainvoke(EASY)
    else:
        [chunk async for chunk in llm.astream(EASY)]
    hybrid, chosen = recorder.runs
    assert (hybrid.kind, hybrid.name) == ("chain", "ChatHybrid")
    assert chosen.kind == "chat_model" and chosen.parent_run_id == hybrid.run_id
    assert "hybrid:small" in chosen.tags
    streamed = mode in ("stream", "astream")
    assert recorder.tokens == (f"small-model answers: {EASY}" if streamed else "")


@pytest.mark.parametrize("mode", ["invoke", "stream", "ainvoke", "astream", "astream_events"])
async def test_chosen_model_run_is_a_child_of_chat_hybrid_in_a_chain_with_tools(
    llm: ChatHybrid, mode: str
) -> None:
    recorder = RunRecorder()
    chain = PROMPT | llm.bind_tools([add])
    config: Any = {"callbacks": [recorder]}
    question = {"question": HARD}
    if mode == "invoke":
        chain.invoke(question, config)
    elif mode == "stream":
        list(chain.stream(question, config))
    elif mode == "ainvoke":
        await chain.ainvoke(question, config)
    elif mode == "astream":
        [chunk async for chunk in chain.astream(question, config)]
    else:
        [event async for event in chain.astream_events(question, config, version="v2")]
    (hybrid,) = recorder.named("ChatHybrid")
    (inner,) = recorder.tagged("hybrid:large")
    assert inner.kind == "chat_model"
    assert inner.parent_run_id == hybrid.run_id
    assert hybrid.parent_run_id is not None  # inside the chain's run


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_usage_callback_counts_each_call_once(llm: ChatHybrid, mode: str) -> None:
    with get_usage_metadata_callback() as usage:
        if mode == "invoke":
            message = llm.invoke(EASY)
        else:
            chunks = list(llm.stream(EASY))
            message = chunks[0]
            for chunk in chunks[1:]:
                message = message + chunk
    assert message.usage_metadata is not None
    assert usage.usage_metadata == {"small-model": message.usage_metadata}


def test_routing_decision_is_in_chat_hybrid_run_metadata(llm: ChatHybrid) -> None:
    recorder = RunRecorder()
    message = llm.invoke(HARD, {"callbacks": [recorder]})
    (hybrid,) = recorder.named("ChatHybrid")
    record = message.response_metadata["routing"]
    assert hybrid.metadata["hybrid_model"] == "large"
    assert hybrid.metadata["hybrid_score"] == pytest.approx(record["score"])
    assert hybrid.metadata["hybrid_threshold"] == pytest.approx(record["threshold"])
    assert hybrid.metadata["hybrid_knob"] == record["knob"]
    assert hybrid.metadata["hybrid_router"] == record["router"]
    assert hybrid.metadata["hybrid_fallback"] is False
    assert "hybrid_calibration" in hybrid.metadata
