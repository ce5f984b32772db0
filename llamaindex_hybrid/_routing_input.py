"""What a LlamaIndex call is routed on: its question, its text, its conversation.

A templated prompt is routed on its question variable (see :mod:`llamaindex_hybrid.questions`);
other chats on their ``(role, text)`` turns through
:func:`shared_router.routing.text.routing_text`, and sticky routing names a conversation with
:func:`shared_router.routing.text.conversation_key`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llama_index.core.base.llms.types import ChatMessage

from llamaindex_hybrid.questions import recall_question
from shared_router.errors import EmptyInputError
from shared_router.routing.text import RoutedTextMode, conversation_key, routing_text

__all__ = ["RoutingInput", "chat_routing_input", "message_turns", "prompt_routing_input"]


@dataclass(frozen=True)
class RoutingInput:
    """What one call is routed on.

    Attributes:
        text: The text the router scores.
        conversation_key: The conversation, for sticky routing, or None.
        force_large: Why the call must go large (tools only the large model calls), or None.
    """

    text: str
    conversation_key: str | None = None
    force_large: str | None = None


def message_turns(messages: Sequence[ChatMessage]) -> list[tuple[str, str]]:
    """Return ``(role, text)`` per message (``""`` for a message without text)."""
    return [(message.role.value, message.content or "") for message in messages]


def chat_routing_input(
    messages: Sequence[ChatMessage],
    *,
    routed_text: RoutedTextMode,
    sticky: bool,
    force_large: str | None,
) -> RoutingInput:
    """What a chat is routed on.

    Args:
        messages: The chat.
        routed_text: What of a chat without a remembered question is routed.
        sticky: Whether to name the conversation.
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
    turns = message_turns(messages)
    question = recall_question(messages)
    if question is not None:
        text = routing_text([("user", question)])
    else:
        text = routing_text(turns, mode=routed_text)
    key = conversation_key(turns) if sticky else None
    return RoutingInput(text, key, force_large)


def prompt_routing_input(prompt: str) -> RoutingInput:
    """What a completion prompt is routed on (its question, where it came from a template).

    Raises:
        EmptyInputError: If the prompt is blank.
    """
    if not prompt.strip():
        raise EmptyInputError(f"HybridLLM got an empty prompt ({prompt!r}); pass the query text")
    question = recall_question(prompt)
    return RoutingInput(routing_text([("user", question or prompt)]))
