"""Faults in ChatHybrid: broken streams, hostile text, blocking sync models (issue 15).

The router here is a stand-in that always chooses one model, so that these tests need neither
torch nor the planted router.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from langchain_hybrid import ChatHybrid
from shared_router.errors import EncoderError
from tests.fixed_router import FixedRouter
from tests.langchain_hybrid.stand_ins import StandInChatModel

QUESTION = "What is 2 + 2?"
SMALL_ANSWER = f"small-model answers: {QUESTION}"
LARGE_ANSWER = f"large-model answers: {QUESTION}"


class _Tokens(BaseCallbackHandler):
    """Records the tokens and the errors of every run it sees."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.errors: list[BaseException] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.errors.append(error)


def _text(chunks: list[AIMessageChunk]) -> str:
    return "".join(chunk.text for chunk in chunks)


def _hybrid(small: StandInChatModel, large: StandInChatModel, **fields: Any) -> ChatHybrid:
    return ChatHybrid(small=small, large=large, router=FixedRouter(), **fields)


def _broken(after: int | None, name: str = "small-model") -> StandInChatModel:
    """A stand-in whose stream fails after ``after`` chunks (None: before the first)."""
    return StandInChatModel(model=name, error=ConnectionError("reset"), fail_after_chunks=after)


def _stats(llm: ChatHybrid) -> tuple[int, int, int, int, int]:
    stats = llm.stats
    return stats.calls, stats.small, stats.large, stats.fallbacks, stats.failed


# -- item 10: streams that break ------------------------------------------------------------


def test_a_stream_that_breaks_before_its_first_chunk_falls_back_without_duplicates() -> None:
    llm = _hybrid(_broken(0), StandInChatModel(model="large-model"))

    chunks = list(llm.stream(QUESTION))

    assert _text(chunks) == LARGE_ANSWER
    routing = chunks[-1].response_metadata["routing"]
    assert (routing["model"], routing["fallback"]) == ("large", True)
    assert _stats(llm) == (1, 0, 1, 1, 0)


async def test_an_astream_that_breaks_before_its_first_chunk_falls_back() -> None:
    llm = _hybrid(_broken(0), StandInChatModel(model="large-model"))

    chunks = [chunk async for chunk in llm.astream(QUESTION)]

    assert _text(chunks) == LARGE_ANSWER
    assert chunks[-1].response_metadata["routing"]["fallback"] is True
    assert _stats(llm) == (1, 0, 1, 1, 0)


def test_a_stream_that_breaks_after_its_first_chunk_raises_and_counts_a_failure() -> None:
    large = StandInChatModel(model="large-model")
    llm = _hybrid(_broken(2), large)
    received: list[AIMessageChunk] = []

    with pytest.raises(ConnectionError, match="reset"):
        for chunk in llm.stream(QUESTION):
            received.append(chunk)

    assert _text(received) == "small-model answers: "
    assert large.calls == []
    assert _stats(llm) == (0, 0, 0, 0, 1)


async def test_an_astream_that_breaks_after_its_first_chunk_raises_and_counts_a_failure() -> None:
    large = StandInChatModel(model="large-model")
    llm = _hybrid(_broken(2), large)
    received: list[AIMessageChunk] = []

    with pytest.raises(ConnectionError, match="reset"):
        async for chunk in llm.astream(QUESTION):
            received.append(chunk)

    assert _text(received) == "small-model answers: "
    assert large.calls == []
    assert _stats(llm) == (0, 0, 0, 0, 1)


def test_invoke_with_streaming_falls_back_when_the_small_stream_breaks_midway() -> None:
    llm = _hybrid(_broken(2), StandInChatModel(model="large-model"), streaming=True)
    handler = _Tokens()

    answer = llm.invoke(QUESTION, config={"callbacks": [handler], "run_id": None})

    assert answer.text == LARGE_ANSWER
    routing = answer.response_metadata["routing"]
    assert (routing["model"], routing["fallback"]) == ("large", True)
    assert routing["reason"].startswith("small model failed (ConnectionError: reset)")
    assert _stats(llm) == (1, 0, 1, 1, 0)
    # The handler saw the small model's run stream two chunks and fail, then the large one.
    assert "".join(handler.tokens) == "small-model answers: " + LARGE_ANSWER
    assert [str(error) for error in handler.errors] == ["reset"]


