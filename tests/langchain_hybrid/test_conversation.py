"""LangChain messages become (role, text) turns; a conversation is named by its first question."""

from __future__ import annotations

import hashlib

from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_hybrid._conversation import message_turns
from shared_router.routing.text import conversation_key


def test_turns_keep_roles_and_only_the_text_blocks() -> None:
    messages = [
        SystemMessage("Be brief."),
        HumanMessage(
            content=[
                {"type": "text", "text": "What is in "},
                {"type": "image", "url": "https://example.com/cat.png"},
                {"type": "text", "text": "this picture?"},
            ]
        ),
        AIMessage("", tool_calls=[{"name": "look", "args": {}, "id": "c1", "type": "tool_call"}]),
        ToolMessage("a cat", tool_call_id="c1"),
        ChatMessage(role="critic", content="Too short."),
    ]

    assert message_turns(messages) == [
        ("system", "Be brief."),
        ("user", "What is in this picture?"),
        ("assistant", ""),
        ("tool", "a cat"),
        ("critic", "Too short."),
    ]


def test_a_conversation_is_named_by_its_first_user_text() -> None:
    opening = [SystemMessage("Be brief."), HumanMessage("  Plan my trip.  ")]
    later = [*opening, AIMessage("Where to?"), HumanMessage("Rome")]
    chat_role = [ChatMessage(role="user", content="Plan my trip.")]

    key = hashlib.sha256(b"Plan my trip.").hexdigest()
    assert conversation_key(message_turns(opening)) == conversation_key(message_turns(later)) == key
    assert conversation_key(message_turns(chat_role)) == key
    assert conversation_key(message_turns([HumanMessage("Plan my holiday.")])) != key


def test_a_conversation_without_user_text_has_no_name() -> None:
    image_only = HumanMessage(content=[{"type": "image", "url": "https://example.com/a.png"}])

    assert conversation_key(message_turns([SystemMessage("Be brief."), image_only])) is None
