"""Tools and structured output work on both models, and go large when only it can take them."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import GenericFakeChatModel, LanguageModelInput
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_hybrid import ChatHybrid
from tests.langchain_hybrid.conftest import EASY
from tests.langchain_hybrid.stand_ins import StandInChatModel


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Joke(BaseModel):
    """A joke."""

    setup: str
    punchline: str


class _IgnoresTools(StandInChatModel):
    """Accepts tools but never calls them (its structured output never parses)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind()


class _NoJsonSchema(StandInChatModel):
    """Refuses ``method="json_schema"`` structured output, as some providers do."""

    def with_structured_output(
        self, schema: Any, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, Any]:
        if kwargs.get("method") == "json_schema":
            raise ValueError("json_schema is not supported")
        return super().with_structured_output(schema, include_raw=include_raw, **kwargs)


def _text_only(name: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(f"{name} answers", name=name)] * 5))


def test_tools_are_bound_on_the_chosen_model(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.0)
    with_tools = llm.bind_tools([add], tool_choice="add", parallel_tool_calls=False)

    answer = with_tools.invoke("What is 3 + 4?")

    assert answer.tool_calls[0]["name"] == "add"
    assert answer.tool_calls[0]["args"] == {"a": 3, "b": 4}
    assert answer.response_metadata["routing"]["model"] == "small"
    sent = small.calls[-1]["kwargs"]
    assert [t["function"]["name"] for t in sent["tools"]] == ["add"]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("add", False)


def test_tool_calls_go_large_when_only_the_large_model_takes_tools(
    large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=_text_only("small"), large=large, router=planted_router, threshold=0.0)

    plain = llm.invoke(EASY)
    with_tools = llm.bind_tools([add]).invoke("What is 3 + 4?")

    assert plain.response_metadata["routing"]["model"] == "small"
    routing = with_tools.response_metadata["routing"]
    assert (routing["model"], routing["score"], routing["fallback"]) == ("large", None, False)
    assert routing["reason"] == (
        "only the large model supports tool calling (GenericFakeChatModel does not)"
    )
    assert with_tools.tool_calls[0]["args"] == {"a": 3, "b": 4}


def test_the_large_model_must_take_what_the_call_needs(
    small: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=_text_only("large"), router=planted_router)

    with pytest.raises(NotImplementedError, match="large model to support tool calling"):
        llm.bind_tools([add])
    with pytest.raises(NotImplementedError, match="large model to support structured output"):
        llm.with_structured_output(Joke)


def test_structured_output_uses_the_chosen_models_own_method(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.0)

    joke = llm.with_structured_output(Joke).invoke("Tell me a joke about 'cats' and 'dogs'")
    raw = llm.with_structured_output(Joke, include_raw=True).invoke("Tell me a joke")
    careful = llm.with_structured_output(Joke).with_config(configurable={"threshold": 1.0})
    careful.invoke("Tell me a joke")

    assert joke == Joke(setup="cats", punchline="dogs")
    assert raw["parsing_error"] is None and isinstance(raw["parsed"], Joke)
    assert raw["raw"].response_metadata["routing"]["model"] == "small"
    assert (len(small.calls), len(large.calls)) == (2, 1)
    assert large.calls[0]["kwargs"]["tool_choice"] == "any"
    assert (llm.stats.small, llm.stats.large) == (2, 1)


def test_structured_output_falls_back_when_the_small_answer_does_not_parse(
    large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(
        small=_IgnoresTools(model="small-model"), large=large, router=planted_router, threshold=0.0
    )
    strict = ChatHybrid(
        small=_IgnoresTools(model="small-model"),
        large=large,
        router=planted_router,
        threshold=0.0,
        fallback_to_large=False,
    )

    result = llm.with_structured_output(Joke, include_raw=True).invoke("Tell me a joke")

    assert isinstance(result["parsed"], Joke)
    routing = result["raw"].response_metadata["routing"]
    assert (routing["model"], routing["fallback"]) == ("large", True)
    assert (
        "OutputParserException: the small model returned no structured output"
        in (routing["reason"])
    )
    assert strict.with_structured_output(Joke).invoke("Tell me a joke") is None


async def test_structured_output_goes_large_when_only_the_large_model_supports_it(
    large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=_text_only("small"), large=large, router=planted_router, threshold=0.0)

    result = await llm.with_structured_output(Joke, include_raw=True).ainvoke("Tell me a joke")

    routing = result["raw"].response_metadata["routing"]
    assert isinstance(result["parsed"], Joke)
    assert (routing["model"], routing["reason"]) == (
        "large",
        "only the large model supports structured output (GenericFakeChatModel does not)",
    )


def test_structured_output_goes_large_when_the_small_model_refuses_the_method(
    large: StandInChatModel, planted_router: Any
) -> None:
    small = _NoJsonSchema(model="small-model")
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.0)

    native = llm.with_structured_output(Joke, method="json_schema", include_raw=True)
    tools = llm.with_structured_output(Joke, method="function_calling", include_raw=True)

    routing = native.invoke("Tell me a joke")["raw"].response_metadata["routing"]
    assert (routing["model"], routing["reason"]) == (
        "large",
        "only the large model supports structured output (_NoJsonSchema does not)",
    )
    assert tools.invoke("Tell me a joke")["raw"].response_metadata["routing"]["model"] == "small"
