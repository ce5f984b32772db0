"""HybridLLM under load: decisions through the serving layer, never the default executor.

Why bullet 11 ("under load": 200 concurrent ``achat`` took 1.39 s against 0.11 s bare, with
event-loop stalls up to 395 ms; decisions were encoded one at a time). The timings
themselves are in ``benchmarks/hybrid_llm_overhead.py``; these tests pin the causes.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from llamaindex_hybrid import HybridLLM
from tests.llamaindex_hybrid.stand_ins import StandInLLM


class CountingExecutor(ThreadPoolExecutor):
    """The event loop's default executor, counting what is handed to it."""

    submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        CountingExecutor.submitted += 1
        return super().submit(fn, *args, **kwargs)


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


async def test_concurrent_achat_is_scored_in_batches_off_the_default_executor(
    planted_router: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    score = planted_router.score

    def recording_score(texts: Any) -> Any:
        batches.append(1 if isinstance(texts, str) else len(list(texts)))
        return score(texts)

    monkeypatch.setattr(planted_router, "score", recording_score)
    asyncio.get_running_loop().set_default_executor(CountingExecutor(max_workers=2))
    CountingExecutor.submitted = 0
    llm = HybridLLM(
        StandInLLM(name="small"), StandInLLM(name="large"), router=planted_router, threshold=0.5
    )
    texts = [f"What is {i} plus {i + 1}?" for i in range(200)]

    responses = await asyncio.gather(*(llm.achat(user(text)) for text in texts))

    assert len(responses) == 200 and llm.stats.calls == 200
    # Before: one decision per asyncio.to_thread hop (200 on the default executor), each
    # text encoded alone.
    assert CountingExecutor.submitted == 0
    assert max(batches) > 1 and sum(batches) == 200
