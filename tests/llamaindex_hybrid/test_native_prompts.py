"""Each inner model formats prompts with its own settings, exactly as when used bare (issue 14).

Why bullet 5 ("the inner models' own settings are dropped"): the text each inner model
receives through HybridLLM is compared with what it receives used bare, for chat models with
a ``system_prompt`` and for completion models with a chat template.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import (
    ChatMessage,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.llm import LLM
from llama_index.core.prompts import ChatPromptTemplate, PromptTemplate

from llamaindex_hybrid import HybridLLM
from tests.fixed_router import FixedRouter
from tests.llamaindex_hybrid.stand_ins import EASY, StandInLLM


def chatml(messages: Sequence[ChatMessage]) -> str:
    """A chat template like the ones ``LlamaCPP`` models are given."""
    turns = [f"<|im_start|>{m.role.value}\n{m.content}<|im_end|>" for m in messages]
    return "\n".join([*turns, "<|im_start|>assistant\n"])


def chatml_completion(prompt: str) -> str:
    return chatml([ChatMessage(role=MessageRole.USER, content=prompt)])


class TemplatedCompletionLLM(CustomLLM):
    """A STAND-IN for a local completion model (``LlamaCPP``): it applies its own templates.

    Like LlamaCPP, ``complete`` wraps a prompt with ``completion_to_prompt`` unless
    ``formatted``, and ``chat`` (CustomLLM's) formats messages with ``messages_to_prompt``.
    It records the exact text the model would run on.
    """

    name: str = "local"
    _prompts: list[str] = PrivateAttr(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.name, is_chat_model=False)

    @property
    def prompts(self) -> list[str]:
        return self._prompts

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        text = prompt if formatted else self.completion_to_prompt(prompt)
        self._prompts.append(text)
        return CompletionResponse(text="[local] answered")

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        yield self.complete(prompt, formatted=formatted, **kwargs)


def completion_model(name: str) -> TemplatedCompletionLLM:
    return TemplatedCompletionLLM(
        name=name,
        messages_to_prompt=chatml,
        completion_to_prompt=chatml_completion,
        system_prompt="You are a careful local model.",
    )


def chat_model(name: str) -> StandInLLM:
    return StandInLLM(name=name, system_prompt="You are terse.")


def received(model: LLM) -> list[Any]:
    return list(model.prompts) if isinstance(model, TemplatedCompletionLLM) else model.received


TEMPLATE = PromptTemplate("Context: {context_str}\nQuestion: {query_str}\nAnswer:")
CHAT_TEMPLATE = ChatPromptTemplate(
    [
        ChatMessage(role=MessageRole.SYSTEM, content="Answer from the context."),
        ChatMessage(role=MessageRole.USER, content="{context_str}\n\nQuestion: {query_str}"),
    ]
)
Call = Callable[[LLM], Any]
CALLS: dict[str, Call] = {
    "predict": lambda llm: llm.predict(TEMPLATE, context_str="x", query_str=EASY),
    "predict-chat-template": lambda llm: llm.predict(
        CHAT_TEMPLATE, context_str="x", query_str=EASY
    ),
    "stream": lambda llm: "".join(llm.stream(TEMPLATE, context_str="x", query_str=EASY)),
    "chat": lambda llm: llm.chat([ChatMessage(role=MessageRole.USER, content=EASY)]),
    "complete": lambda llm: llm.complete(EASY),
}


@pytest.mark.parametrize("make", [chat_model, completion_model], ids=["chat", "completion"])
@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("routed_to", ["small", "large"])
def test_each_model_receives_what_it_receives_bare(
    make: Callable[[str], LLM], call: str, routed_to: str
) -> None:
    bare = make(routed_to)
    CALLS[call](bare)

    small, large = make("small"), make("large")
    CALLS[call](HybridLLM(small, large, router=FixedRouter(routed_to)))

    chosen = small if routed_to == "small" else large
    # Before: the system prompt was lost (chat) or a chat template was wrapped twice
    # ("<|im_start|>user\nsystem: ...", completion).
    assert received(chosen) == received(bare)


@pytest.mark.parametrize("make", [chat_model, completion_model], ids=["chat", "completion"])
def test_a_query_engine_sends_each_model_what_it_sends_it_bare(
    embed_model: Any, make: Callable[[str], LLM]
) -> None:
    index = VectorStoreIndex.from_documents(
        [Document(text="The notice period is 30 days.")], embed_model=embed_model
    )
    bare = make("small")
    index.as_query_engine(llm=bare).query("What is the notice period?")
    index.as_chat_engine(chat_mode="context", llm=bare).chat("What is the notice period?")

    small, large = make("small"), make("large")
    llm = HybridLLM(small, large, router=FixedRouter("small"))
    index.as_query_engine(llm=llm).query("What is the notice period?")
    index.as_chat_engine(chat_mode="context", llm=llm).chat("What is the notice period?")

    assert received(small) == received(bare)
    assert received(large) == []
