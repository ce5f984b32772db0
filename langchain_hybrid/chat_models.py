"""``ChatHybrid``: a LangChain chat model that sends each call to a small or a large chat model."""

from __future__ import annotations

import os
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from functools import partial
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.tools import BaseTool
from pydantic import PrivateAttr, field_validator, model_validator
from typing_extensions import Self, override

from langchain_hybrid._capabilities import needs_large, takes_structured_output, takes_tools
from langchain_hybrid._configurable import KnobConfigurableChatModel
from langchain_hybrid._fallback import ainvoke_with_fallback, invoke_with_fallback, without_run_id
from langchain_hybrid._routed_calls import RoutedCalls
from langchain_hybrid._structured_output import StructuredOutput
from shared_router.errors import ConfigurationError, UnsupportedFeatureError
from shared_router.routing.serving import ModelPrices, RoutingService, StatsSnapshot
from shared_router.routing.text import RoutedTextMode
from shared_router.types import ModelChoice, QualityKnobs

__all__ = ["ChatHybrid"]


class ChatHybrid(KnobConfigurableChatModel):
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

        The final chunk carries ``response_metadata["routing"]``. A small model that fails
        falls back while nothing of its answer has reached the caller: ``stream`` falls back
        when it fails before its first chunk and raises the error after it (chunks already
        delivered cannot be taken back); ``invoke`` (``streaming=True``, or a streaming
        callback handler) falls back at any point and returns the large model's message
        alone (handlers saw the small model's chunks on a first run that ends with an error).
        A call that raises is counted in ``stats.failed``, never as an answer.

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
        raise ConfigurationError(
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
    def _thread_names_conversation(self) -> bool:
        return self.sticky

    # -- invoke: a small model whose stream breaks falls back (langchain_hybrid._fallback) --

    @override
    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        def attempt(retry: bool) -> AIMessage:
            run_config = without_run_id(config) if retry else config
            return super(ChatHybrid, self).invoke(input, run_config, stop=stop, **kwargs)

        return invoke_with_fallback(self._service, attempt)

    @override
    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        async def attempt(retry: bool) -> AIMessage:
            run_config = without_run_id(config) if retry else config
            return await super(ChatHybrid, self).ainvoke(input, run_config, stop=stop, **kwargs)

        return await ainvoke_with_fallback(self._service, attempt)

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
            UnsupportedFeatureError: If the large model does not support tool calling.
        """
        if not takes_tools(self.large):
            raise UnsupportedFeatureError(needs_large("tool calling", self.large))
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
            UnsupportedFeatureError: If the large model does not support structured output.
        """
        if not takes_structured_output(self.large):
            raise UnsupportedFeatureError(needs_large("structured output", self.large))
        output = StructuredOutput.for_schema(
            self.small, self.large, schema, include_raw=include_raw, options=kwargs
        )
        return RunnableLambda(
            partial(self._structured, output=output),
            afunc=partial(self._astructured, output=output),
            name="ChatHybrid",
        )

    def _structured(
        self, model_input: LanguageModelInput, config: RunnableConfig, *, output: StructuredOutput
    ) -> Any:
        messages = self._convert_input(model_input).to_messages()
        kwargs = self._routing_kwargs(config, {})
        return self._routed_calls().structured(messages, config, kwargs, output)

    async def _astructured(
        self, model_input: LanguageModelInput, config: RunnableConfig, *, output: StructuredOutput
    ) -> Any:
        messages = self._convert_input(model_input).to_messages()
        kwargs = self._routing_kwargs(config, {})
        return await self._routed_calls().astructured(messages, config, kwargs, output)

    # -- the calls (see langchain_hybrid._routed_calls) --

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._routed_calls().generate(messages, stop, run_manager, kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await self._routed_calls().agenerate(messages, stop, run_manager, kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        return self._routed_calls().stream(messages, stop, run_manager, kwargs)

    def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        return self._routed_calls().astream(messages, stop, run_manager, kwargs)

    def _routed_calls(self) -> RoutedCalls:
        """What this call needs, read from the current fields."""
        return RoutedCalls(
            small=self.small,
            large=self.large,
            service=self._service,
            routed_text=self.routed_text,
            sticky=self.sticky,
            fallback_to_large=self.fallback_to_large,
            default_stop=self.stop,
            label=self._label,
        )

    def _label(self, choice: ModelChoice) -> str:
        """The inner model's configured name (its tracing name, else its type)."""
        label = self._labels.get(choice)
        if label is None:
            model = self.small if choice == "small" else self.large
            name = model._get_ls_params().get("ls_model_name")
            label = name if isinstance(name, str) and name else model._llm_type
            self._labels[choice] = label
        return label


def _prices(prices: dict[ModelChoice, ModelPrices] | None) -> dict[str, ModelPrices] | None:
    return None if prices is None else {str(choice): price for choice, price in prices.items()}
