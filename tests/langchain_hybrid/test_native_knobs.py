"""Quality levels reach the decision through bindings, structured output and agents.

``with_config(configurable=...)``, ``bind(...)`` and per-call keywords set the level of the
routing decision whether the model is then given tools (``bind_tools``, ``create_agent``) or a
schema (``with_structured_output``); the router is loaded once per process however many
ChatHybrid instances (``configurable_fields``, one per request) use it.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.runnables import ConfigurableField
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_hybrid import ChatHybrid
from shared_router.routing.router import Router
from tests.langchain_hybrid.conftest import EASY
from tests.langchain_hybrid.stand_ins import SpyRouter, StandInChatModel


class Sum(BaseModel):
    """The sum of two numbers."""

    total: int


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@pytest.fixture
def llm(small: StandInChatModel, large: StandInChatModel, spy: SpyRouter) -> ChatHybrid:
    """ChatHybrid routed by the spy (its own level left to the router's default)."""
    return ChatHybrid(small=small, large=large, router=spy)


def _last_knobs(spy: SpyRouter) -> dict[str, float]:
    return spy.routed[-1][1]


def test_agent_over_with_config_routes_at_the_configured_level(
    llm: ChatHybrid, spy: SpyRouter
) -> None:
    agent = create_agent(llm.with_config(configurable={"threshold": 0.99}), tools=[add])
    agent.invoke({"messages": [("human", EASY)]})
    assert _last_knobs(spy) == {"threshold": 0.99}


def test_agent_over_bind_routes_at_the_bound_level(llm: ChatHybrid, spy: SpyRouter) -> None:
    agent = create_agent(llm.bind(large_share=0.7), tools=[add])
    agent.invoke({"messages": [("human", EASY)]})
    assert _last_knobs(spy) == {"large_share": 0.7}


def test_bound_level_reaches_structured_output(llm: ChatHybrid, spy: SpyRouter) -> None:
    structured = llm.bind(threshold=0.2).with_structured_output(Sum)
    assert structured.invoke("What is 2 + 3?") == Sum(total=2)
    assert _last_knobs(spy) == {"threshold": 0.2}


def test_configured_level_reaches_structured_output(llm: ChatHybrid, spy: SpyRouter) -> None:
    structured = llm.with_config(configurable={"large_share": 0.4}).with_structured_output(Sum)
    structured.invoke("What is 2 + 3?")
    assert _last_knobs(spy) == {"large_share": 0.4}


async def test_per_call_level_on_a_structured_runnable(llm: ChatHybrid, spy: SpyRouter) -> None:
    structured = llm.with_structured_output(Sum)
    structured.invoke("What is 2 + 3?", threshold=0.9)
    assert _last_knobs(spy) == {"threshold": 0.9}
    await structured.ainvoke("What is 2 + 3?", max_quality_drop=0.05)
    assert _last_knobs(spy) == {"max_quality_drop": 0.05}


def test_per_call_level_replaces_the_bound_one_through_bind_tools(
    llm: ChatHybrid, spy: SpyRouter
) -> None:
    bound = llm.bind(threshold=0.3).bind_tools([add])
    bound.invoke(EASY)
    assert _last_knobs(spy) == {"threshold": 0.3}
    bound.invoke(EASY, threshold=0.6)
    assert _last_knobs(spy) == {"threshold": 0.6}


def test_instances_configurable_fields_and_copies_load_the_router_once(
    planted_folder: str,
    small: StandInChatModel,
    large: StandInChatModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[str] = []
    real_load = Router.load.__func__  # type: ignore[attr-defined]

    def counting_load(cls: type[Router], *args: Any, **kwargs: Any) -> Router:
        loads.append(str(args[0] if args else kwargs.get("path_or_name")))
        router: Router = real_load(cls, *args, **kwargs)
        return router

    monkeypatch.setattr(Router, "load", classmethod(counting_load))
    folder = planted_folder
    per_request = [ChatHybrid(small=small, large=large, router=folder) for _ in range(3)]
    for llm in per_request:
        llm.invoke(EASY)
    configurable = per_request[0].configurable_fields(
        max_quality_drop=ConfigurableField(id="level")
    )
    for level in (0.0, 0.05):
        configurable.invoke(EASY, {"configurable": {"level": level}})
    per_request[0].model_copy(update={"max_quality_drop": 0.0}).invoke(EASY)
    assert len(loads) <= 1
