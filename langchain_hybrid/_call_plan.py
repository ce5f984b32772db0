"""A ChatHybrid call's plan: its routing question, then the decision and the models it runs.

A call's keyword arguments carry the tools ``bind_tools`` bound (:func:`tool_keywords`); the
call's request (:func:`call_request`) takes them out and says why the call must go large
where it must: tools only the large model takes, or a conversation beyond the small model's
context window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage

from langchain_hybrid._capabilities import context_window, only_large, takes_tools
from langchain_hybrid._conversation import message_turns
from langchain_hybrid._inner_models import InnerModel, chat_model_of, with_tools
from shared_router.routing.serving import Routed
from shared_router.routing.text import RoutedTextMode, routing_text
from shared_router.types import ModelChoice, QualityKnobs

__all__ = ["CallPlan", "CallRequest", "call_request", "tool_keywords"]

_BYTES_PER_CHAR = 4
"""A byte-level tokenizer makes at most one token per UTF-8 byte, at most 4 per character."""
_TOKENS_PER_MESSAGE = 16
"""A bound on the tokens a chat template adds around each message."""


@dataclass(frozen=True, slots=True)
class CallPlan:
    """A routed call: the decision and what goes to the chosen model.

    Attributes:
        routed: The routing decision.
        small: The small model this call runs (a configurable one resolved for the call).
        large: The large model this call runs.
        kwargs: The keyword arguments for the chosen model (routing arguments taken out).
        tools: The tools bound with ``bind_tools``, or None.
        tool_choice: The ``tool_choice`` given with them, or None.
        tool_kwargs: The other ``bind_tools`` arguments.
        reference: The caller's reference answer for the shadow judge, or None.
    """

    routed: Routed
    small: InnerModel
    large: InnerModel
    kwargs: dict[str, Any]
    tools: list[Any] | None = None
    tool_choice: Any = None
    tool_kwargs: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None

    def model(self, choice: ModelChoice) -> InnerModel:
        """The small or the large model of this call."""
        return self.small if choice == "small" else self.large

    def target(self, choice: ModelChoice) -> InnerModel:
        """The model to call, with the call's tools bound on it."""
        model = self.model(choice)
        if self.tools is None:
            return model
        return with_tools(model, self.tools, self.tool_choice, self.tool_kwargs)

    def falls_back(self, choice: ModelChoice) -> bool:
        """Whether calling ``choice`` is the large model answering for a failed small one."""
        return choice == "large" and self.routed.model == "small"


@dataclass(frozen=True)
class CallRequest:
    """A call's routing question, before the decision.

    Attributes:
        text: The routed text.
        level: The call's quality level, or None for the model's own.
        key: The conversation's id (sticky routing), or None.
        force_large: Why the call must go large, or None.
        plan: The call's plan, given the decision.
    """

    text: str
    level: QualityKnobs | None
    key: str | None
    force_large: str | None
    plan: Callable[[Routed], CallPlan]


def tool_keywords(
    tools: list[Any], tool_choice: Any, tool_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The keyword arguments that carry ``bind_tools``' tools to each call."""
    bound: dict[str, Any] = {"tools": tools}
    if tool_choice is not None:
        bound["tool_choice"] = tool_choice
    if tool_kwargs:
        bound["tool_kwargs"] = tool_kwargs
    return bound


def call_request(
    messages: Sequence[BaseMessage],
    kwargs: dict[str, Any],
    small: InnerModel,
    large: InnerModel,
    *,
    routed_text: RoutedTextMode,
    level: QualityKnobs | None,
    key: str | None,
    force_large: str | None,
    reference: str | None = None,
) -> CallRequest:
    """A call's request, its tools taken out of ``kwargs``.

    Args:
        messages: The conversation.
        kwargs: The call's keyword arguments, the other routing arguments taken out already;
            the tools are removed from it.
        small: The small model, resolved for the call.
        large: The large model, resolved for the call.
        routed_text: What of the conversation is routed.
        level: The call's quality level, or None.
        key: The conversation's id, or None.
        force_large: Why the call must go large already (structured output), or None.
        reference: The caller's reference answer for the shadow judge, or None.

    Returns:
        The request.
    """
    tools = kwargs.pop("tools", None) or None
    tool_choice = kwargs.pop("tool_choice", None)
    tool_kwargs = kwargs.pop("tool_kwargs", None) or {}
    turns = message_turns(messages)
    if force_large is None and tools is not None and not takes_tools(small):
        force_large = only_large("tool calling", small)
    if force_large is None:
        force_large = _beyond_window(small, messages, turns)

    def plan(routed: Routed) -> CallPlan:
        return CallPlan(routed, small, large, kwargs, tools, tool_choice, tool_kwargs, reference)

    return CallRequest(routing_text(turns, mode=routed_text), level, key, force_large, plan)


def _beyond_window(
    small: InnerModel, messages: Sequence[BaseMessage], turns: Sequence[tuple[str, str]]
) -> str | None:
    """Why a conversation that does not fit the small model's context window goes large.

    Tokens are counted (with the small model's own counter) only when the conversation may
    not fit: a byte-level tokenizer makes at most 4 tokens a character.
    """
    chat = chat_model_of(small)
    window = context_window(chat) if chat is not None else None
    if chat is None or window is None:
        return None
    chars = sum(len(text) for _, text in turns)
    if chars * _BYTES_PER_CHAR + _TOKENS_PER_MESSAGE * len(messages) <= window:
        return None
    tokens = chat.get_num_tokens_from_messages(list(messages))
    if tokens <= window:
        return None
    return (
        f"the conversation has {tokens} tokens, more than the small model's context window "
        f"({window} tokens)"
    )
