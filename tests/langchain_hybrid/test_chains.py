"""ChatHybrid inside chains, batches, agents and under concurrency."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableParallel
from langchain_core.tools import tool

from langchain_hybrid import ChatHybrid
from tests.langchain_hybrid.conftest import EASY, HARD
from tests.langchain_hybrid.stand_ins import StandInChatModel

PROMPT = ChatPromptTemplate.from_messages(
    [("system", "You answer in one sentence."), ("human", "{question}")]
)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_an_lcel_chain_routes_each_input(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5)
    chain = PROMPT | llm | StrOutputParser()

    assert chain.invoke({"question": EASY}) == f"small-model answers: {EASY}"
    assert chain.invoke({"question": HARD}) == f"large-model answers: {HARD}"
    assert small.calls[0]["messages"][0].text == "You answer in one sentence."


def test_a_batch_sends_some_inputs_small_and_some_large(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5)
    chain = PROMPT | llm | StrOutputParser()

    answers = chain.batch([{"question": q} for q in (EASY, HARD, EASY, HARD)])

    assert [a.split()[0] for a in answers] == ["small-model", "large-model"] * 2
    assert (llm.stats.calls, llm.stats.small, llm.stats.large) == (4, 2, 2)


def test_chains_sharing_one_model_keep_their_own_level(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5)
    chain = PROMPT | llm | StrOutputParser()
    careful = chain.with_config(configurable={"threshold": 1.0})
    thrifty = chain.with_config(configurable={"threshold": 0.0})

    async def run_interleaved() -> list[str]:
        calls = [
            c.ainvoke({"question": q})
            for c, q in itertools.product((careful, thrifty, chain), (EASY, HARD))
        ]
        return await asyncio.gather(*calls)

    answers = asyncio.run(run_interleaved())

    assert [a.split()[0] for a in answers] == [
        "large-model",
        "large-model",
        "small-model",
        "small-model",
        "small-model",
        "large-model",
    ]


def test_a_chain_of_two_hybrid_models_lists_each_knob_once(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    fast = ChatHybrid(small=small, large=large, router=planted_router, large_share=0.1)
    careful = ChatHybrid(small=small, large=large, router=planted_router, max_quality_drop=0.0)

    specs = RunnableParallel(fast=PROMPT | fast, careful=PROMPT | careful).config_specs

    assert sorted(spec.id for spec in specs) == ["large_share", "max_quality_drop", "threshold"]


async def test_200_concurrent_calls_are_each_routed_on_their_own_query(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    easy = [f"What is {a} + {b}?" for a, b in itertools.product(range(3, 7), range(20, 25))]
    hard = [
        f"Draft a detailed legal memo analysing {issue} under clause {n} of the contract, "
        "citing the relevant case law and recommending a litigation strategy."
        for issue, n in itertools.product(
            ("liability for late delivery", "an indemnity dispute", "a termination right"),
            range(1, 8),
        )
    ][:20]
    queries = [q for pair in zip(easy, hard, strict=True) for q in pair] * 5
    expected = planted_router.route_batch(queries, threshold=0.5)
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5)

    answers = await asyncio.gather(*(llm.ainvoke(q) for q in queries))

    for query, answer, decision in zip(queries, answers, expected, strict=True):
        routing = answer.response_metadata["routing"]
        assert answer.text == f"{decision.model}-model answers: {query}"
        assert routing["model"] == decision.model
        assert routing["score"] == pytest.approx(decision.score, abs=1e-6)
    stats = llm.stats
    assert len(queries) == stats.calls == 200
    assert stats.small == sum(d.model == "small" for d in expected) == len(small.calls)
    assert 0 < stats.small < 200


def test_a_tool_calling_loop_runs_through_the_routed_model(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5)
    agent = llm.bind_tools([add])
    messages: list[Any] = [HumanMessage("Use the tool: what is 3 + 4?")]

    while (reply := agent.invoke(messages)).tool_calls:
        messages.append(reply)
        messages.extend(add.invoke(call) for call in reply.tool_calls)

    assert isinstance(messages[-1], ToolMessage) and messages[-1].content == "7"
    assert reply.text == "small-model read the tool result: 7"
    assert [m.response_metadata["routing"]["model"] for m in (messages[1], reply)] == [
        "small",
        "small",
    ]


def test_a_langchain_agent_runs_on_the_routed_model(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    agents = pytest.importorskip("langchain.agents")
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5)
    agent = agents.create_agent(llm, tools=[add])

    state = agent.invoke({"messages": [HumanMessage("Use the tool: what is 3 + 4?")]})

    final = state["messages"][-1]
    assert final.text == "small-model read the tool result: 7"
    assert final.response_metadata["routing"]["model"] == "small"
    assert [m.type for m in state["messages"]] == ["human", "ai", "tool", "ai"]
