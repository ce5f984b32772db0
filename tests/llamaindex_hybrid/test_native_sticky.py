"""Sticky routing keyed on a conversation id, never on the first message's text (issue 14).

Why bullet 8 ("sticky=True leaks between users").
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from llamaindex_hybrid import HybridLLM
from tests.llamaindex_hybrid.stand_ins import EASY, HARD, StandInLLM


def turn(history: list[ChatMessage], text: str) -> list[ChatMessage]:
    return [
        *history,
        ChatMessage(role=MessageRole.ASSISTANT, content="ok"),
        ChatMessage(role=MessageRole.USER, content=text),
    ]


def model_of(response: Any) -> str:
    return str(response.additional_kwargs["routing"]["model"])


@pytest.fixture
def sticky(small: StandInLLM, large: StandInLLM, planted_router: Any) -> HybridLLM:
    return HybridLLM(small, large, router=planted_router, threshold=0.5, sticky=True)


def test_two_users_who_open_alike_do_not_share_a_conversation(sticky: HybridLLM) -> None:
    hello = [ChatMessage(role=MessageRole.USER, content="Hello")]
    with sticky.conversation("alice"):
        sticky.chat(hello)
        assert model_of(sticky.chat(turn(hello, HARD))) == "large"
        assert model_of(sticky.chat(turn(turn(hello, HARD), EASY))) == "large"  # stays large
    with sticky.conversation("bob"):
        # Before: bob's "Hello" named alice's conversation, so bob was forced large.
        assert model_of(sticky.chat(turn(hello, EASY))) == "small"
    with sticky.conversation("alice"):
        assert model_of(sticky.chat(turn(hello, EASY))) == "large"


def test_without_a_conversation_id_sticky_keeps_nothing(
    sticky: HybridLLM, caplog: pytest.LogCaptureFixture
) -> None:
    hello = [ChatMessage(role=MessageRole.USER, content="Hello")]
    with caplog.at_level(logging.INFO, logger="llamaindex_hybrid"):
        assert model_of(sticky.chat(turn(hello, HARD))) == "large"
        assert model_of(sticky.chat(turn(hello, EASY))) == "small"
    notes = [r for r in caplog.records if "conversation" in r.getMessage()]
    assert len(notes) == 1


def test_chat_engines_are_conversations_by_their_memory(
    sticky: HybridLLM, embed_model: Any
) -> None:
    index = VectorStoreIndex.from_documents([Document(text="Hello.")], embed_model=embed_model)
    alice = index.as_chat_engine(chat_mode="context", llm=sticky)
    bob = index.as_chat_engine(chat_mode="context", llm=sticky)
    replies = [str(alice.chat(q)) for q in ("Hello", HARD, EASY)]
    assert replies == ["[small] answered", "[large] answered", "[large] answered"]
    # Before: bob's conversation opened with "Hello" too, so it was alice's.
    assert [str(bob.chat(q)) for q in ("Hello", EASY)] == ["[small] answered"] * 2


def test_an_explicit_id_wins_over_the_engines_memory(sticky: HybridLLM, embed_model: Any) -> None:
    index = VectorStoreIndex.from_documents([Document(text="Hello.")], embed_model=embed_model)
    with sticky.conversation("carol"):
        index.as_chat_engine(chat_mode="context", llm=sticky).chat(HARD)
        other_engine = index.as_chat_engine(chat_mode="context", llm=sticky)
        assert str(other_engine.chat(EASY)) == "[large] answered"