async def test_ainvoke_with_streaming_falls_back_when_the_small_stream_breaks_midway() -> None:
    llm = _hybrid(_broken(2), StandInChatModel(model="large-model"), streaming=True)

    answer = await llm.ainvoke(QUESTION)

    assert answer.text == LARGE_ANSWER
    assert answer.response_metadata["routing"]["fallback"] is True
    assert _stats(llm) == (1, 0, 1, 1, 0)


def test_batch_with_streaming_falls_back_per_input() -> None:
    llm = _hybrid(_broken(1), StandInChatModel(model="large-model"), streaming=True)

    answers = llm.batch([QUESTION, QUESTION])

    assert [answer.text for answer in answers] == [LARGE_ANSWER, LARGE_ANSWER]
    assert _stats(llm) == (2, 0, 2, 2, 0)


def test_a_run_id_names_the_first_attempt_only() -> None:
    from uuid import uuid4

    llm = _hybrid(_broken(2), StandInChatModel(model="large-model"), streaming=True)

    answer = llm.invoke(QUESTION, config={"run_id": uuid4()})

    assert answer.text == LARGE_ANSWER


def test_invoke_with_streaming_and_no_fallback_raises_and_counts_a_failure() -> None:
    llm = _hybrid(
        _broken(2), StandInChatModel(model="large-model"), streaming=True, fallback_to_large=False
    )

    with pytest.raises(ConnectionError, match="reset"):
        llm.invoke(QUESTION)
    assert _stats(llm) == (0, 0, 0, 0, 1)


@pytest.mark.parametrize("after", [None, 0, 2])
def test_a_broken_large_stream_raises_in_every_mode(after: int | None) -> None:
    large = _broken(after, name="large-model")
    llm = ChatHybrid(
        small=StandInChatModel(model="small-model"),
        large=large,
        router=FixedRouter("large"),
        streaming=True,
    )

    with pytest.raises(ConnectionError, match="reset"):
        list(llm.stream(QUESTION))
    with pytest.raises(ConnectionError, match="reset"):
        llm.invoke(QUESTION)
    assert _stats(llm) == (0, 0, 0, 0, 2)


async def test_a_broken_large_astream_raises_in_every_mode() -> None:
    llm = ChatHybrid(
        small=StandInChatModel(model="small-model"),
        large=_broken(1, name="large-model"),
        router=FixedRouter("large"),
        streaming=True,
    )

    with pytest.raises(ConnectionError, match="reset"):
        [chunk async for chunk in llm.astream(QUESTION)]
    with pytest.raises(ConnectionError, match="reset"):
        await llm.ainvoke(QUESTION)
    assert _stats(llm) == (0, 0, 0, 0, 2)


def test_a_failing_large_model_is_counted_as_failed_not_answered() -> None:
    large = StandInChatModel(model="large-model", error=RuntimeError("down"))
    llm = _hybrid(StandInChatModel(model="small-model", error=ConnectionError("x")), large)

    with pytest.raises(RuntimeError, match="down"):
        llm.invoke(QUESTION)
    assert _stats(llm) == (0, 0, 0, 0, 1)


def test_a_nested_chat_hybrid_streams_with_the_ordinary_rule() -> None:
    inner = _hybrid(_broken(2), StandInChatModel(model="inner-large"))
    outer = ChatHybrid(
        small=inner,
        large=StandInChatModel(model="large-model"),
        router=FixedRouter(),
        streaming=True,
    )

    answer = outer.invoke(QUESTION)

    assert answer.text == LARGE_ANSWER
    assert _stats(inner) == (0, 0, 0, 0, 1)
    assert _stats(outer) == (1, 0, 1, 1, 0)


