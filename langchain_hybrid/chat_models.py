"""``ChatHybrid``: a LangChain chat model that sends each call to a small or a large chat model."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import PrivateAttr, field_validator, model_validator
from typing_extensions import Self, override

from langchain_hybrid._binding import HybridBinding, HybridStructuredOutput
from langchain_hybrid._call_plan import tool_keywords
from langchain_hybrid._capabilities import needs_large, takes_structured_output, takes_tools
from langchain_hybrid._configurable import KnobConfigurableChatModel
from langchain_hybrid._entry_points import RoutedEntryPoints
from langchain_hybrid._inner_models import InnerModel, chat_model_of, check_inner_model
from langchain_hybrid._naming import langsmith_params, model_label, model_params, router_identity
from langchain_hybrid._routed_calls import RoutedCalls
from langchain_hybrid._settings import checked_cache, checked_router, prices_by_name, warn_ignored
from langchain_hybrid._structured_output import StructuredOutput
from langchain_hybrid._token_counts import TokenCountingChatModel
from shared_router._internal.extras import require_extra
from shared_router.errors import UnsupportedFeatureError
from shared_router.live.settings import LiveSettings, checked_live_settings
from shared_router.routing.accounting import ModelPrices, StatsSnapshot
from shared_router.routing.failures import FALLBACK_FIELDS, FallbackPolicy
from shared_router.routing.serving import SERVICE_FIELDS, RoutingService
from shared_router.routing.text import RoutedTextMode
from shared_router.types import KNOB_NAMES, ModelChoice, QualityKnobs

__all__ = ["ChatHybrid"]

logger = logging.getLogger(__name__)

_CHECKED_ON_ASSIGNMENT: dict[str, Callable[[Any], Any]] = {
    "router": checked_router,
    "live": checked_live_settings,
    "cache": checked_cache,
}


class ChatHybrid(KnobConfigurableChatModel, TokenCountingChatModel, RoutedEntryPoints):
    """Chat model that routes every call to a small or a large chat model (Hybrid LLM).

    A router reads the query and predicts p, the probability that the small model's answer
    is as good as the large model's; ``p >= threshold`` goes to the small model. Everything
    else is the chosen model's own behaviour: tokens, tool calls, usage and response metadata
    pass through, and are cached by LangChain's LLM cache, once, under the chosen model's key.
    In traces every call is one ``ChatHybrid`` run whose metadata is the decision
    (``hybrid_model``, ``hybrid_score``, ``hybrid_threshold``, ``hybrid_knob``,
    ``hybrid_calibration``, ``hybrid_fallback``, ...), with the chosen model's own run as its
    child, tagged ``hybrid:small`` or ``hybrid:large``: tokens stream and usage is reported
    once, in every mode (``invoke``, ``stream``, ``astream_events``, agents).

    Setup:
        Install the package with its LangChain extra, and the provider packages of the two
        models you route between:

        ```bash
        pip install "hybrid-llm[langchain]" langchain-openai
        ```

    Key init args — routing:
        small: BaseChatModel (or a LangChain wrapper of one)
            The cheap model. ``.with_retry()``, ``.bind(...)``, ``.with_fallbacks(...)``,
            ``.configurable_alternatives(...)`` and ``init_chat_model(configurable_fields=...)``
            are accepted too.
        large: BaseChatModel (or a wrapper)
            The expensive model; it must support whatever the call needs (tools,
            structured output), because any call may go to it.
        router: str | Path | Router
            ``"default"`` (the bundled router), a router folder (checked here, loaded on
            first use, once per process), or a ``Router``.
        max_quality_drop / large_share / threshold: float | None
            The quality level; at most one. None of them means the router's own default.
        fallback_to_large: bool
            Answer with the large model when the small one fails as a provider (default True).
        exceptions_to_handle: tuple of exception types | None
            The small-model errors that fall back, replacing the provider rule (as in
            ``with_fallbacks``).
        routed_text: ``"last_user"`` | ``"conversation"``
            What is routed: the last user message (default) or the whole conversation.
        sticky: bool
            Once a conversation went to the large model, its later turns stay there (the
            conversation is named by its ``thread_id``/``session_id``; see below).
        pace_large_share: bool
            Hold a ``large_share`` level on live traffic instead of the calibration quantile.
        prices: dict | None
            ``{"small": ModelPrices, "large": ModelPrices}`` for savings accounting.
        live: LiveSettings | None
            Shadow evaluation, live calibration and retraining on this model's traffic
            (docs/live.md); ``stats.live`` shows them.

        Any other argument is ignored with a warning (set provider parameters such as
        ``temperature`` on the two models); one that is a misspelling of an argument above
        (``max_qualty_drop``) is an error naming the one meant.

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
        delivered cannot be taken back); ``invoke`` (also with ``streaming=True``) falls back
        at any point. Only a provider's failure falls back (time-out, connection, rate limit,
        server error, unparsable structured output), with a WARNING naming it; programming
        errors propagate. A call that raises is counted in ``stats.failed``.

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
        Levels set by ``bind``/``with_config`` survive ``bind_tools``,
        ``with_structured_output`` and ``create_agent``.
        With ``sticky=True`` a conversation is named by ``configurable["thread_id"]``
        (LangGraph), ``configurable["session_id"]`` (``RunnableWithMessageHistory``), the same
        keys in ``metadata``, or ``conversation_id=...``; a call that names none is routed on
        its own (with a warning, once).

    Response metadata:
        ```python
        msg = llm.invoke(messages)
        msg.response_metadata["routing"]
        ```

        ```python
        {"model": "small", "model_name": "gpt-4o-mini", "score": 0.97, "threshold": 0.82,
         "knob": "max_quality_drop", "router": "hybrid-llm-router", "router_ms": 4.1,
         "fallback": False, "cached": False, "reason": "score 0.9700 >= threshold 0.8200 ..."}
        ```

        ``llm.stats`` counts calls, small/large answers, fallbacks and, with ``prices``, the
        estimated cost saved against always using the large model.
    """

    small: InnerModel
    """The small (cheap) chat model; it answers when the router predicts it is good enough."""

    large: InnerModel
    """The large chat model; it answers the other calls and every fallback."""

    router: Any = "default"
    """The router: ``"default"`` for the bundled one, a router folder, or a ``Router``.

    A folder is checked when the model is built and loaded on first use, once per process:
    every ChatHybrid (and copy) over the same folder shares one router.
    """

    max_quality_drop: float | None = None
    """Most relative quality drop accepted versus always-large (0.01 is 1%)."""

    large_share: float | None = None
    """Share of calls to send to the large model (0.3 is 30%)."""

    threshold: float | None = None
    """Raw threshold on the router's score; a score at or above it goes small."""

    fallback_to_large: bool = True
    """Answer with the large model when the small model fails as a provider.

    Set timeouts on the small model itself (``ChatOpenAI(timeout=10)``): its timeout error
    triggers the fallback. Errors of the large model are raised unchanged.
    """

    exceptions_to_handle: tuple[type[BaseException], ...] | None = None
    """The small-model errors that fall back, as in ``with_fallbacks``; None: a provider's
    failures (time-outs, connection errors, rate limits, server errors, the errors of provider
    client libraries, unparsable structured output), never programming errors."""

    routed_text: RoutedTextMode = "last_user"
    """What is routed: the last user message with text, or the whole ``"conversation"``.

    A follow-up such as "Why?" is routed on itself under ``"last_user"``; route the whole
    ``"conversation"`` (or use ``sticky``) where follow-ups should weigh what came before.
    """

    sticky: bool = False
    """Keep a conversation on the large model once one of its turns went there.

    The conversation is named by ``configurable["thread_id"]``/``["session_id"]``, the same
    keys in ``metadata``, or ``conversation_id=...``; a call that names none is routed alone.
    """

    pace_large_share: bool = False
    """Hold a ``large_share`` level on live traffic (running quantile of recent scores)."""

    prices: dict[ModelChoice, ModelPrices] | None = None
    """Token prices per million of ``"small"`` and ``"large"``, for ``stats.cost_saved``."""

    stop: list[str] | None = None
    """Default stop sequences, passed to whichever model answers (a per-call ``stop`` wins)."""

    streaming: bool = False
    """Whether ``invoke`` streams from the chosen model (its tokens reach callback handlers)."""

    live: Any = None
    """A :class:`~shared_router.live.settings.LiveSettings`: shadow a random share of calls
    off the caller's path, route ``max_quality_drop`` at the live calibration (docs/live.md)."""

    _service: RoutingService = PrivateAttr()
    _policy: FallbackPolicy = PrivateAttr()
    _labels: dict[int, str] = PrivateAttr(default_factory=dict)
    _warned_unnamed: bool = PrivateAttr(default=False)

    @model_validator(mode="before")
    @classmethod
    def _warn_ignored(cls, values: Any) -> Any:
        warn_ignored(cls.model_fields, values)
        return values

    @field_validator("small", "large", mode="plain")
    @classmethod
    def _check_inner(cls, value: Any, info: Any) -> InnerModel:
        return check_inner_model(value, info.field_name)

    @field_validator(*KNOB_NAMES, mode="plain")
    @classmethod
    def _keep_knob(cls, value: Any) -> Any:
        return value  # as given: QualityKnobs checks it (a string or a bool is no level)

    @field_validator("router", mode="before")
    @classmethod
    def _check_router(cls, value: Any) -> Any:
        return checked_router(value)

    @field_validator("live", mode="plain")
    @classmethod
    def _check_live(cls, value: Any) -> LiveSettings | None:
        return checked_live_settings(value)

    @field_validator("cache", mode="after")
    @classmethod
    def _check_cache(cls, value: Any) -> Any:
        return checked_cache(value)

    @model_validator(mode="after")
    def _build_service(self) -> Self:
        self._service = RoutingService(self.router, **self._service_settings())
        self._policy = self._fallback_policy()
        return self

    def _service_settings(self) -> dict[str, Any]:
        """The routing service's settings from the fields (the router aside)."""
        knobs = QualityKnobs(
            max_quality_drop=self.max_quality_drop,
            large_share=self.large_share,
            threshold=self.threshold,
        )
        return {
            "knobs": knobs,
            "sticky": self.sticky,
            "pace_large_share": self.pace_large_share,
            "prices": prices_by_name(self.prices),
            "live": self.live.loop() if self.live is not None else None,
        }

    def _fallback_policy(self) -> FallbackPolicy:
        return FallbackPolicy(
            enabled=self.fallback_to_large, exceptions_to_handle=self.exceptions_to_handle
        )

    def __setattr__(self, name: str, value: Any) -> None:
        """Check an assigned setting as the constructor does, and route on it from then on.

        A quality level applies from the next call, with the stats kept. A new ``router``,
        ``sticky``, ``pace_large_share``, ``prices`` or ``live`` rebuilds the routing service,
        as :meth:`model_copy` does (its stats start afresh).

        Raises:
            KnobError: For a level that is not a number in its range, or a second level set.
            ConfigurationError: For a small or large model that is not a chat model, or a
                router, ``live`` or ``cache`` of a kind not taken.
        """
        if name in ("small", "large"):
            value = check_inner_model(value, name)
        elif name in _CHECKED_ON_ASSIGNMENT:
            value = _CHECKED_ON_ASSIGNMENT[name](value)
        knobs = None
        if name in KNOB_NAMES:
            level = {knob: getattr(self, knob) for knob in KNOB_NAMES}
            knobs = QualityKnobs(**{**level, name: value})
        super().__setattr__(name, value)
        if knobs is not None:
            self._service.knobs = knobs
        elif name in SERVICE_FIELDS:
            routing = {"router": self.router} if name == "router" else {}
            self._service = self._service.replace(**self._service_settings(), **routing)
        elif name in FALLBACK_FIELDS:
            self._policy = self._fallback_policy()

    @override
    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied: same router, its own stats, the new settings."""
        copied = super().model_copy(update=update, deep=deep)
        routing = {} if update is None else {"router": copied.router} if "router" in update else {}
        copied._service = self._service.replace(**copied._service_settings(), **routing)
        copied._policy = copied._fallback_policy()
        copied._labels = {}
        copied._warned_unnamed = False
        return copied

    @classmethod
    def from_specs(
        cls,
        small: str,
        large: str,
        *,
        small_kwargs: Mapping[str, Any] | None = None,
        large_kwargs: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> ChatHybrid:
        """Build ChatHybrid over two ``provider:model`` names, with ``init_chat_model``.

        Args:
            small: The small model, such as ``"openai:gpt-4o-mini"``.
            large: The large model, such as ``"openai:gpt-4o"``.
            small_kwargs: Provider arguments of the small model (``temperature``, ...).
            large_kwargs: Provider arguments of the large model.
            **fields: ChatHybrid's own fields (``router``, ``max_quality_drop``, ...).

        Returns:
            The model.

        Raises:
            MissingDependencyError: Without ``langchain`` (the ``collect`` extra).
        """
        chat_models = require_extra(
            "langchain.chat_models", extra="collect", purpose="ChatHybrid.from_specs"
        )
        return cls(
            small=chat_models.init_chat_model(small, **(small_kwargs or {})),
            large=chat_models.init_chat_model(large, **(large_kwargs or {})),
            **fields,
        )

    @property
    def _llm_type(self) -> str:
        return "hybrid-chat"

    @property
    def model_name(self) -> str:
        """A name for the pair, such as ``hybrid(small=gpt-4o-mini, large=gpt-4o)``."""
        return f"hybrid(small={self._label(self.small)}, large={self._label(self.large)})"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "small": model_params(self.small),
            "large": model_params(self.large),
            "router": router_identity(self.router),
            **self._service.knobs.set_knobs(),
            "fallback_to_large": self.fallback_to_large,
            "routed_text": self.routed_text,
            "sticky": self.sticky,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return langsmith_params(self.model_name, stop or self.stop, kwargs)

    def _inner_chat_models(self) -> tuple[BaseChatModel | None, BaseChatModel | None]:
        return chat_model_of(self.small), chat_model_of(self.large)

    @property
    def stats(self) -> StatsSnapshot:
        """Calls, small and large answers, fallbacks and estimated savings so far.

        With ``live`` set, a :class:`~shared_router.live.serving_stats.LiveServingStats`:
        the same counters and ``.live`` (shadowed calls, their cost, the calibration).
        """
        snapshot = self._service.stats
        return snapshot if self.live is None else self.live.loop().serving_stats(snapshot)

    # -- bindings, tools and structured output --

    @override
    def bind(self, **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:  # type: ignore[override]
        """Bind keyword arguments (knobs, ``conversation_id``, provider arguments).

        The binding keeps them through ``bind_tools`` and ``with_structured_output``.
        """
        return HybridBinding(bound=self, kwargs=kwargs, config={})

    @override
    def with_config(
        self, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind a config (``configurable`` knobs, tags, callbacks, ...).

        The binding keeps it through ``bind_tools`` and ``with_structured_output``.
        """
        bound = cast(RunnableConfig, {**(config or {}), **kwargs})
        return HybridBinding(bound=self, config=bound, kwargs={})

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
                ``parallel_tool_calls``, ``response_format``, ...).

        Returns:
            This model with the tools bound. Calls go to the large model when the small one
            cannot take tools.

        Raises:
            UnsupportedFeatureError: If the large model does not support tool calling.
        """
        if not takes_tools(self.large):
            raise UnsupportedFeatureError(needs_large("tool calling", self.large))
        return self.bind(**tool_keywords(list(tools), tool_choice, kwargs))

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
            A runnable producing the parsed output (streaming yields it once, complete);
            it takes the knobs per call: ``.invoke(x, threshold=0.9)``.

        Raises:
            UnsupportedFeatureError: If the large model does not support structured output.
        """
        if not takes_structured_output(self.large):
            raise UnsupportedFeatureError(needs_large("structured output", self.large))
        output = StructuredOutput(
            self.small, self.large, schema, include_raw=include_raw, options=kwargs
        )
        return HybridStructuredOutput(self._routed_calls, output)

    def _routed_calls(self) -> RoutedCalls:
        """What this call needs, read from the current fields."""
        return RoutedCalls(
            owner=self,
            small=self.small,
            large=self.large,
            service=self._service,
            routed_text=self.routed_text,
            sticky=self.sticky,
            policy=self._policy,
            default_stop=self.stop,
            streaming=self.streaming,
            label=self._label,
            unnamed=self._warn_unnamed_conversation,
        )

    def _label(self, model: InnerModel) -> str:
        """An inner model's configured name, kept for the small and the large model."""
        label = self._labels.get(id(model))
        if label is None:
            label = model_label(model)
            if model is self.small or model is self.large:
                self._labels[id(model)] = label
        return label

    def _warn_unnamed_conversation(self) -> None:
        if not self._warned_unnamed:
            self._warned_unnamed = True
            logger.warning(
                "ChatHybrid(sticky=True): a call names no conversation, so it is routed on its "
                "own; name conversations with configurable={'thread_id': ...} (LangGraph), "
                "session_id (RunnableWithMessageHistory), metadata, or conversation_id=..."
            )
