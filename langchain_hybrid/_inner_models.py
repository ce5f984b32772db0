"""The small and the large model: any chat-model runnable LangChain builds, and what it is.

An inner model is a :class:`~langchain_core.language_models.BaseChatModel`, or one of the
runnables LangChain wraps chat models in: a binding (``.bind(...)``, ``.with_config(...)``,
``.with_retry()``), fallbacks (``.with_fallbacks([...])``), a configurable model
(``.configurable_fields(...)``, ``.configurable_alternatives(...)``) or
``init_chat_model(configurable_fields=...)``. :func:`resolved` turns a configurable one into
the model a call's ``config`` selects; :func:`with_tools` and :func:`with_schema` bind tools
or a schema inside the wrappers (a retrying model keeps retrying with tools bound), as
LangChain's own ``with_fallbacks`` does; :func:`chat_model_of` is the chat model under the
wrappers, which says what the inner model supports, or None where it is chosen per call.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.base import RunnableBindingBase
from langchain_core.runnables.configurable import DynamicRunnable
from langchain_core.runnables.fallbacks import RunnableWithFallbacks

from shared_router.errors import ConfigurationError

__all__ = [
    "InnerModel",
    "chat_model_of",
    "check_inner_model",
    "resolved",
    "with_schema",
    "with_tools",
]

InnerModel = Runnable[LanguageModelInput, Any]
"""A chat model, or a LangChain runnable wrapping one."""

ACCEPTED = (
    "a BaseChatModel (ChatOpenAI(...), ...), a chat model wrapped by .bind(), .with_config(), "
    ".with_retry() or .with_fallbacks(), a .configurable_fields()/.configurable_alternatives() "
    "chat model, or init_chat_model(configurable_fields=...)"
)


def _is_configurable_model(runnable: object) -> bool:
    """Whether ``runnable`` is ``init_chat_model``'s configurable model (langchain's own)."""
    cls = type(runnable)
    return cls.__name__ == "_ConfigurableModel" and cls.__module__.startswith("langchain.")


def check_inner_model(value: object, role: str) -> InnerModel:
    """Return ``value`` if it is a chat model or a LangChain wrapper of one.

    Args:
        value: What was given as the small or the large model.
        role: ``"small"`` or ``"large"``, for the message.

    Returns:
        ``value``.

    Raises:
        ConfigurationError: When it is anything else; the message names the accepted types.
    """
    if _wraps_chat_model(value):
        return value  # type: ignore[return-value]
    raise ConfigurationError(
        f"{role} must be {ACCEPTED}; got {type(value).__name__} ({value!r:.80}). For a "
        "'provider:model' name use ChatHybrid.from_specs(...)"
    )


def _wraps_chat_model(value: object) -> bool:
    if isinstance(value, BaseChatModel) or _is_configurable_model(value):
        return True
    if isinstance(value, RunnableBindingBase):
        return _wraps_chat_model(value.bound)
    if isinstance(value, RunnableWithFallbacks):
        return all(_wraps_chat_model(r) for r in (value.runnable, *value.fallbacks))
    if isinstance(value, DynamicRunnable):
        return _wraps_chat_model(value.default)
    return False


def chat_model_of(model: InnerModel) -> BaseChatModel | None:
    """The chat model under the wrappers (the default one, the first of fallbacks).

    Returns:
        The chat model, or None for ``init_chat_model``'s configurable model (its model is
        chosen per call).
    """
    if isinstance(model, BaseChatModel):
        return model
    if isinstance(model, RunnableBindingBase):
        return chat_model_of(model.bound)
    if isinstance(model, RunnableWithFallbacks):
        return chat_model_of(model.runnable)
    if isinstance(model, DynamicRunnable):
        return chat_model_of(model.default)
    return None


def resolved(model: InnerModel, config: RunnableConfig) -> InnerModel:
    """The model a call with ``config`` runs: configurable models made concrete.

    Args:
        model: The inner model.
        config: The call's config (its ``configurable`` selects fields and alternatives).

    Returns:
        ``model`` itself unless it is, or wraps, a ``configurable_fields`` /
        ``configurable_alternatives`` model.
    """
    if isinstance(model, BaseChatModel):
        return model
    if isinstance(model, DynamicRunnable):
        concrete, _ = model.prepare(config)
        return resolved(concrete, config)
    if isinstance(model, RunnableBindingBase):
        inner = resolved(model.bound, config)
        return model if inner is model.bound else model.model_copy(update={"bound": inner})
    return model


def with_tools(
    model: InnerModel, tools: list[Any], tool_choice: Any, options: dict[str, Any]
) -> InnerModel:
    """``model`` with ``tools`` bound by its own ``bind_tools``, inside its wrappers.

    Args:
        model: A resolved inner model (see :func:`resolved`).
        tools: The tools.
        tool_choice: The ``tool_choice``, or None for the model's default.
        options: Other ``bind_tools`` arguments.

    Returns:
        The model with the tools bound.
    """
    if isinstance(model, RunnableBindingBase):
        return model.model_copy(
            update={"bound": with_tools(model.bound, tools, tool_choice, options)}
        )
    choice = {} if tool_choice is None else {"tool_choice": tool_choice}
    bound: InnerModel = model.bind_tools(tools, **choice, **options)  # type: ignore[attr-defined]
    return bound


def with_schema(model: InnerModel, schema: Any, options: dict[str, Any]) -> InnerModel:
    """``model``'s own structured output for ``schema`` (``include_raw=True``), in its wrappers.

    Args:
        model: A resolved inner model.
        schema: The output schema.
        options: The other ``with_structured_output`` arguments (``method``, ...).

    Returns:
        A runnable giving ``{"raw", "parsed", "parsing_error"}``.
    """
    if isinstance(model, RunnableBindingBase):
        return model.model_copy(update={"bound": with_schema(model.bound, schema, options)})
    structured: InnerModel = model.with_structured_output(  # type: ignore[attr-defined]
        schema, include_raw=True, **options
    )
    return structured
