"""LangChain messages as the ``(role, text)`` turns the core routes on.

The router only ever sees text: :func:`message_turns` keeps the text blocks of each message
(images, audio, files and tool-call blocks are dropped);
:func:`shared_router.routing.text.routing_text` picks and clips what is routed and
:func:`shared_router.routing.text.conversation_key` names the conversation.
"""

from __future__ import annotations

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

__all__ = ["message_turns"]


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
