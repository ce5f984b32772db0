"""What a LlamaIndex call is routed on: its question, its text, its conversation.

The question comes first (see :mod:`llamaindex_hybrid.questions`): said with
``routing_question``, taken from the template HybridLLM formats, or found in a LlamaIndex
template formatted by hand (:mod:`llamaindex_hybrid._library_prompts`). Other chats are routed
on their ``(role, text)`` turns through :func:`shared_router.routing.text.routing_text`;
ReAct observations (``"Observation: ..."`` user turns, the result of a tool call) are not the
question, so a chat is routed on the user turn they serve.

A conversation, for sticky routing, is named explicitly: a ``with llm.conversation(id):``
block (:func:`conversation_in_block`) or the memory of the chat engine the call runs in
(:mod:`llamaindex_hybrid._spans`); never by the text of its first message, which two users
may share.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.instrumentation.span import active_span_id

from llamaindex_hybrid._library_prompts import library_question
from llamaindex_hybrid._spans import routing_spans
from llamaindex_hybrid.questions import said_question
from shared_router.errors import EmptyInputError
from shared_router.routing.text import RoutedTextMode, routing_text

__all__ = [
    "RoutingInput",
    "chat_routing_input",
    "conversation_in_block",
    "conversation_of",
    "message_turns",
    "prompt_routing_input",
]

_OBSERVATION = "Observation:"
_USER_ROLES = frozenset({"user", "human"})

_CONVERSATIONS: ContextVar[Mapping[int, str]] = ContextVar(
    "llamaindex_hybrid_conversations", default=MappingProxyType({})
)


@dataclass(frozen=True)
class RoutingInput:
    """What one call is routed on.

    Attributes:
        text: The text the router scores.
        force_large: Why the call must go large (tools only the large model calls), or None.
    """

    text: str
    force_large: str | None = None


def message_turns(messages: Sequence[ChatMessage]) -> list[tuple[str, str]]:
    """Return ``(role, text)`` per message (``""`` for a message without text)."""
    return [(message.role.value, message.content or "") for message in messages]


def _without_observations(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The turns without ReAct observations, unless nothing else is a user turn."""
    kept = [
        (role, text)
        for role, text in turns
        if not (role.lower() in _USER_ROLES and text.lstrip().startswith(_OBSERVATION))
    ]
    return kept if any(role.lower() in _USER_ROLES for role, _ in kept) else turns


def _last_user_text(turns: Sequence[tuple[str, str]]) -> str | None:
    for role, text in reversed(turns):
        if role.lower() in _USER_ROLES and text.strip():
            return text
    return None


def chat_routing_input(
    messages: Sequence[ChatMessage],
    *,
    routed_text: RoutedTextMode,
    question: str | None = None,
    force_large: str | None = None,
) -> RoutingInput:
    """What a chat is routed on.

    Args:
        messages: The chat.
        routed_text: What of a chat without a known question is routed.
        question: The question of the template the chat was formatted from, if known.
        force_large: Why the call must go large, or None.

    Returns:
        The routing input.

    Raises:
        EmptyInputError: If there are no messages.
    """
    if not messages:
        raise EmptyInputError(
            "HybridLLM got no messages; pass at least one ChatMessage with the query"
        )
    turns = _without_observations(message_turns(messages))
    last_user = _last_user_text(turns)
    known = said_question() or question
    if known is None and last_user is not None:
        known = library_question(last_user)
    if known is not None:
        return RoutingInput(routing_text([("user", known)]), force_large)
    return RoutingInput(routing_text(turns, mode=routed_text), force_large)


def prompt_routing_input(prompt: str, *, question: str | None = None) -> RoutingInput:
    """What a completion prompt is routed on (its question, when one is known or found).

    Raises:
        EmptyInputError: If the prompt is blank.
    """
    if not prompt.strip():
        raise EmptyInputError(f"HybridLLM got an empty prompt ({prompt!r}); pass the query text")
    known = said_question() or question or library_question(prompt)
    return RoutingInput(routing_text([("user", known or prompt)]))


@contextmanager
def conversation_in_block(owner: object, conversation_id: str) -> Iterator[None]:
    """Make ``owner``'s calls in the ``with`` block part of the conversation ``conversation_id``.

    Args:
        owner: The HybridLLM the conversation is for.
        conversation_id: The conversation's id (a session or user id).

    Yields:
        Nothing; :func:`conversation_of` names the conversation inside the block.
    """
    token = _CONVERSATIONS.set(
        MappingProxyType({**_CONVERSATIONS.get(), id(owner): conversation_id})
    )
    try:
        yield
    finally:
        _CONVERSATIONS.reset(token)


def conversation_of(owner: object) -> str | None:
    """The conversation of ``owner``'s call here: the block's, else its chat engine's memory's."""
    explicit = _CONVERSATIONS.get().get(id(owner))
    if explicit is not None:
        return f"id:{explicit}"
    return routing_spans().conversation(active_span_id.get())
