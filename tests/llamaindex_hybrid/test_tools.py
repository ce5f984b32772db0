"""Tool calling through HybridLLM: delegation, forced large, agents."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole, ToolCallBlock
from llama_index.core.llms import MockLLM
from llama_index.core.tools import FunctionTool

from llamaindex_hybrid import HybridLLM, RoutingEvent
from shared_router.errors import RoutingError
from tests.llamaindex_hybrid.stand_ins import EASY, HARD, EventLog, StandInLLM

QUESTION = "What is 6 times 7?"


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOL = FunctionTool.from_defaults(fn=multiply)


def tool_call_response(model: str | None) -> ChatResponse:
    call = ToolCallBlock(tool_call_id="c1", tool_name="multiply", tool_kwargs={"a": 2, "b": 3})
    response = ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, blocks=[call]))
    if model is not None:
        response.additional_kwargs["routing"] = {"model": model}
    return response


@pytest.mark.parametrize(("text", "expected"), [(EASY, "small"), (HARD, "large")])
async def test_chat_with_tools_runs_the_routed_models_own_tool_calling(
    planted_router: Any, text: str, expected: str
) -> None:
    small = StandInLLM(name="small", tool_kwargs={"a": 6, "b": 7})
    large = StandInLLM(name="large", tool_kwargs={"a": 6, "b": 7})
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    sync = llm.chat_with_tools([TOOL], user_msg=text, tool_choice="multiply")
    not_sync = await llm.achat_with_tools([TOOL], user_msg=text, tool_choice="multiply")

    chosen, other = (small, large) if expected == "small" else (large, small)
    assert [c["method"] for c in chosen.calls] == ["chat", "achat"]
    assert other.calls == []
    for c in chosen.calls:
        assert (c["text"], c["kwargs"]["tools"], c["kwargs"]["tool_choice"]) == (
            text,
            [TOOL],
            "multiply",
        )
    for response in (sync, not_sync):
        assert response.additional_kwargs["routing"]["model"] == expected
        calls = llm.get_tool_calls_from_response(response)
        assert [(c.tool_name, c.tool_kwargs) for c in calls] == [("multiply", {"a": 6, "b": 7})]


async def test_predict_and_call_calls_the_tool(planted_router: Any, large: StandInLLM) -> None:
    small = StandInLLM(name="small", tool_kwargs={"a": 6, "b": 7})
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    assert llm.predict_and_call([TOOL], user_msg=QUESTION).response == "42"
    assert (await llm.apredict_and_call([TOOL], user_msg=QUESTION)).response == "42"
    assert [c["method"] for c in small.calls] == ["chat", "achat"]
    assert large.calls == []


async def test_streamed_tool_calls_carry_the_record(planted_router: Any, large: StandInLLM) -> None:
    small = StandInLLM(name="small", tool_kwargs={"a": 6, "b": 7})
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    chunks = list(llm.stream_chat_with_tools([TOOL], user_msg=QUESTION))
    chunks += [c async for c in await llm.astream_chat_with_tools([TOOL], user_msg=QUESTION)]
    assert [c["method"] for c in small.calls] == ["stream_chat", "astream_chat"]
    for chunk in chunks:
        assert chunk.additional_kwargs["routing"]["model"] == "small"
        assert llm.get_tool_calls_from_response(chunk)[0].tool_kwargs == {"a": 6, "b": 7}


def test_tools_go_to_the_large_model_when_only_it_calls_tools(planted_router: Any) -> None:
    small = StandInLLM(name="small", function_calling=False)
    large = StandInLLM(name="large", tool_kwargs={"a": 6, "b": 7})
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    assert llm.metadata.is_function_calling_model is True  # tool calls go to the large model

    response = llm.chat_with_tools([TOOL], user_msg=EASY)
    record = response.additional_kwargs["routing"]
    assert (record["model"], record["score"], record["fallback"]) == ("large", None, False)
    assert record["reason"] == "only the large model supports tool calling"
    assert small.calls == []
    assert llm.chat([ChatMessage(role=MessageRole.USER, content=EASY)]).message.content == (
        "[small] answered"
    )


def test_tools_without_a_function_calling_model_fail_clearly(planted_router: Any) -> None:
    llm = HybridLLM(
        StandInLLM(name="small", function_calling=False),
        StandInLLM(name="large", function_calling=False),
        router=planted_router,
        threshold=0.5,
    )
    with pytest.raises(RoutingError, match="neither 'small' nor 'large'"):
        llm.chat_with_tools([TOOL], user_msg=EASY)


def test_tool_calls_are_read_by_the_model_that_answered(planted_router: Any) -> None:
    llm = HybridLLM(MockLLM(), StandInLLM(name="large"), router=planted_router)
    expected = [("multiply", {"a": 2, "b": 3})]
    for model in ("large", None):
        calls = llm.get_tool_calls_from_response(tool_call_response(model))
        assert [(c.tool_name, c.tool_kwargs) for c in calls] == expected
    with pytest.raises(RoutingError, match="'MockLLM' answered and is not a FunctionCallingLLM"):
        llm.get_tool_calls_from_response(tool_call_response("small"))


async def test_function_agent_calls_a_tool_through_hybrid_llm(
    planted_router: Any, large: StandInLLM
) -> None:
    small = StandInLLM(name="small", tool_kwargs={"a": 6, "b": 7})
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    agent = FunctionAgent(tools=[TOOL], llm=llm, system_prompt="Use the tools.")
    result = await agent.run(user_msg=QUESTION)
    assert str(result) == "[small] answered; the tool said 42"
    assert [c["text"] for c in small.calls] == [QUESTION, "42"]
    assert all(c["kwargs"]["tools"] for c in small.calls)
    assert large.calls == []
    assert llm.stats.small == 2


async def test_react_agent_works_over_models_without_tool_calling(
    planted_router: Any, events: EventLog
) -> None:
    def react(text: str) -> str:
        if text.startswith("Observation"):
            return "Thought: I can answer without using any more tools.\nAnswer: 42"
        return 'Thought: I need a tool.\nAction: multiply\nAction Input: {"a": 6, "b": 7}'

    small = StandInLLM(name="small", function_calling=False, answer=react)
    large = StandInLLM(name="large", function_calling=False, answer=react)
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    result = await ReActAgent(tools=[TOOL], llm=llm).run(user_msg=QUESTION)
    assert str(result) == "42"
    assert small.texts[0] == QUESTION
    assert llm.stats.calls == 2
    first, after_tool = events.of(RoutingEvent)
    # Issue 14, before: the step after the tool call was routed on "Observation: 42".
    expected = pytest.approx(float(planted_router.score(QUESTION)[0]))
    assert first.score == after_tool.score == expected
