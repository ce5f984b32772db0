"""Agents over a pair where only the large model calls tools (issue 14).

Why bullet 9 ("tools"); its ReAct half is in ``test_tools.py``
(``test_react_agent_works_over_models_without_tool_calling``).
"""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from llamaindex_hybrid import HybridLLM, RoutingEvent
from tests.llamaindex_hybrid.stand_ins import EventLog, StandInLLM

QUESTION = "What is 6 times 7?"


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOL = FunctionTool.from_defaults(fn=multiply)


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_over_a_pair_where_only_the_large_model_calls_tools(
    planted_router: Any, events: EventLog, streaming: bool
) -> None:
    small = StandInLLM(name="small", function_calling=False)
    large = StandInLLM(name="large", tool_kwargs={"a": 6, "b": 7})
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    assert llm.metadata.is_function_calling_model is True

    agent = FunctionAgent(tools=[TOOL], llm=llm, streaming=streaming)
    # Before: ValueError("LLM must be a FunctionCallingLLM").
    result = await agent.run(user_msg=QUESTION)

    assert str(result) == "[small] answered; the tool said 42"
    tool_step, answer_step = events.of(RoutingEvent)
    assert (tool_step.model, tool_step.reason) == (
        "large",
        "only the large model supports tool calling",
    )
    assert answer_step.model == "small"  # routed: the step after the tool's result
    assert answer_step.score == pytest.approx(float(planted_router.score(QUESTION)[0]))
    assert len(large.calls) == len(small.calls) == 1
    assert "tools" not in small.calls[0]["kwargs"]
