"""``ChatHybrid``: a LangChain chat model that sends each call to a small or a large chat model."""

from __future__ import annotations

import contextlib
import itertools
import os
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, overload

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, BaseMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import (
    ConfigurableFieldSpec,
    Runnable,
    RunnableConfig,
    RunnableLambda,
)
from langchain_core.runnables.config import run_in_executor
from langchain_core.tools import BaseTool
from pydantic import PrivateAttr, field_validator, model_validator
from typing_extensions import Self, override

from langchain_hybrid._conversation import conversation_key, message_turns
from shared_router.routing.serving import ModelPrices, Routed, RoutingService, StatsSnapshot
from shared_router.routing.text import RoutedTextMode, routing_text
from shared_router.types import KNOB_NAMES, ModelChoice, QualityKnobs, RoutingRecord

if TYPE_CHECKING:
    from langchain_core.language_models.chat_model_stream import (
        AsyncChatModelStream,
        ChatModelStream,
    )
    from langchain_core.runnables.schema import StreamEvent

__all__ = ["ChatHybrid"]

_CONVERSATION_ID = "conversation_id"
_THREAD_ID = "thread_id"
_KNOB_DESCRIPTIONS = {
    "max_quality_drop": "Most relative quality drop accepted versus always-large (0.01 is 1%).",
    "large_share": "Share of calls to send to the large model (0.3 is 30%).",
    "threshold": "Raw threshold on p(small is good enough); p >= threshold goes small.",
}


