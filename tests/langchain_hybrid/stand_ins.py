"""Offline stand-ins for remote chat models, and a router spy.

``StandInChatModel`` answers deterministically, streams word by word, reports usage, honours
``stop`` and a per-call ``model``, and calls tools with arguments read from the question, so
that the LangChain standard suites and the routing tests run without a network.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import PrivateAttr

from shared_router.types import QualityKnobs, RouteDecision

_WORDS = re.compile(r"\S+\s*")
_NUMBERS = re.compile(r"-?\d+")
_QUOTED = re.compile(r"'([^']+)'")


class StandInChatModel(BaseChatModel):
    """A deterministic offline chat model that streams and calls tools.

    It answers ``"<model> answers: <last user text>"``; after a tool result it answers
    ``"<model> read the tool result: <result>"``. With tools bound it calls one when the last
    message is from the user or ``tool_choice`` forces it, reading integer arguments and
    quoted strings from the question.
    """

    model: str = "stand-in"
    """The name reported in ``response_metadata["model_name"]``."""

    error: Exception | None = None
    """Raised on every call (before any chunk when streaming)."""

    fail_after_chunks: int | None = None
    """When streaming, raise ``error`` after this many chunks instead of before the first."""

    _calls: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "stand-in-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model}

    @property
    def calls(self) -> list[dict[str, Any]]:
        """One entry per call: the messages, ``stop`` and the per-call keyword arguments."""
        with self._lock:
            return list(self._calls)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _reply(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AIMessage:
        with self._lock:
            self._calls.append({"messages": messages, "stop": stop, "kwargs": dict(kwargs)})
        if self.error is not None and self.fail_after_chunks is None:
            raise self.error
        name = kwargs.get("model") or self.model
        last = messages[-1]
        tools = kwargs.get("tools") or []
        choice = kwargs.get("tool_choice")
        forced = choice not in (None, "auto", "none", False)
        question = next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        input_tokens = sum(len(m.text.split()) for m in messages)
        metadata = {"model_name": name, "finish_reason": "stop"}
        if tools and choice != "none" and (forced or isinstance(last, HumanMessage)):
            tool = pick_tool(tools, choice, question)
            call = {
                "name": tool["name"],
                "args": arguments_from_question(tool.get("parameters", {}), question),
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "tool_call",
            }
            usage = {"input_tokens": input_tokens, "output_tokens": 1, "total_tokens": 0}
            usage["total_tokens"] = input_tokens + 1
            return AIMessage(
                content="", tool_calls=[call], usage_metadata=usage, response_metadata=metadata
            )
        if isinstance(last, HumanMessage) or not last.text:
            text = f"{name} answers: {question}"
        else:
            text = f"{name} read the tool result: {last.text}"
        for word in stop or []:
            if word in text:
                text = text[: text.index(word)]
        output_tokens = len(text.split())
        return AIMessage(
            content=text,
            usage_metadata={
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
            response_metadata=metadata,
        )

    def _chunks(self, message: AIMessage) -> list[AIMessageChunk]:
        usage = message.usage_metadata or {"input_tokens": 0, "output_tokens": 0}
        if message.tool_calls:
            call = message.tool_calls[0]
            pieces = [
                AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        {
                            "name": call["name"],
                            "args": json.dumps(call["args"]),
                            "id": call["id"],
                            "index": 0,
                            "type": "tool_call_chunk",
                        }
                    ],
                )
            ]
        else:
            pieces = [AIMessageChunk(content=word) for word in _WORDS.findall(message.text)]
        for i, piece in enumerate(pieces):
            given = usage["input_tokens"] if i == 0 else 0
            produced = usage["output_tokens"] if message.tool_calls else 1
            piece.usage_metadata = {
                "input_tokens": given,
                "output_tokens": produced,
                "total_tokens": given + produced,
            }
        pieces[-1].response_metadata = dict(message.response_metadata)
        pieces[-1].chunk_position = "last"
        return pieces

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages, stop, kwargs))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        await asyncio.sleep(0)
        return self._generate(messages, stop, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for i, chunk in enumerate(self._chunks(self._reply(messages, stop, kwargs))):
            if self.error is not None and i == self.fail_after_chunks:
                raise self.error
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._stream(messages, stop, **kwargs):
            await asyncio.sleep(0)
            yield chunk


def pick_tool(tools: list[dict[str, Any]], choice: Any, question: str) -> dict[str, Any]:
    """The OpenAI-format tool a ``tool_choice`` names, else the one the question names."""
    functions = [tool["function"] for tool in tools]
    wanted = choice
    if isinstance(choice, dict):
        wanted = choice.get("function", {}).get("name") or choice.get("name")
    for function in functions:
        if function["name"] == wanted:
            return function
    for function in functions:
        if function["name"] in question:
            return function
    return functions[0]


def arguments_from_question(parameters: dict[str, Any], question: str) -> dict[str, Any]:
    """Fill a JSON schema's required properties from a question.

    Integers and numbers are the question's integers in order (0 when none is left), booleans
    are true, strings the question's single-quoted strings in order (else the question).

    Args:
        parameters: A JSON schema of an object (a tool's parameters, a structured output).
        question: The last user message.

    Returns:
        The arguments.
    """
    properties = parameters.get("properties", {})
    numbers = iter(_NUMBERS.findall(question))
    quoted = iter(_QUOTED.findall(question))
    args: dict[str, Any] = {}
    for name in parameters.get("required", list(properties)):
        spec = properties.get(name, {})
        kinds = [spec.get("type")] + [option.get("type") for option in spec.get("anyOf", [])]
        if "integer" in kinds or "number" in kinds:
            args[name] = int(next(numbers, "0"))
        elif "boolean" in kinds:
            args[name] = True
        else:
            args[name] = next(quoted, question)
    return args


class SpyRouter:
    """Wraps a real router and records the texts and knobs it was asked to route.

    Args:
        router: The router to delegate to.
        error: When set, ``route`` raises it instead (a failing router).
    """

    def __init__(self, router: Any, error: Exception | None = None) -> None:
        self.router = router
        self.error = error
        self.name = f"spy:{router.name}"
        self.routed: list[tuple[str, dict[str, float]]] = []
        self._lock = threading.Lock()

    @property
    def default_knobs(self) -> QualityKnobs:
        """The wrapped router's default level."""
        knobs: QualityKnobs = self.router.default_knobs
        return knobs

    def route(self, text: str, **knobs: float) -> RouteDecision:
        """Record the call, then route with the wrapped router (or raise ``error``)."""
        with self._lock:
            self.routed.append((text, knobs))
        if self.error is not None:
            raise self.error
        decision: RouteDecision = self.router.route(text, **knobs)
        return decision
