"""HybridLLM's own ``rate_limiter`` applies, once per call, as for any LlamaIndex LLM."""

from __future__ import annotations

import asyncio

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.rate_limiter import BaseRateLimiter

from llamaindex_hybrid import HybridLLM
from tests.fixed_router import FixedRouter
from tests.llamaindex_hybrid.stand_ins import EASY, StandInLLM


class CountingLimiter(BaseRateLimiter):
    """A rate limiter that lets every call through and counts them."""

    def __init__(self) -> None:
        self.sync_calls = 0
        self.async_calls = 0

    def acquire(self, num_tokens: int = 0) -> None:
        self.sync_calls += 1

    async def async_acquire(self, num_tokens: int = 0) -> None:
        self.async_calls += 1


def test_the_rate_limiter_is_acquired_once_per_call(small: StandInLLM, large: StandInLLM) -> None:
    limiter = CountingLimiter()
    llm = HybridLLM(small, large, router=FixedRouter(), rate_limiter=limiter)
    messages = [ChatMessage(role=MessageRole.USER, content=EASY)]

    llm.chat(messages)
    llm.complete(EASY)
    list(llm.stream_chat(messages))
    asyncio.run(llm.achat(messages))
    asyncio.run(llm.acomplete(EASY))

    assert (limiter.sync_calls, limiter.async_calls) == (3, 2)
