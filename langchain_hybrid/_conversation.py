"""LangChain conversations: messages as ``(role, text)`` turns, and their explicit ids.

The router only ever sees text: :func:`message_turns` keeps the text blocks of each message
(images, audio, files and tool-call blocks are dropped);
:func:`shared_router.routing.text.routing_text` picks and clips what is routed.

Sticky routing needs to know which conversation a call belongs to, and only the caller knows:
:func:`conversation_id` reads the id LangChain's own conversation tools put in a call's
config (LangGraph's ``thread_id``, ``RunnableWithMessageHistory``'s ``session_id``) or one the
caller gives. Conversations are never told apart by their first message (every chat that
opens with "Hi" would be one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

__all__ = ["CONVERSATION_ID", "CONVERSATION_KEYS", "conversation_id", "message_turns"]

CONVERSATION_ID = "conversation_id"
"""The keyword argument (per call or ``bind``) that names a call's conversation."""

CONVERSATION_KEYS = ("thread_id", "session_id", CONVERSATION_ID)
"""The ``configurable`` (then ``metadata``) keys that name a conversation, first found wins:
LangGraph's ``thread_id``, ``RunnableWithMessageHistory``'s ``session_id``, or
``conversation_id``."""


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


def conversation_id(config: Mapping[str, Any], given: object = None) -> str | None:
    """The id of the conversation a call belongs to, or None when nothing names one.

    Args:
        config: The call's config.
        given: A ``conversation_id`` given per call or bound; it wins.

    Returns:
        ``given``, else the first of :data:`CONVERSATION_KEYS` set in ``configurable``, then
        in ``metadata``, as a string.
    """
    if given is not None and given != "":
        return str(given)
    for section in ("configurable", "metadata"):
        values = config.get(section) or {}
        for key in CONVERSATION_KEYS:
            value = values.get(key)
            if value is not None and value != "":
                return str(value)
    return None
