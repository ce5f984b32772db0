"""Sticky routing keyed by an explicit conversation id, never by a first message alone.

The id is ``configurable["thread_id"]`` (LangGraph, with a checkpointer),
``configurable["session_id"]`` (``RunnableWithMessageHistory``), ``metadata["thread_id"]`` /
``metadata["conversation_id"]``, or ``conversation_id=`` (per call or ``bind``). A call that
names no conversation is routed on its own.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from langchain_core.chat_history import InMemoryChatMessageHistory
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from langchain_hybrid import ChatHybrid
from tests.langchain_hybrid.conftest import EASY, HARD
from tests.langchain_hybrid.stand_ins import StandInChatModel

GREETING = [("human", "Hi"), ("ai", "Hello! How can I help?")]
OPENER = "How many days are in a week?"


@pytest.fixture
def llm(small: StandInChatModel, large: StandInChatModel, planted_router: Any) -> ChatHybrid:
    """A sticky ChatHybrid."""
    return ChatHybrid(small=small, large=large, router=planted_router, sticky=True)


def _model(message: Any) -> str:
    routing: dict[str, Any] = message.response_metadata["routing"]
    return str(routing["model"])


def test_conversations_that_open_alike_do_not_share_stickiness(
    llm: ChatHybrid, caplog: pytest.LogCaptureFixture
) -> None:
    assert _model(llm.invoke([*GREETING, ("human", HARD)])) == "large"
    with caplog.at_level(logging.WARNING, logger="langchain_hybrid"):
        assert _model(llm.invoke([*GREETING, ("human", EASY)])) == "small"
    assert any("conversation" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    "name",
    [
        lambda cid: {"configurable": {"thread_id": cid}},
        lambda cid: {"configurable": {"session_id": cid}},
        lambda cid: {"metadata": {"thread_id": cid}},
        lambda cid: {"metadata": {"conversation_id": cid}},
    ],
    ids=["thread_id", "session_id", "metadata_thread_id", "metadata_conversation_id"],
)
def test_a_named_conversation_stays_large(llm: ChatHybrid, name: Any) -> None:
    assert _model(llm.invoke([*GREETING, ("human", HARD)], name("a"))) == "large"
    assert _model(llm.invoke([*GREETING, ("human", EASY)], name("a"))) == "large"
    assert _model(llm.invoke([*GREETING, ("human", EASY)], name("b"))) == "small"


def test_a_bound_conversation_id_names_the_conversation(llm: ChatHybrid) -> None:
    user_a = llm.bind(conversation_id="a")
    assert _model(user_a.invoke([*GREETING, ("human", HARD)])) == "large"
    assert _model(user_a.invoke([*GREETING, ("human", EASY)])) == "large"
    assert _model(llm.invoke([*GREETING, ("human", EASY)], conversation_id="b")) == "small"


def test_runnable_with_message_history_sessions_are_the_conversations(llm: ChatHybrid) -> None:
    histories: dict[str, InMemoryChatMessageHistory] = {}
    prompt = ChatPromptTemplate.from_messages(
        [MessagesPlaceholder("history"), ("human", "{question}")]
    )
    chat = RunnableWithMessageHistory(
        prompt | llm,
        lambda session_id: histories.setdefault(session_id, InMemoryChatMessageHistory()),
        input_messages_key="question",
        history_messages_key="history",
    )

    def ask(session: str, question: str) -> str:
        return _model(
            chat.invoke({"question": question}, {"configurable": {"session_id": session}})
        )

    assert ask("alice", OPENER) == ask("bob", OPENER) == "small"
    assert ask("alice", HARD) == "large"
    assert ask("alice", EASY) == "large"
    assert ask("bob", EASY) == "small"


def test_langgraph_threads_with_a_checkpointer_are_the_conversations(llm: ChatHybrid) -> None:
    def respond(state: MessagesState) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("respond", respond)
    builder.add_edge(START, "respond")
    graph = builder.compile(checkpointer=InMemorySaver())

    def ask(thread: str, question: str) -> str:
        state = graph.invoke(
            {"messages": [("human", question)]}, {"configurable": {"thread_id": thread}}
        )
        return _model(state["messages"][-1])

    assert ask("t1", OPENER) == ask("t2", OPENER) == "small"
    assert ask("t1", HARD) == "large"
    assert ask("t1", EASY) == "large"
    assert ask("t2", EASY) == "small"
