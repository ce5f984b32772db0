"""Quality knobs per chain: a chain's ``configurable`` knobs become per-call keyword arguments.

LangChain hands ``config`` to ``invoke`` and its siblings but not to ``_generate`` /
``_stream``, so :class:`KnobConfigurableChatModel` overrides every entry point to fold the
knobs a chain set in ``configurable`` (and LangGraph's ``thread_id``, which names a
conversation) into the call's keyword arguments. A knob given per call (keyword arguments,
``bind``) replaces the chain's, which replaces the model's own.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import TYPE_CHECKING, Any, Literal, overload

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import ConfigurableFieldSpec, RunnableConfig
from typing_extensions import override

from shared_router.types import KNOB_NAMES

if TYPE_CHECKING:
    from langchain_core.language_models.chat_model_stream import (
        AsyncChatModelStream,
        ChatModelStream,
    )
    from langchain_core.runnables.schema import StreamEvent

__all__ = ["CONVERSATION_ID", "KnobConfigurableChatModel"]

CONVERSATION_ID = "conversation_id"
"""The keyword argument (and ``configurable`` key) that names a call's conversation."""

_THREAD_ID = "thread_id"
_KNOB_DESCRIPTIONS = {
    "max_quality_drop": "Most relative quality drop accepted versus always-large (0.01 is 1%).",
    "large_share": "Share of calls to send to the large model (0.3 is 30%).",
    "threshold": "Raw threshold on p(small is good enough); p >= threshold goes small.",
}


class KnobConfigurableChatModel(BaseChatModel):
    """A chat model whose quality knobs a chain can set in ``configurable``.

    Every entry point passes the knobs of ``config["configurable"]`` on to ``_generate`` /
    ``_stream`` as keyword arguments, unless the call set a knob itself; ``thread_id`` becomes
    ``conversation_id`` where :attr:`_thread_names_conversation` says so.
    """

    @property
    @abstractmethod
    def _thread_names_conversation(self) -> bool:
        """Whether a chain's ``thread_id`` is passed on as the call's conversation id."""

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
        names_conversation = self._thread_names_conversation and thread is not None
        if names_conversation and kwargs.get(CONVERSATION_ID) is None:
            extra[CONVERSATION_ID] = str(thread)
        return {**kwargs, **extra} if extra else kwargs

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
