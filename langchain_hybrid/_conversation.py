"""LangChain messages as the ``(role, text)`` turns the core routes on.

The router only ever sees text: :func:`message_turns` keeps the text blocks of each message
(images, audio, files and tool-call blocks are dropped) and
:func:`shared_router.routing.text.routing_text` picks and clips what is routed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

__all__ = ["conversation_key", "message_turns"]


def _role(message: BaseMessage) -> str:
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, (ToolMessage, FunctionMessage)):
        return "tool"
    if isinstance(message, ChatMessage):
        return message.role
    return message.type


def message_turns(messages: Sequence[BaseMessage]) -> list[tuple[str, str]]:
    """Return ``(role, text)`` per message, with only the text blocks of list content.

    Args:
        messages: A LangChain conversation.

    Returns:
        One turn per message; roles are ``"user"``, ``"assistant"``, ``"system"``,
        ``"tool"`` (a :class:`~langchain_core.messages.ChatMessage` keeps its own role), and a
        message without text has ``""``.
    """
    return [(_role(message), message.text) for message in messages]


def conversation_key(messages: Sequence[BaseMessage]) -> str | None:
    """Identify a conversation by its first user message, for sticky routing.

    Later turns of a conversation repeat its first user message, so its hash names the
    conversation without any state on the caller's side. Two conversations that open with
    the same words share a key; pass an explicit conversation id where that matters.

    Args:
        messages: A LangChain conversation.

    Returns:
        The SHA-256 hex digest of the first user message's text, or None when no user message
        has text.
    """
    for message in messages:
        if _role(message) in ("user", "human"):
            text = message.text.strip()
            if text:
                return hashlib.sha256(text.encode("utf-8")).hexdigest()
    return None
