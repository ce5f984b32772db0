"""LangChain messages become (role, text) turns; a conversation is named by an explicit id."""

from __future__ import annotations

from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_hybrid._conversation import conversation_id, message_turns


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


def test_a_conversation_is_named_only_by_an_explicit_id() -> None:
    assert conversation_id({"configurable": {"thread_id": 7, "session_id": "s"}}) == "7"
    assert conversation_id({"configurable": {"session_id": "s"}}) == "s"
    assert conversation_id({"configurable": {}, "metadata": {"conversation_id": "m"}}) == "m"
    assert conversation_id({"configurable": {"thread_id": "t"}}, given="bound") == "bound"
    assert conversation_id({"configurable": {"thread_id": ""}, "metadata": {}}) is None
    assert conversation_id({}) is None
