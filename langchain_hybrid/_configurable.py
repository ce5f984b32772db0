"""Quality knobs per chain: ``configurable`` knob ids, and the level of one call.

A chain sets a quality level with ``with_config(configurable={"max_quality_drop": 0.0})``;
:class:`KnobConfigurableChatModel` declares the three knob ids as configurable fields, and
:func:`call_level` picks the level of one call: the knobs given per call (keyword arguments,
``bind``) replace the chain's ``configurable`` ones, which replace the model's own. Each layer
sets at most one knob.

``stream_events(version="v3")`` runs ChatHybrid's ``_stream`` without the call's config, so
:class:`KnobConfigurableChatModel` passes the config's knobs, conversation id and reference
answer on as keyword arguments there (:func:`with_config_options`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.runnables import ConfigurableFieldSpec, RunnableConfig
from typing_extensions import override

from langchain_hybrid._conversation import CONVERSATION_ID, conversation_id
from langchain_hybrid._shadowing import config_reference
from shared_router.live.settings import REFERENCE_KEYWORD
from shared_router.types import KNOB_NAMES, QualityKnobs

if TYPE_CHECKING:
    from langchain_core.language_models.chat_model_stream import (
        AsyncChatModelStream,
        ChatModelStream,
    )
    from langchain_core.runnables.schema import StreamEvent

__all__ = ["KnobConfigurableChatModel", "call_level", "with_config_options"]

_KNOB_DESCRIPTIONS = {
    "max_quality_drop": "Most relative quality drop accepted versus always-large (0.01 is 1%).",
    "large_share": "Share of calls to send to the large model (0.3 is 30%).",
    "threshold": "Raw threshold on p(small is good enough); p >= threshold goes small.",
}


def call_level(config: Mapping[str, Any], kwargs: dict[str, Any]) -> QualityKnobs | None:
    """Take the knobs out of ``kwargs`` and return the call's level (None: the model's own).

    Args:
        config: The call's config (its ``configurable`` knobs apply when no knob is given
            per call).
        kwargs: The call's keyword arguments; the knobs are removed from it.

    Returns:
        The per-call level, else the chain's, else None.

    Raises:
        KnobError: When one layer sets more than one knob, or a knob is out of range.
    """
    given = {name: kwargs.pop(name) for name in KNOB_NAMES if name in kwargs}
    level = {name: value for name, value in given.items() if value is not None}
    if not level:
        configurable = config.get("configurable") or {}
        level = {n: configurable[n] for n in KNOB_NAMES if configurable.get(n) is not None}
    return QualityKnobs(**level) if level else None


def with_config_options(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the config's knobs (unless a knob is given), conversation id and
    reference answer added."""
    config = config or {}
    configurable = config.get("configurable") or {}
    extra: dict[str, Any] = {}
    if all(kwargs.get(name) is None for name in KNOB_NAMES):
        extra = {n: configurable[n] for n in KNOB_NAMES if configurable.get(n) is not None}
    named = conversation_id(config) if kwargs.get(CONVERSATION_ID) is None else None
    if named is not None:
        extra[CONVERSATION_ID] = named
    reference = config_reference(config)
    if reference is not None and kwargs.get(REFERENCE_KEYWORD) is None:
        extra[REFERENCE_KEYWORD] = reference
    return {**kwargs, **extra} if extra else kwargs


class KnobConfigurableChatModel(BaseChatModel):
    """A chat model whose quality knobs a chain can set in ``configurable``."""

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
        if version == "v3":
            kwargs = with_config_options(config, kwargs)
        return super().stream_events(input, config, version=version, stop=stop, **kwargs)

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
        if version == "v3":
            kwargs = with_config_options(config, kwargs)
        return super().astream_events(input, config, version=version, stop=stop, **kwargs)