class ChatHybrid(BaseChatModel):
    """Chat model that routes every call to a small or a large chat model (Hybrid LLM).

    A router reads the query and predicts p, the probability that the small model's answer
    is as good as the large model's; ``p >= threshold`` goes to the small model. Everything
    else is the chosen model's own behaviour: tokens, tool calls, usage and response metadata
    pass through. In traces the chosen model's call is a child run of this one, tagged
    ``hybrid:small`` or ``hybrid:large``, wherever langchain-core gives ChatHybrid a run
    manager (``invoke``, ``batch``, their async forms, ``stream_events(version="v3")``);
    ``stream``/``astream`` (and ``streaming=True``) run ``_stream`` without one, so there the
    tokens and the routing metadata show on this run only.

    Setup:
        Install the package with its LangChain extra, and the provider packages of the two
        models you route between:

        ```bash
        pip install "hybrid-llm[langchain]" langchain-openai
        ```

    Key init args — routing:
        small: BaseChatModel
            The cheap model.
        large: BaseChatModel
            The expensive model; it must support whatever the call needs (tools,
            structured output), because any call may go to it.
        router: str | Path | Router
            ``"default"`` (the bundled router), a router folder, or a ``Router``. Loaded on
            first use.
        max_quality_drop / large_share / threshold: float | None
            The quality level; at most one. None of them means the router's own default.
        fallback_to_large: bool
            Answer with the large model when the small one fails (default True).
        routed_text: ``"last_user"`` | ``"conversation"``
            What is routed: the last user message (default) or the whole conversation.
        sticky: bool
            Once a conversation went to the large model, its later turns stay there.
        pace_large_share: bool
            Hold a ``large_share`` level on live traffic instead of the calibration quantile.
        prices: dict | None
            ``{"small": ModelPrices, "large": ModelPrices}`` for savings accounting.

    Instantiate:
        ```python
        from langchain_openai import ChatOpenAI
        from langchain_hybrid import ChatHybrid

        llm = ChatHybrid(
            small=ChatOpenAI(model="gpt-4o-mini"),
            large=ChatOpenAI(model="gpt-4o"),
            max_quality_drop=0.01,
        )
        ```

    Invoke:
        ```python
        messages = [("system", "You are a helpful assistant."), ("human", "What is 2 + 2?")]
        llm.invoke(messages)
        ```

        ```python
        AIMessage(content="4", response_metadata={"model_name": "gpt-4o-mini", "routing":
            {"model": "small", "score": 0.97, "threshold": 0.82, ...}}, ...)
        ```

    Stream:
        ```python
        for chunk in llm.stream(messages):
            print(chunk.text, end="")
        ```

        The final chunk carries ``response_metadata["routing"]``. If the small model fails
        before its first chunk, the large model streams the answer instead; if it fails
        after its first chunk, the error is raised (chunks already delivered cannot be taken
        back).

    Async:
        ```python
        await llm.ainvoke(messages)
        async for chunk in llm.astream(messages):
            print(chunk.text, end="")
        await llm.abatch([messages, messages])
        ```

    Tool calling:
        ```python
        from langchain_core.tools import tool

        @tool
        def get_weather(location: str) -> str:
            \"\"\"Get the weather at a location.\"\"\"
            return "It's sunny."

        llm_with_tools = llm.bind_tools([get_weather])
        llm_with_tools.invoke("What is the weather in Paris?").tool_calls
        ```

        Tools are bound on the chosen model with its own ``bind_tools``. When only the large
        model takes tools, tool calls go to it.

    Structured output:
        ```python
        from pydantic import BaseModel

        class Joke(BaseModel):
            setup: str
            punchline: str

        llm.with_structured_output(Joke).invoke("Tell me a joke about cats")
        ```

        Uses each model's own ``with_structured_output`` (and its ``method``); when only the
        large model supports it, such calls go to it. A small-model answer that does not
        parse counts as a small-model failure (the large model answers).

    Quality per chain and per call:
        ```python
        chain = prompt | llm | parser
        careful = chain.with_config(configurable={"max_quality_drop": 0.0})
        llm.invoke(messages, threshold=0.9)
        llm.bind(large_share=0.5).invoke(messages)
        ```

        The knob ids are ``max_quality_drop``, ``large_share`` and ``threshold``. A level given
        per call (keyword arguments, ``bind``) replaces a level given per chain
        (``configurable``), which replaces the model's own; each layer sets at most one knob.
        With ``sticky=True``, ``configurable={"thread_id": ...}`` (LangGraph's conversation
        id) or ``conversation_id=...`` names the conversation; otherwise it is a hash of its
        first user message.

    Response metadata:
        ```python
        msg = llm.invoke(messages)
        msg.response_metadata["routing"]
        ```

        ```python
        {"model": "small", "model_name": "gpt-4o-mini", "score": 0.97, "threshold": 0.82,
         "knob": "max_quality_drop", "router": "hybrid-llm-router", "router_ms": 4.1,
         "fallback": False, "reason": "score 0.9700 >= threshold 0.8200 ..."}
        ```

        ``llm.stats`` counts calls, small/large answers, fallbacks and, with ``prices``, the
        estimated cost saved against always using the large model.
    """

    small: BaseChatModel
    """The small (cheap) chat model; it answers when the router predicts it is good enough."""

    large: BaseChatModel
    """The large chat model; it answers the other calls and every fallback."""

    router: Any = "default"
    """The router: ``"default"`` for the bundled one, a router folder, or a ``Router``.

    A name or folder is loaded on first use, not when the model is built.
    """

    max_quality_drop: float | None = None
    """Most relative quality drop accepted versus always-large (0.01 is 1%)."""

    large_share: float | None = None
    """Share of calls to send to the large model (0.3 is 30%)."""

    threshold: float | None = None
    """Raw threshold on the router's score; a score at or above it goes small."""

    fallback_to_large: bool = True
    """Answer with the large model when the small model raises (or times out).

    Set timeouts on the small model itself (``ChatOpenAI(timeout=10)``): its timeout error
    triggers the fallback. Errors of the large model are raised unchanged.
    """

    routed_text: RoutedTextMode = "last_user"
    """What is routed: the last user message with text, or the whole ``"conversation"``."""

    sticky: bool = False
    """Keep a conversation on the large model once one of its turns went there."""

    pace_large_share: bool = False
    """Hold a ``large_share`` level on live traffic (running quantile of recent scores)."""

    prices: dict[ModelChoice, ModelPrices] | None = None
    """Token prices per million of ``"small"`` and ``"large"``, for ``stats.cost_saved``."""

    stop: list[str] | None = None
    """Default stop sequences, passed to whichever model answers (a per-call ``stop`` wins)."""

    streaming: bool = False
    """Whether ``invoke`` streams from the chosen model (tokens reach callback handlers)."""

    _service: RoutingService = PrivateAttr()
    _labels: dict[ModelChoice, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _warn_ignored(cls, values: Any) -> Any:
        if isinstance(values, dict):
            known = set(cls.model_fields) | {
                field.alias for field in cls.model_fields.values() if field.alias is not None
            }
            ignored = sorted(str(key) for key in values if key not in known)
            if ignored:
                warnings.warn(
                    f"ChatHybrid ignores {', '.join(ignored)}: set provider parameters "
                    "(temperature, max_tokens, timeouts, API keys, ...) on the small and the "
                    "large model",
                    UserWarning,
                    stacklevel=4,
                )
        return values

    @field_validator("router", mode="before")
    @classmethod
    def _check_router(cls, value: Any) -> Any:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, str) or callable(getattr(value, "route", None)):
            return value
        raise ValueError(
            f"router must be 'default', a router folder or a Router, got {type(value).__name__}"
        )

    @model_validator(mode="after")
    def _build_service(self) -> Self:
        knobs = QualityKnobs(
            max_quality_drop=self.max_quality_drop,
            large_share=self.large_share,
            threshold=self.threshold,
        )
        self._service = RoutingService(
            self.router,
            knobs=knobs,
            sticky=self.sticky,
            pace_large_share=self.pace_large_share,
            prices=_prices(self.prices),
        )
        return self

    @property
    def _llm_type(self) -> str:
        return "hybrid-chat"

    @property
    def model_name(self) -> str:
        """A name for the pair, such as ``hybrid(small=gpt-4o-mini, large=gpt-4o)``."""
        return f"hybrid(small={self._label('small')}, large={self._label('large')})"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "small": self.small.asdict(),
            "large": self.large.asdict(),
            "router": self._service.router_name,
            **self._service.knobs.set_knobs(),
            "fallback_to_large": self.fallback_to_large,
            "routed_text": self.routed_text,
            "sticky": self.sticky,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="hybrid",
            ls_model_name=model if isinstance(model, str) else self.model_name,
            ls_model_type="chat",
        )
        if ls_stop := stop or self.stop:
            params["ls_stop"] = ls_stop
        return params

    @property
    def stats(self) -> StatsSnapshot:
        """Calls, small and large answers, fallbacks and estimated savings so far."""
        return self._service.stats

    @property
    @override
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        knobs = [
            ConfigurableFieldSpec(
                id=name,
                annotation=float | None,
                name=name,
                description=f"{_KNOB_DESCRIPTIONS[name]} Replaces ChatHybrid's own level.",
                default=None,
            )
            for name in KNOB_NAMES
        ]
        return [*super().config_specs, *knobs]

    # -- entry points: a chain's ``configurable`` knobs become per-call keyword arguments --

    @override
    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return super().invoke(input, config, stop=stop, **self._routing_kwargs(config, kwargs))

    @override
    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return await super().ainvoke(
            input, config, stop=stop, **self._routing_kwargs(config, kwargs)
        )

    @override
    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        return super().stream(input, config, stop=stop, **self._routing_kwargs(config, kwargs))

    @override
    def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        return super().astream(input, config, stop=stop, **self._routing_kwargs(config, kwargs))

    @overload  # type: ignore[override]
    def stream_events(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        version: Literal["v1", "v2"] = "v2",
        **kwargs: Any,
    ) -> Iterator[StreamEvent]: ...

    @overload
    def stream_events(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        version: Literal["v3"],
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> ChatModelStream: ...

    @override
    def stream_events(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        version: Literal["v1", "v2", "v3"] = "v2",
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[StreamEvent] | ChatModelStream:
        return super().stream_events(
            input, config, version=version, stop=stop, **self._routing_kwargs(config, kwargs)
        )

    @overload
    def astream_events(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        version: Literal["v1", "v2"] = "v2",
        **kwargs: Any,
    ) -> AsyncIterator[StreamEvent]: ...

    @overload
    def astream_events(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        version: Literal["v3"],
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Awaitable[AsyncChatModelStream]: ...

    @override
    def astream_events(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        version: Literal["v1", "v2", "v3"] = "v2",
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[StreamEvent] | Awaitable[AsyncChatModelStream]:
        return super().astream_events(
            input, config, version=version, stop=stop, **self._routing_kwargs(config, kwargs)
        )

    def _routing_kwargs(
        self, config: RunnableConfig | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """Add the quality knobs (and conversation id) a chain set in ``configurable``."""
        configurable = config.get("configurable") if config else None
        if not configurable:
            return kwargs
        extra: dict[str, Any] = {}
        if all(kwargs.get(name) is None for name in KNOB_NAMES):
            extra = {
                name: configurable[name]
                for name in KNOB_NAMES
                if configurable.get(name) is not None
            }
        thread = configurable.get(_THREAD_ID)
        if self.sticky and kwargs.get(_CONVERSATION_ID) is None and thread is not None:
            extra[_CONVERSATION_ID] = str(thread)
        return {**kwargs, **extra} if extra else kwargs

    # -- tools and structured output --

    @override
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; each call binds them on the chosen model with its own ``bind_tools``.

        Args:
            tools: Tools in any form the inner models accept (functions, ``BaseTool``,
                pydantic classes, JSON schemas, provider-specific dicts).
            tool_choice: Passed to the chosen model's ``bind_tools`` when given.
            **kwargs: Other ``bind_tools`` arguments of the inner models (``strict``,
                ``parallel_tool_calls``, ...).

        Returns:
            This model with the tools bound. Calls go to the large model when the small one
            cannot take tools.

        Raises:
            NotImplementedError: If the large model does not support tool calling.
        """
        if not _takes_tools(self.large):
            raise NotImplementedError(_needs_large("tool calling", self.large))
        bound: dict[str, Any] = {"tools": list(tools)}
        if tool_choice is not None:
            bound["tool_choice"] = tool_choice
        if kwargs:
            bound["tool_kwargs"] = kwargs
        return self.bind(**bound)

    @override
    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Return a runnable that routes, then uses the chosen model's structured output.

        Args:
            schema: The output schema (pydantic class, TypedDict, JSON schema, ...).
            include_raw: Return ``{"raw", "parsed", "parsing_error"}`` instead of the parsed
                value; ``raw`` carries ``response_metadata["routing"]``.
            **kwargs: The inner models' ``with_structured_output`` arguments (``method``,
                ``strict``, ...).

        Returns:
            A runnable producing the parsed output (streaming yields it once, complete).

        Raises:
            NotImplementedError: If the large model does not support structured output.
        """
        if not _takes_structured_output(self.large):
            raise NotImplementedError(_needs_large("structured output", self.large))
        large = self.large.with_structured_output(schema, include_raw=True, **kwargs)
        small = None
        if _takes_structured_output(self.small):
            # The large model accepted these arguments; if the small one refuses them, it
            # cannot take this schema or method, and such calls go large.
            with contextlib.suppress(NotImplementedError, ValueError):
                small = self.small.with_structured_output(schema, include_raw=True, **kwargs)
        options: dict[str, Any] = {
            "small": small,
            "large": large,
            "include_raw": include_raw,
            "force_large": (
                None if small is not None else _only_large("structured output", self.small)
            ),
        }
        return RunnableLambda(
            partial(self._structured, **options),
            afunc=partial(self._astructured, **options),
            name="ChatHybrid",
        )

    # -- the calls --

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        plan = self._plan(messages, kwargs)
        callbacks = _child_callbacks(run_manager)
        stop = stop if stop is not None else self.stop
        failure: Exception | None = None
        if plan.routed.model == "small":
            try:
                message = plan.target(self.small).invoke(
                    messages, _child_config(callbacks, "small"), stop=stop, **plan.kwargs
                )
            except Exception as error:
                if not self.fallback_to_large:
                    raise
                failure = error
            else:
                return self._result(plan, "small", message, None)
        message = plan.target(self.large).invoke(
            messages, _child_config(callbacks, "large"), stop=stop, **plan.kwargs
        )
        return self._result(plan, "large", message, failure)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        plan = await run_in_executor(None, self._plan, messages, kwargs)
        callbacks = _child_callbacks(run_manager)
        stop = stop if stop is not None else self.stop
        failure: Exception | None = None
        if plan.routed.model == "small":
            try:
                message = await plan.target(self.small).ainvoke(
                    messages, _child_config(callbacks, "small"), stop=stop, **plan.kwargs
                )
            except Exception as error:
                if not self.fallback_to_large:
                    raise
                failure = error
            else:
                return self._result(plan, "small", message, None)
        message = await plan.target(self.large).ainvoke(
            messages, _child_config(callbacks, "large"), stop=stop, **plan.kwargs
        )
        return self._result(plan, "large", message, failure)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        plan = self._plan(messages, kwargs)
        callbacks = _child_callbacks(run_manager)
        stop = stop if stop is not None else self.stop

        def open_stream(choice: ModelChoice) -> Iterator[BaseMessage]:
            model = plan.target(self._model(choice))
            config = _child_config(callbacks, choice)
            return iter(model.stream(messages, config, stop=stop, **plan.kwargs))

        choice = plan.routed.model
        failure: Exception | None = None
        if choice == "small" and self.fallback_to_large:
            try:
                chunks = open_stream("small")
                first = next(chunks, None)
            except Exception as error:
                failure, choice = error, "large"
                chunks = open_stream("large")
            else:
                chunks = itertools.chain(() if first is None else (first,), chunks)
        else:
            chunks = open_stream(choice)
        tally = _StreamTally()
        for chunk in chunks:
            yield ChatGenerationChunk(message=tally.add(chunk))
        yield self._final_chunk(plan, choice, tally, failure)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        plan = await run_in_executor(None, self._plan, messages, kwargs)
        callbacks = _child_callbacks(run_manager)
        stop = stop if stop is not None else self.stop

        def open_stream(choice: ModelChoice) -> AsyncIterator[BaseMessage]:
            model = plan.target(self._model(choice))
            config = _child_config(callbacks, choice)
            return aiter(model.astream(messages, config, stop=stop, **plan.kwargs))

        choice = plan.routed.model
        failure: Exception | None = None
        if choice == "small" and self.fallback_to_large:
            try:
                chunks = open_stream("small")
                first = await anext(chunks, None)
            except Exception as error:
                failure, choice = error, "large"
                chunks = open_stream("large")
            else:
                chunks = _aprepend(first, chunks)
        else:
            chunks = open_stream(choice)
        tally = _StreamTally()
        async for chunk in chunks:
            yield ChatGenerationChunk(message=tally.add(chunk))
        yield self._final_chunk(plan, choice, tally, failure)

    def _structured(
        self,
        model_input: LanguageModelInput,
        config: RunnableConfig,
        *,
        small: Runnable[LanguageModelInput, Any] | None,
        large: Runnable[LanguageModelInput, Any],
        include_raw: bool,
        force_large: str | None,
    ) -> Any:
        messages = self._convert_input(model_input).to_messages()
        plan = self._plan(messages, self._routing_kwargs(config, {}), force_large)
        failure: Exception | None = None
        if small is not None and plan.routed.model == "small":
            try:
                result = small.invoke(messages, _tagged(config, "small"))
                if self.fallback_to_large:
                    _raise_if_unparsed(result)
            except Exception as error:
                if not self.fallback_to_large:
                    raise
                failure = error
            else:
                return self._structured_result(plan, "small", result, None, include_raw)
        result = large.invoke(messages, _tagged(config, "large"))
        return self._structured_result(plan, "large", result, failure, include_raw)

    async def _astructured(
        self,
        model_input: LanguageModelInput,
        config: RunnableConfig,
        *,
        small: Runnable[LanguageModelInput, Any] | None,
        large: Runnable[LanguageModelInput, Any],
        include_raw: bool,
        force_large: str | None,
    ) -> Any:
        messages = self._convert_input(model_input).to_messages()
        plan = await run_in_executor(
            None, self._plan, messages, self._routing_kwargs(config, {}), force_large
        )
        failure: Exception | None = None
        if small is not None and plan.routed.model == "small":
            try:
                result = await small.ainvoke(messages, _tagged(config, "small"))
                if self.fallback_to_large:
                    _raise_if_unparsed(result)
            except Exception as error:
                if not self.fallback_to_large:
                    raise
                failure = error
            else:
                return self._structured_result(plan, "small", result, None, include_raw)
        result = await large.ainvoke(messages, _tagged(config, "large"))
        return self._structured_result(plan, "large", result, failure, include_raw)

    # -- routing and records (the decisions themselves are the RoutingService's) --

    def _plan(
        self,
        messages: Sequence[BaseMessage],
        kwargs: dict[str, Any],
        force_large: str | None = None,
    ) -> _Plan:
        """Take the routing arguments out of ``kwargs`` and decide which model answers."""
        knobs = {name: kwargs.pop(name) for name in KNOB_NAMES if name in kwargs}
        level = {name: value for name, value in knobs.items() if value is not None}
        conversation_id = kwargs.pop(_CONVERSATION_ID, None)
        tools = kwargs.pop("tools", None) or None
        tool_choice = kwargs.pop("tool_choice", None)
        tool_kwargs = kwargs.pop("tool_kwargs", None) or {}
        if tools is not None and force_large is None and not _takes_tools(self.small):
            force_large = _only_large("tool calling", self.small)
        text = routing_text(message_turns(messages), mode=self.routed_text)
        key = None
        if self.sticky:
            key = str(conversation_id) if conversation_id else conversation_key(messages)
        routed = self._service.decide(
            text,
            QualityKnobs(**level) if level else None,
            conversation_key=key,
            force_large=force_large,
        )
        return _Plan(routed, kwargs, tools, tool_choice, tool_kwargs)

    def _model(self, choice: ModelChoice) -> BaseChatModel:
        return self.small if choice == "small" else self.large

    def _label(self, choice: ModelChoice) -> str:
        """The inner model's configured name (its tracing name, else its type)."""
        label = self._labels.get(choice)
        if label is None:
            model = self._model(choice)
            name = model._get_ls_params().get("ls_model_name")
            label = name if isinstance(name, str) and name else model._llm_type
            self._labels[choice] = label
        return label

    def _answer_name(self, message: BaseMessage, choice: ModelChoice) -> str:
        """The name the answer reports (``response_metadata["model_name"]``), else the label."""
        name = message.response_metadata.get("model_name")
        return name if isinstance(name, str) and name else self._label(choice)

    def _record(
        self,
        plan: _Plan,
        choice: ModelChoice,
        model_name: str,
        failure: Exception | None,
        usage: Any,
    ) -> RoutingRecord:
        """Count one answered call and return its routing record."""
        record = self._service.record(
            plan.routed,
            answered_by=choice,
            model_name=model_name,
            fallback=failure is not None,
            reason=None if failure is None else _fallback_reason(failure, plan.routed),
        )
        usage = usage or {}
        self._service.account(
            record,
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
        )
        return record

    def _result(
        self,
        plan: _Plan,
        choice: ModelChoice,
        message: BaseMessage,
        failure: Exception | None,
    ) -> ChatResult:
        record = self._record(
            plan,
            choice,
            self._answer_name(message, choice),
            failure,
            getattr(message, "usage_metadata", None),
        )
        return ChatResult(generations=[ChatGeneration(message=_with_routing(message, record))])

    def _final_chunk(
        self,
        plan: _Plan,
        choice: ModelChoice,
        tally: _StreamTally,
        failure: Exception | None,
    ) -> ChatGenerationChunk:
        usage = {"input_tokens": tally.input_tokens, "output_tokens": tally.output_tokens}
        name = tally.model_name or self._label(choice)
        record = self._record(plan, choice, name, failure, usage)
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=[] if tally.list_content else "",
                response_metadata={"routing": record.as_dict()},
                chunk_position="last",
            )
        )

    def _structured_result(
        self,
        plan: _Plan,
        choice: ModelChoice,
        result: dict[str, Any],
        failure: Exception | None,
        include_raw: bool,
    ) -> Any:
        raw = result["raw"]
        record = self._record(
            plan,
            choice,
            self._answer_name(raw, choice),
            failure,
            getattr(raw, "usage_metadata", None),
        )
        if include_raw:
            return {**result, "raw": _with_routing(raw, record)}
        if result["parsing_error"] is not None:
            raise result["parsing_error"]
        return result["parsed"]


@dataclass(frozen=True, slots=True)
class _Plan:
    """A routed call: the decision and what goes to the chosen model."""

    routed: Routed
    kwargs: dict[str, Any]
    tools: list[Any] | None
    tool_choice: Any
    tool_kwargs: dict[str, Any]

    def target(self, model: BaseChatModel) -> Runnable[LanguageModelInput, BaseMessage]:
        """The model to call, with the call's tools bound on it."""
        if self.tools is None:
            return model
        if self.tool_choice is None:
            return model.bind_tools(self.tools, **self.tool_kwargs)
        return model.bind_tools(self.tools, tool_choice=self.tool_choice, **self.tool_kwargs)


class _StreamTally:
    """What a stream needs for its routing record: usage, model name, content kind."""

    __slots__ = ("input_tokens", "list_content", "model_name", "output_tokens")

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.model_name: str | None = None
        self.list_content = False

    def add(self, chunk: BaseMessage) -> BaseMessageChunk:
        """Count one inner chunk; return it as a chunk that is not the last one."""
        usage = getattr(chunk, "usage_metadata", None)
        if usage:
            self.input_tokens += usage.get("input_tokens", 0)
            self.output_tokens += usage.get("output_tokens", 0)
        name = chunk.response_metadata.get("model_name")
        if isinstance(name, str) and name:
            self.model_name = name
        self.list_content = isinstance(chunk.content, list)
        if not isinstance(chunk, BaseMessageChunk):  # a model without streaming gives a message
            return AIMessageChunk(**chunk.model_dump(exclude={"type"}))
        if getattr(chunk, "chunk_position", None) == "last":
            return chunk.model_copy(update={"chunk_position": None})
        return chunk


async def _aprepend(
    first: BaseMessage | None, rest: AsyncIterator[BaseMessage]
) -> AsyncIterator[BaseMessage]:
    if first is not None:
        yield first
    async for item in rest:
        yield item


def _prices(prices: dict[ModelChoice, ModelPrices] | None) -> dict[str, ModelPrices] | None:
    return None if prices is None else {str(choice): price for choice, price in prices.items()}


def _child_callbacks(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
) -> CallbackManager | AsyncCallbackManager | None:
    """Callbacks that make the inner model's call a child run of this one."""
    if run_manager is None:
        return None
    manager_class = (
        AsyncCallbackManager
        if isinstance(run_manager, AsyncCallbackManagerForLLMRun)
        else CallbackManager
    )
    manager = manager_class(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager


def _child_config(
    callbacks: CallbackManager | AsyncCallbackManager | None, choice: ModelChoice
) -> RunnableConfig:
    config = RunnableConfig(tags=[f"hybrid:{choice}"])
    if callbacks is not None:
        config["callbacks"] = callbacks
    return config


def _tagged(config: RunnableConfig, choice: ModelChoice) -> RunnableConfig:
    return RunnableConfig(**{**config, "tags": [*config.get("tags", []), f"hybrid:{choice}"]})


def _with_routing(message: BaseMessage, record: RoutingRecord) -> BaseMessage:
    metadata = {**message.response_metadata, "routing": record.as_dict()}
    return message.model_copy(update={"response_metadata": metadata})


def _takes_tools(model: BaseChatModel) -> bool:
    return type(model).bind_tools is not BaseChatModel.bind_tools


def _takes_structured_output(model: BaseChatModel) -> bool:
    overridden = type(model).with_structured_output is not BaseChatModel.with_structured_output
    return overridden or _takes_tools(model)


def _only_large(feature: str, small: BaseChatModel) -> str:
    return f"only the large model supports {feature} ({type(small).__name__} does not)"


def _needs_large(feature: str, large: BaseChatModel) -> str:
    return (
        f"ChatHybrid needs the large model to support {feature}, because any call may be "
        f"routed to it; {type(large).__name__} does not"
    )


def _raise_if_unparsed(result: dict[str, Any]) -> None:
    if result["parsing_error"] is not None:
        raise result["parsing_error"]
    if result["parsed"] is None:
        raise OutputParserException("the small model returned no structured output")


def _fallback_reason(error: Exception, routed: Routed) -> str:
    return (
        f"small model failed ({type(error).__name__}: {error}); the large model answered "
        f"instead (routing: {routed.decision.reason})"
    )
