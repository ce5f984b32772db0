"""The LlamaIndex response source that ``hybrid-llm collect`` and the LLM judge use."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core.llms import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CustomLLM,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms.mock import MockLLM

from llamaindex_hybrid.collect_source import LlamaIndexSource
from shared_router.pipeline.sources import Generation


class UsageLLM(CustomLLM):
    """Replies "ok" and reports usage where the integrations put it."""

    where: str = "additional_kwargs"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata()

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="ok")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def achat(self, messages: Any, **kwargs: Any) -> ChatResponse:
        message = ChatMessage(role=MessageRole.ASSISTANT, content="ok")
        if self.where == "additional_kwargs":  # llama-index-llms-openai
            return ChatResponse(
                message=message, additional_kwargs={"prompt_tokens": 11, "completion_tokens": 3}
            )
        return ChatResponse(message=message, raw={"usage": {"input_tokens": 4, "output_tokens": 1}})


def test_llamaindex_source_reads_usage_from_either_place() -> None:
    assert asyncio.run(LlamaIndexSource(UsageLLM()).generate("q")) == Generation("ok", 11, 3)
    raw = LlamaIndexSource(UsageLLM(where="raw"))
    assert asyncio.run(raw.generate("q")) == Generation("ok", 4, 1)


def test_llamaindex_source_sends_one_user_message() -> None:
    generation = asyncio.run(LlamaIndexSource(MockLLM()).generate("What is 2 + 2?"))
    assert generation.text.startswith("user: What is 2 + 2?")
    assert (generation.input_tokens, generation.output_tokens) == (None, None)


def test_llamaindex_source_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="expected a LlamaIndex LLM, got int"):
        LlamaIndexSource(3)  # type: ignore[arg-type]


def test_a_custom_llm_is_asked_through_its_blocking_chat() -> None:
    source = LlamaIndexSource(MockLLM())  # a CustomLLM: its achat runs chat on the event loop
    assert source.native_async is False
    assert isinstance(source.generate_sync("hello"), Generation)
