"""Token counting once, a routing event, the record on engine responses (issue 14).

Why bullets 6 ("observability double counts") and 7 ("the routing record is hard to reach").
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import BaseModel
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)

from llamaindex_hybrid import HybridLLM, RoutingEvent
from tests.fixed_router import FixedRouter
from tests.llamaindex_hybrid.stand_ins import EASY, HARD, EventLog, StandInLLM


class Song(BaseModel):
    """A song."""

    name: str


@pytest.fixture
def counter() -> Iterator[TokenCountingHandler]:
    """A TokenCountingHandler on ``Settings.callback_manager``, as LlamaIndex's docs set it."""
    handler = TokenCountingHandler(tokenizer=lambda text: text.split())
    previous = Settings._callback_manager
    Settings.callback_manager = CallbackManager([handler])
    yield handler
    Settings._callback_manager = previous


@pytest.fixture(scope="module")
def index(embed_model: Any) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(
        [Document(text="The notice period is 30 days."), Document(text="Two plus three is five.")],
        embed_model=embed_model,
    )


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


async def test_token_counting_counts_each_call_once(counter: TokenCountingHandler) -> None:
    bare = StandInLLM(name="bare")
    bare.chat(user(EASY))
    bare.complete(EASY)
    bare_tokens = counter.total_llm_token_count
    counter.reset_counts()

    llm = HybridLLM(StandInLLM(name="small"), StandInLLM(name="large"), router=FixedRouter())
    llm.chat(user(EASY))
    await llm.acomplete(EASY)

    # Before: 2 * bare_tokens (HybridLLM's event pair and the inner model's).
    assert len(counter.llm_token_counts) == 2
    assert counter.total_llm_token_count == bare_tokens


def test_tokens_reach_a_handler_set_on_hybrid_llm_only() -> None:
    handler = TokenCountingHandler(tokenizer=lambda text: text.split())
    small = StandInLLM(name="small")
    llm = HybridLLM(
        small,
        StandInLLM(name="large"),
        router=FixedRouter(),
        callback_manager=CallbackManager([handler]),
    )
    llm.chat(user(EASY))
    # The inner model's own callback manager lacks the handler: HybridLLM reports the call.
    assert len(handler.llm_token_counts) == 1
    assert handler.llm_token_counts[0].completion == "assistant: [small] answered"
    assert small.callback_manager.handlers == []


@pytest.mark.parametrize("method", ["chat", "stream_chat", "complete", "stream_complete"])
async def test_instrumentation_sees_one_llm_call_and_one_routing_event(
    events: EventLog, planted_router: Any, method: str
) -> None:
    llm = HybridLLM(
        StandInLLM(name="small"),
        StandInLLM(name="large"),
        router=planted_router,
        max_quality_drop=0.05,
    )
    arg: Any = EASY if "complete" in method else user(EASY)
    result = getattr(llm, method)(arg)
    final = list(result)[-1] if method.startswith("stream") else result

    starts = events.of(LLMChatStartEvent) + events.of(LLMCompletionStartEvent)
    ends = events.of(LLMChatEndEvent) + events.of(LLMCompletionEndEvent)
    # Before: two pairs, HybridLLM's and the inner model's.
    assert (len(starts), len(ends)) == (1, 1)
    (decision,) = events.of(RoutingEvent)
    record = final.additional_kwargs["routing"]
    assert (decision.model, decision.score, decision.threshold, decision.knob) == (
        record["model"],
        record["score"],
        record["threshold"],
        "max_quality_drop",
    )
    assert decision.knob_value == 0.05
    assert decision.fallback is False
    assert decision.calibration is not None and "n=" in decision.calibration
    assert decision.span_id is not None
    assert RoutingEvent.class_name() == "HybridLLMRoutingEvent"


def test_a_fallback_is_in_the_routing_event(events: EventLog) -> None:
    llm = HybridLLM(
        StandInLLM(name="small", fail_with="refused"),
        StandInLLM(name="large"),
        router=FixedRouter(),
    )
    llm.chat(user(EASY))
    (decision,) = events.of(RoutingEvent)
    assert (decision.model, decision.fallback) == ("large", True)
    assert "refused" in decision.reason


# -- the record on engine responses (bullet 7) ---------------------------------------------


@pytest.mark.parametrize("how", ["query", "aquery"])
async def test_query_engine_responses_carry_the_record(
    index: VectorStoreIndex, planted_router: Any, how: str
) -> None:
    llm = HybridLLM(
        StandInLLM(name="small"), StandInLLM(name="large"), router=planted_router, threshold=0.5
    )
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    response = engine.query(HARD) if how == "query" else await engine.aquery(HARD)
    # Before: Response.metadata held the nodes' metadata only.
    assert response.metadata is not None
    assert response.metadata["routing"]["model"] == "large"
    assert [r["model"] for r in response.metadata["routing_calls"]] == ["large"]


@pytest.mark.parametrize("chat_mode", ["context", "condense_plus_context", "simple"])
async def test_chat_engine_responses_carry_the_record(
    index: VectorStoreIndex, planted_router: Any, chat_mode: str
) -> None:
    llm = HybridLLM(
        StandInLLM(name="small"), StandInLLM(name="large"), router=planted_router, threshold=0.5
    )
    engine = index.as_chat_engine(chat_mode=chat_mode, llm=llm)
    first = engine.chat(EASY)
    second = await engine.achat(HARD)
    assert first.metadata is not None and second.metadata is not None
    assert first.metadata["routing"]["model"] == "small"
    assert second.metadata["routing"]["model"] == "large"


async def test_structured_llm_responses_carry_the_record(planted_router: Any) -> None:
    small = StandInLLM(name="small", tool_kwargs={"name": "Hey Jude"})
    llm = HybridLLM(small, StandInLLM(name="large"), router=planted_router, threshold=0.5)
    structured = llm.as_structured_llm(Song)
    response = structured.chat(user(EASY))
    again = await structured.achat(user(EASY))
    assert response.raw == Song(name="Hey Jude")
    for answer in (response, again):
        # Before: a StructuredLLM response had no routing record.
        assert answer.additional_kwargs["routing"]["model"] == "small"


def test_the_first_query_of_a_process_carries_the_record() -> None:
    script = """
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llamaindex_hybrid import HybridLLM
llm = HybridLLM(small=MockLLM(), large=MockLLM())
embedding = MockEmbedding(embed_dim=8)
index = VectorStoreIndex.from_documents([Document(text="x")], embed_model=embedding)
response = index.as_query_engine(llm=llm).query("Which law governs disputes?")
print(response.metadata["routing"]["router"])
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "hybrid-llm-default-v0"