# -- item 5: lone surrogates and failing routers --------------------------------------------

SURROGATE = "What is \ud800 2 + 2?"


@pytest.mark.parametrize("sticky", [False, True])
def test_a_lone_surrogate_is_routed_as_a_replacement_character(sticky: bool) -> None:
    router = FixedRouter()
    llm = ChatHybrid(
        small=StandInChatModel(model="small-model"),
        large=StandInChatModel(model="large-model"),
        router=router,
        sticky=sticky,
    )

    answer = llm.invoke(SURROGATE)

    assert answer.response_metadata["routing"]["model"] == "small"
    assert answer.response_metadata["routing"]["fallback"] is False
    assert router.routed == ["What is \ufffd 2 + 2?"]


@pytest.mark.parametrize("sticky", [False, True])
async def test_a_lone_surrogate_streams_and_ainvokes(sticky: bool) -> None:
    router = FixedRouter()
    llm = ChatHybrid(
        small=StandInChatModel(model="small-model"),
        large=StandInChatModel(model="large-model"),
        router=router,
        sticky=sticky,
    )

    streamed = [chunk async for chunk in llm.astream(SURROGATE)]
    answer = await llm.ainvoke(SURROGATE)
    chunks = list(llm.stream(SURROGATE))

    for routing in (
        streamed[-1].response_metadata["routing"],
        answer.response_metadata["routing"],
        chunks[-1].response_metadata["routing"],
    ):
        assert (routing["model"], routing["fallback"]) == ("small", False)
    assert "\ud800" not in "".join(router.routed)


def test_a_conversation_opened_with_a_lone_surrogate_stays_large() -> None:
    router = FixedRouter("large")
    llm = ChatHybrid(
        small=StandInChatModel(model="small-model"),
        large=StandInChatModel(model="large-model"),
        router=router,
        sticky=True,
    )
    first = [("human", "\ud800 open")]
    thread: Any = {"configurable": {"thread_id": "\ud800 thread"}}

    llm.invoke(first, thread)
    router.model = "small"
    later = llm.invoke([*first, ("ai", "ok"), ("human", "and now?")], thread)

    assert later.response_metadata["routing"]["model"] == "large"
    assert later.response_metadata["routing"]["reason"].startswith("sticky")


@pytest.mark.parametrize(
    "error", [EncoderError("graph is damaged"), TypeError("TextInputSequence must be str")]
)
def test_a_failing_router_falls_back_visibly_and_logs_once(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    llm = ChatHybrid(
        small=StandInChatModel(model="small-model"),
        large=StandInChatModel(model="large-model"),
        router=FixedRouter(error=error),
        sticky=True,
    )

    with caplog.at_level(logging.WARNING, logger="shared_router.routing.serving"):
        answers = [llm.invoke(SURROGATE), llm.invoke(QUESTION)]

    for answer in answers:
        routing = answer.response_metadata["routing"]
        assert (routing["model"], routing["fallback"]) == ("large", True)
        assert routing["reason"] == f"router failed: {type(error).__name__}: {error}"
    assert (llm.stats.router_errors, llm.stats.fallbacks) == (2, 2)
    warnings = [r for r in caplog.records if r.name == "shared_router.routing.serving"]
    assert len(warnings) == 1 and "the large model answers" in warnings[0].getMessage()


def test_a_programming_error_in_the_adapter_is_not_swallowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import langchain_hybrid._call_plan as call_plan

    def broken(*args: Any, **kwargs: Any) -> str:
        raise AttributeError("a bug in our own code")

    monkeypatch.setattr(call_plan, "routing_text", broken)
    llm = _hybrid(StandInChatModel(model="small-model"), StandInChatModel(model="large-model"))

    with pytest.raises(AttributeError, match="a bug in our own code"):
        llm.invoke(QUESTION)


# -- item 1: synchronous-only models never hold the loop's default executor ---------------

GUARD_S = 10.0
"""How long a blocked model waits for the test at most (a hang guard, not a timing assert)."""


class SyncOnlyChat(BaseChatModel):
    """A chat model with only the sync API (``_generate``, ``_stream``) that can block.

    While ``gate`` is set to a cleared event, every call waits on it (at most ``GUARD_S``);
    ``started`` counts the calls that reached the model, ``released`` those the test let go.
    """

    name_: str = "sync-model"
    gate: Any = None
    started: int = 0
    released: int = 0
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "sync-only-chat"

    def _wait(self) -> None:
        if self.gate is not None:
            with self._lock:
                self.started += 1
            if self.gate.wait(GUARD_S):
                with self._lock:
                    self.released += 1

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._wait()
        message = AIMessage(content=f"{self.name_} answers", response_metadata={})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self._wait()
        for word in (self.name_, " answers"):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.001)


