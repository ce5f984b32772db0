"""HybridLLM's metadata never contacts a server; knobs per call and on assignment (issue 14).

Why bullets 1 ("the README's own example fails when Ollama is not running") and 10
("per-call knobs").
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, LLMMetadata, MessageRole

from llamaindex_hybrid import HybridLLM
from shared_router.errors import KnobError
from tests.fixed_router import FixedRouter
from tests.llamaindex_hybrid.stand_ins import EASY, HARD, StandInLLM


class DownServerLLM(StandInLLM):
    """A STAND-IN for ``Ollama`` with its server down.

    Like ``llama-index-llms-ollama`` with ``context_window=-1`` (its default), reading
    ``metadata`` asks the server for the model's window, and fails; so does every call.
    """

    model: str = "llama3.2:1b"
    metadata_reads: int = 0

    @property
    def metadata(self) -> LLMMetadata:
        self.metadata_reads += 1
        raise ConnectionError("[Errno 111] Connection refused (http://localhost:11434)")


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


def test_a_down_small_model_is_a_fallback_not_a_crash(
    embed_model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    down = DownServerLLM(name="ollama", fail_with="[Errno 111] Connection refused")
    large = StandInLLM(name="large")
    llm = HybridLLM(down, large, router=FixedRouter("small"))
    index = VectorStoreIndex.from_documents(
        [Document(text="The notice period is 30 days.")], embed_model=embed_model
    )

    with caplog.at_level(logging.INFO, logger="llamaindex_hybrid"):
        meta = llm.metadata
        engine = index.as_query_engine(llm=llm)
        answer = engine.query("What is the notice period?")

    # Before: llm.metadata raised ConnectionError, and so did as_query_engine.
    assert str(answer) == "[large] answered"
    assert meta.model_name == "HybridLLM(llama3.2:1b, large)"
    assert meta.context_window == 4096  # the declared field, not the server's answer
    assert answer.metadata is not None
    record = answer.metadata["routing"]
    assert (record["model"], record["fallback"]) == ("large", True)
    assert "Connection refused" in record["reason"]
    notes = [r for r in caplog.records if "metadata" in r.getMessage()]
    assert len(notes) == 1 and "llama3.2:1b" in notes[0].getMessage()


def test_metadata_is_read_from_each_model_once(small: StandInLLM, large: StandInLLM) -> None:
    down = DownServerLLM(name="ollama")
    llm = HybridLLM(down, large, router=FixedRouter("large"))
    for _ in range(3):
        llm.chat(user(EASY))
        assert llm.metadata.is_chat_model is True
    assert down.metadata_reads == 1


# -- per-call knobs and validated fields (bullet 10) -------------------------------------


def test_a_per_call_knob_is_read_by_the_router_and_not_forwarded(
    small: StandInLLM, large: StandInLLM, planted_router: Any
) -> None:
    llm = HybridLLM(small, large, router=planted_router, threshold=1.0)
    response = llm.chat(user(HARD), threshold=0.0)
    completion = llm.complete(HARD, threshold=0.0)

    # Before: the router ignored it and the inner model got threshold=0.0 as an API parameter.
    for routed in (response, completion):
        record = routed.additional_kwargs["routing"]
        assert (record["model"], record["threshold"]) == ("small", 0.0)
    assert all("threshold" not in call["kwargs"] for call in small.calls)
    assert llm.chat(user(HARD)).additional_kwargs["routing"]["model"] == "large"


async def test_a_per_call_knob_works_in_every_async_entry_point(
    small: StandInLLM, large: StandInLLM, planted_router: Any
) -> None:
    llm = HybridLLM(small, large, router=planted_router, threshold=1.0)
    chat = await llm.achat(user(HARD), large_share=0.0)
    chunks = [c async for c in await llm.astream_complete(HARD, large_share=0.0)]
    assert chat.additional_kwargs["routing"]["knob"] == "large_share"
    assert chunks[-1].additional_kwargs["routing"]["model"] == "small"
    assert all("large_share" not in call["kwargs"] for call in small.calls)


def test_a_bad_per_call_knob_is_a_knob_error(small: StandInLLM, large: StandInLLM) -> None:
    llm = HybridLLM(small, large, router=FixedRouter())
    with pytest.raises(KnobError, match="threshold"):
        llm.chat(user(EASY), threshold=2.0)
    assert small.calls == []


def test_knob_fields_are_validated_on_assignment(small: StandInLLM, large: StandInLLM) -> None:
    llm = HybridLLM(small, large, router=FixedRouter(), max_quality_drop=0.02)
    # Before: each assignment was accepted, and the next call raised or routed on nonsense.
    with pytest.raises(KnobError, match="max_quality_drop"):
        llm.max_quality_drop = 5.0
    with pytest.raises(KnobError, match="at most one"):
        llm.threshold = 0.5
    with pytest.raises(KnobError, match="large_share"):
        llm.large_share = -0.1
    assert llm.max_quality_drop == 0.02
    llm.max_quality_drop = None
    llm.threshold = 0.5
    assert llm.chat(user(EASY)).additional_kwargs["routing"]["threshold"] == 0.5
