"""Faults in HybridLLM: broken streams, hostile text, blocking sync models (issue 15).

The router here is a stand-in that always chooses one model, so that these tests need neither
torch nor the planted router.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms.custom import CustomLLM

from llamaindex_hybrid import HybridLLM
from shared_router.errors import EncoderError
from tests.fixed_router import FixedRouter
from tests.llamaindex_hybrid.stand_ins import StandInLLM

QUESTION = "What is 2 + 3?"


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


def _hybrid(small: StandInLLM, large: StandInLLM, **options: Any) -> HybridLLM:
    return HybridLLM(small, large, router=options.pop("router", FixedRouter()), **options)


def _broken(name: str, *, mid_stream: bool) -> StandInLLM:
    """A stand-in whose streams fail at their second chunk, or before their first."""
    model = StandInLLM(name=name, fail_with="connection reset", fail_mid_stream=mid_stream)
    model.answer = lambda text: f"{name} says two words"
    return model


def _stats(llm: HybridLLM) -> tuple[int, int, int, int, int]:
    stats = llm.stats
    return stats.calls, stats.small, stats.large, stats.fallbacks, stats.failed


async def _drain(method: str, llm: HybridLLM) -> list[str]:
    """Every delta of one streaming entry point (sync or async, chat or completion)."""
    if method == "stream_chat":
        return [chunk.delta or "" for chunk in llm.stream_chat(user(QUESTION))]
    if method == "stream_complete":
        return [chunk.delta or "" for chunk in llm.stream_complete(QUESTION)]
    if method == "astream_chat":
        return [chunk.delta or "" async for chunk in await llm.astream_chat(user(QUESTION))]
    return [chunk.delta or "" async for chunk in await llm.astream_complete(QUESTION)]


STREAMS = ["stream_chat", "stream_complete", "astream_chat", "astream_complete"]


# -- item 10: streams that break ------------------------------------------------------------


@pytest.mark.parametrize("method", STREAMS)
async def test_a_stream_that_breaks_before_its_first_chunk_falls_back(method: str) -> None:
    large = StandInLLM(name="large")
    large.answer = lambda text: "large says it"
    llm = _hybrid(_broken("small", mid_stream=False), large)

    deltas = await _drain(method, llm)

    assert "".join(deltas) == "large says it"
    assert _stats(llm) == (1, 0, 1, 1, 0)


@pytest.mark.parametrize("method", STREAMS)
async def test_a_stream_that_breaks_after_its_first_chunk_raises_and_is_no_answer(
    method: str,
) -> None:
    large = StandInLLM(name="large")
    llm = _hybrid(_broken("small", mid_stream=True), large)
    received: list[str] = []

    with pytest.raises(ConnectionError, match="connection reset"):
        received.extend(await _drain(method, llm))

    assert large.calls == []
    # Before: the broken stream counted as a small answer (calls=1, small=1).
    assert _stats(llm) == (0, 0, 0, 0, 1)


def test_only_a_finished_stream_is_counted() -> None:
    small = StandInLLM(name="small")
    small.answer = lambda text: "small says three words"
    llm = _hybrid(small, StandInLLM(name="large"))

    chunks = llm.stream_chat(user(QUESTION))
    first = next(chunks)

    assert first.additional_kwargs["routing"]["model"] == "small"
    assert _stats(llm) == (0, 0, 0, 0, 0)
    list(chunks)
    assert _stats(llm) == (1, 1, 0, 0, 0)


@pytest.mark.parametrize("method", STREAMS)
async def test_a_broken_large_stream_raises_and_counts_a_failure(method: str) -> None:
    llm = _hybrid(
        StandInLLM(name="small"),
        _broken("large", mid_stream=True),
        router=FixedRouter("large"),
    )

    with pytest.raises(ConnectionError, match="connection reset"):
        await _drain(method, llm)
    assert _stats(llm) == (0, 0, 0, 0, 1)


async def test_a_failing_large_model_is_counted_as_failed_not_answered() -> None:
    large = StandInLLM(name="large", fail_with="overloaded")
    llm = _hybrid(StandInLLM(name="small", fail_with="down"), large)

    with pytest.raises(ConnectionError, match="overloaded"):
        llm.chat(user(QUESTION))
    with pytest.raises(ConnectionError, match="overloaded"):
        await llm.acomplete(QUESTION)
    assert _stats(llm) == (0, 0, 0, 0, 2)


# -- item 5: lone surrogates and failing routers --------------------------------------------

SURROGATE = "What is \ud800 2 + 3?"


@pytest.mark.parametrize("sticky", [False, True])
@pytest.mark.parametrize("method", ["chat", "achat", "stream_chat", "astream_chat"])
async def test_a_lone_surrogate_is_routed_as_a_replacement_character(
    method: str, sticky: bool
) -> None:
    router = FixedRouter()
    llm = _hybrid(StandInLLM(name="small"), StandInLLM(name="large"), router=router, sticky=sticky)

    if method == "chat":
        responses = [llm.chat(user(SURROGATE))]
    elif method == "achat":
        responses = [await llm.achat(user(SURROGATE))]
    elif method == "stream_chat":
        responses = list(llm.stream_chat(user(SURROGATE)))
    else:
        responses = [chunk async for chunk in await llm.astream_chat(user(SURROGATE))]

    routing = responses[-1].additional_kwargs["routing"]
    assert (routing["model"], routing["fallback"]) == ("small", False)
    assert router.routed == ["What is \ufffd 2 + 3?"]


async def test_a_completion_with_a_lone_surrogate_is_routed() -> None:
    router = FixedRouter()
    llm = _hybrid(StandInLLM(name="small"), StandInLLM(name="large"), router=router, sticky=True)

    response = await llm.acomplete(SURROGATE)

    assert response.additional_kwargs["routing"]["fallback"] is False
    assert router.routed == ["What is \ufffd 2 + 3?"]


def test_a_conversation_opened_with_a_lone_surrogate_stays_large() -> None:
    router = FixedRouter("large")
    llm = _hybrid(StandInLLM(name="small"), StandInLLM(name="large"), router=router, sticky=True)
    first = user("\ud800 open")

    with llm.conversation("\ud800 session"):
        llm.chat(first)
        router.model = "small"
        later = llm.chat(
            [*first, ChatMessage(role=MessageRole.ASSISTANT, content="ok"), *user("and now?")]
        )

    assert later.additional_kwargs["routing"]["model"] == "large"
    assert later.additional_kwargs["routing"]["reason"].startswith("sticky")


@pytest.mark.parametrize(
    "error", [EncoderError("graph is damaged"), TypeError("TextInputSequence must be str")]
)
async def test_a_failing_router_falls_back_visibly_and_logs_once(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    router = FixedRouter(error=error)
    llm = _hybrid(StandInLLM(name="small"), StandInLLM(name="large"), router=router, sticky=True)

    with caplog.at_level(logging.WARNING, logger="shared_router.routing.serving"):
        responses = [llm.chat(user(SURROGATE)), await llm.acomplete(QUESTION)]

    for response in responses:
        routing = response.additional_kwargs["routing"]
        assert (routing["model"], routing["fallback"]) == ("large", True)
        assert routing["reason"] == f"router failed: {type(error).__name__}: {error}"
    assert (llm.stats.router_errors, llm.stats.fallbacks) == (2, 2)
    warnings = [r for r in caplog.records if r.name == "shared_router.routing.serving"]
    assert len(warnings) == 1 and "the large model answers" in warnings[0].getMessage()


def test_a_programming_error_in_the_adapter_is_not_swallowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import llamaindex_hybrid._routing_input as routing_input

    def broken(*args: Any, **kwargs: Any) -> str:
        raise AttributeError("a bug in our own code")

    monkeypatch.setattr(routing_input, "routing_text", broken)
    llm = _hybrid(StandInLLM(name="small"), StandInLLM(name="large"))

    with pytest.raises(AttributeError, match="a bug in our own code"):
        llm.chat(user(QUESTION))


# -- item 1: synchronous-only models never block the loop or its default executor ----------

GUARD_S = 5.0
"""How long a blocked model waits for the test at most (a hang guard, not a timing assert)."""


class SyncOnlyLLM(CustomLLM):
    """A CustomLLM with only the sync API (``complete``, ``stream_complete``) that can block.

    While ``gate`` is a cleared event, every call waits on it (at most ``GUARD_S``);
    ``started`` counts the calls that reached the model, ``released`` those the test let go.
    """

    label: str = "sync-model"
    fail: bool = False
    started: int = 0
    released: int = 0
    _gate: threading.Event | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.label)

    def _wait(self) -> None:
        if self.fail:
            raise ConnectionError("refused")
        if self._gate is not None:
            with self._lock:
                self.started += 1
            if self._gate.wait(GUARD_S):
                with self._lock:
                    self.released += 1

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self._wait()
        return CompletionResponse(text=f"{self.label} answers")

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        self._wait()

        def chunks() -> CompletionResponseGen:
            yield CompletionResponse(text=self.label, delta=self.label)
            yield CompletionResponse(text=f"{self.label} answers", delta=" answers")

        return chunks()


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.001)


@pytest.mark.parametrize("method", ["achat", "acomplete", "astream_chat", "astream_complete"])
async def test_blocked_sync_models_leave_the_loop_and_its_executor_to_other_calls(
    method: str,
) -> None:
    loop = asyncio.get_running_loop()
    workers = 2
    loop.set_default_executor(ThreadPoolExecutor(max_workers=workers))
    gate = threading.Event()
    sync_small = SyncOnlyLLM(label="sync-small")
    sync_small._gate = gate
    blocked_llm = _hybrid(sync_small, SyncOnlyLLM(label="sync-large"))
    other = _hybrid(StandInLLM(name="small"), StandInLLM(name="large"))
    order: list[str] = []

    async def blocked_call() -> str:
        if method == "achat":
            text = (await blocked_llm.achat(user(QUESTION))).message.content or ""
        elif method == "acomplete":
            text = (await blocked_llm.acomplete(QUESTION)).text
        else:
            text = "".join(await _drain(method, blocked_llm))
        order.append("blocked")
        return text

    blocked = [asyncio.create_task(blocked_call()) for _ in range(workers)]
    try:
        await asyncio.wait_for(_until(lambda: sync_small.started == workers), GUARD_S)
        others = await asyncio.gather(*(other.achat(user(QUESTION)) for _ in range(10)))
        order.append("others")
    finally:
        gate.set()
    answers = await asyncio.gather(*blocked)

    # Before: CustomLLM's async methods ran the blocking sync call on the event loop itself.
    assert order[0] == "others"
    assert [response.message.content for response in others] == ["[small] answered"] * 10
    assert [answer.strip() for answer in answers] == ["sync-small answers"] * workers
    assert sync_small.released == workers


async def test_a_sync_only_model_falls_back_on_its_pool() -> None:
    llm = _hybrid(SyncOnlyLLM(label="sync-small", fail=True), SyncOnlyLLM(label="sync-large"))

    chat = await llm.achat(user(QUESTION))
    completion = await llm.acomplete(QUESTION)
    streamed = "".join(await _drain("astream_complete", llm))

    assert (chat.message.content or "").strip() == "sync-large answers"
    assert completion.text == streamed == "sync-large answers"
    assert completion.additional_kwargs["routing"]["fallback"] is True
    assert _stats(llm) == (3, 0, 3, 3, 0)