@pytest.mark.parametrize("streaming", [False, True])
async def test_blocked_sync_models_leave_the_default_executor_to_other_calls(
    streaming: bool,
) -> None:
    loop = asyncio.get_running_loop()
    workers = 4
    loop.set_default_executor(ThreadPoolExecutor(max_workers=workers))
    gate = threading.Event()
    sync_small = SyncOnlyChat(name_="sync-small", gate=gate)
    blocked_llm = ChatHybrid(
        small=sync_small, large=SyncOnlyChat(name_="sync-large"), router=FixedRouter()
    )
    other = _hybrid(StandInChatModel(model="small-model"), StandInChatModel(model="large-model"))
    order: list[str] = []

    async def blocked_call() -> str:
        if streaming:
            text = _text([chunk async for chunk in blocked_llm.astream(QUESTION)])
        else:
            text = (await blocked_llm.ainvoke(QUESTION)).text
        order.append("blocked")
        return text

    blocked = [asyncio.create_task(blocked_call()) for _ in range(workers)]
    try:
        await asyncio.wait_for(_until(lambda: sync_small.started == workers), GUARD_S)
        others = await asyncio.gather(*(other.ainvoke(QUESTION) for _ in range(10)))
        order.append("others")
    finally:
        gate.set()
    answers = await asyncio.gather(*blocked)

    # Before: the blocked models held every default-executor thread, so the other
    # ChatHybrid's calls (routed there) waited until the models were let go (GUARD_S).
    assert order[0] == "others"
    assert [answer.text for answer in others] == [SMALL_ANSWER] * 10
    assert answers == ["sync-small answers"] * workers
    assert sync_small.released == workers


async def test_a_sync_only_model_answers_streams_and_falls_back_on_its_pool() -> None:
    failing = SyncOnlyChat(name_="sync-small", gate=None)
    llm = ChatHybrid(small=failing, large=SyncOnlyChat(name_="sync-large"), router=FixedRouter())

    answer = await llm.ainvoke(QUESTION)
    streamed = [chunk async for chunk in llm.astream(QUESTION)]

    assert answer.text == _text(streamed[:-1]) == "sync-small answers"
    assert answer.response_metadata["routing"]["model"] == "small"
    assert streamed[-1].response_metadata["routing"]["model"] == "small"

    class Broken(SyncOnlyChat):
        def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
            raise ConnectionError("refused")

        def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
            raise ConnectionError("refused")

    falling = ChatHybrid(
        small=Broken(), large=SyncOnlyChat(name_="sync-large"), router=FixedRouter()
    )
    fallback = await falling.ainvoke(QUESTION)
    streamed_fallback = [chunk async for chunk in falling.astream(QUESTION)]

    assert fallback.text == _text(streamed_fallback) == "sync-large answers"
    assert streamed_fallback[-1].response_metadata["routing"]["fallback"] is True
    assert _stats(falling) == (2, 0, 2, 2, 0)
