"""The large model answers when the small one fails: calls and streams with fallback.

A call routed to the small model runs there first; when it raises and fallback is on, the
same call goes to the large model and the small model's error is kept for the routing record.
Errors of the large model are raised unchanged.

Streams follow one rule, the same in both adapters: the small model's stream falls back
while nothing of it has reached the caller. ``stream``/``astream`` hand each chunk to the
caller, so they fall back only when the small model fails before its first chunk; after
that the error is raised (chunks already delivered cannot be taken back). ``invoke`` /
``ainvoke`` / ``batch`` hand the caller one message, so when they stream (``streaming=True``,
or a streaming callback handler) a small model failing at any point falls back:
:func:`invoke_with_fallback` runs the call again on the large model, whose message alone is
returned; callback handlers saw the small model's chunks on a first run, which ends with a
:class:`SmallStreamBroke` error, and the large model's on a second.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Generic, TypeVar

from langchain_core.runnables import RunnableConfig

from shared_router.errors import RoutingError
from shared_router.routing.serving import Routed
from shared_router.types import ModelChoice

__all__ = [
    "Answer",
    "SmallStreamBroke",
    "WholeAnswer",
    "acall_with_fallback",
    "ainvoke_with_fallback",
    "astream_with_fallback",
    "call_with_fallback",
    "invoke_with_fallback",
    "stream_with_fallback",
    "whole_answer",
    "without_run_id",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Answer(Generic[T]):
    """What a routed call produced, and which model produced it.

    Attributes:
        value: The call's result (a message, a structured-output dict, a chunk iterator).
        choice: The model that answered.
        failure: The small model's error, where the large model answered in its place.
    """

    value: T
    choice: ModelChoice
    failure: Exception | None = None


def call_with_fallback(
    call: Callable[[ModelChoice], T], choice: ModelChoice, *, fallback: bool
) -> Answer[T]:
    """Run ``call`` on the chosen model; on a small-model error, on the large one.

    Args:
        call: Runs the call on the model it is given.
        choice: The model the router chose.
        fallback: Whether the large model answers when the small one raises.

    Returns:
        The result and the model that produced it.
    """
    if choice != "small" or not fallback:
        return Answer(call(choice), choice)
    try:
        return Answer(call("small"), "small")
    except Exception as error:
        failure = error
    return Answer(call("large"), "large", failure)


async def acall_with_fallback(
    call: Callable[[ModelChoice], Awaitable[T]], choice: ModelChoice, *, fallback: bool
) -> Answer[T]:
    """The async form of :func:`call_with_fallback`."""
    if choice != "small" or not fallback:
        return Answer(await call(choice), choice)
    try:
        return Answer(await call("small"), "small")
    except Exception as error:
        failure = error
    return Answer(await call("large"), "large", failure)


def stream_with_fallback(
    open_stream: Callable[[ModelChoice], Iterator[T]], choice: ModelChoice, *, fallback: bool
) -> Answer[Iterator[T]]:
    """Open the chosen model's stream; if the small one fails before its first chunk, the large's.

    Args:
        open_stream: Opens the stream of the model it is given.
        choice: The model the router chose.
        fallback: Whether the large model answers when the small one raises.

    Returns:
        The chunks (a first chunk already read is put back in front) and the model they
        come from.
    """
    if choice != "small" or not fallback:
        return Answer(open_stream(choice), choice)
    try:
        chunks = open_stream("small")
        first = next(chunks, None)
    except Exception as error:
        failure = error
    else:
        return Answer(itertools.chain(() if first is None else (first,), chunks), "small")
    return Answer(open_stream("large"), "large", failure)


async def astream_with_fallback(
    open_stream: Callable[[ModelChoice], AsyncIterator[T]], choice: ModelChoice, *, fallback: bool
) -> Answer[AsyncIterator[T]]:
    """The async form of :func:`stream_with_fallback`."""
    if choice != "small" or not fallback:
        return Answer(open_stream(choice), choice)
    try:
        chunks = open_stream("small")
        first = await anext(chunks, None)
    except Exception as error:
        failure = error
    else:
        return Answer(_prepend(first, chunks), "small")
    return Answer(open_stream("large"), "large", failure)


async def _prepend(first: T | None, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    if first is not None:
        yield first
    async for item in rest:
        yield item


@dataclass(frozen=True)
class WholeAnswer:
    """An ``invoke`` in progress: its caller gets one message, so its stream may fall back.

    Attributes:
        owner: The routing service of the ChatHybrid that is invoked (a nested ChatHybrid
            streams with the ordinary rule).
        retry: The broken small-model stream this attempt replaces, on the second attempt.
    """

    owner: object
    retry: SmallStreamBroke | None = None


class SmallStreamBroke(RoutingError):
    """The small model's stream broke during an ``invoke``: the large model answers instead.

    Args:
        owner: The routing service of the invoked ChatHybrid.
        routed: The call's routing decision, kept for the large model's record.
        failure: The small model's error.
        chunks: How many chunks the small model had streamed.
    """

    def __init__(self, owner: object, routed: Routed, failure: Exception, chunks: int) -> None:
        super().__init__(
            f"small model failed after {chunks} streamed chunk(s) "
            f"({type(failure).__name__}: {failure}); the large model answers instead"
        )
        self.owner = owner
        self.routed = routed
        self.failure = failure


_WHOLE_ANSWER: ContextVar[WholeAnswer | None] = ContextVar("hybrid_whole_answer", default=None)


def whole_answer(owner: object) -> WholeAnswer | None:
    """The ``invoke`` of ``owner`` in progress in this context, or None (a plain stream)."""
    mode = _WHOLE_ANSWER.get()
    return mode if mode is not None and mode.owner is owner else None


def invoke_with_fallback(owner: object, attempt: Callable[[bool], T]) -> T:
    """Run an ``invoke``; if the small model's stream broke in it, run it once more, large.

    Args:
        owner: The routing service of the invoked ChatHybrid.
        attempt: Runs the invoke; its argument is True on the second attempt.

    Returns:
        What the attempt that answered returned.
    """
    token = _WHOLE_ANSWER.set(WholeAnswer(owner))
    try:
        try:
            return attempt(False)
        except SmallStreamBroke as broke:
            if broke.owner is not owner:
                raise
            retry = broke
        _WHOLE_ANSWER.set(WholeAnswer(owner, retry))
        return attempt(True)
    finally:
        _WHOLE_ANSWER.reset(token)


async def ainvoke_with_fallback(owner: object, attempt: Callable[[bool], Awaitable[T]]) -> T:
    """The async form of :func:`invoke_with_fallback`."""
    token = _WHOLE_ANSWER.set(WholeAnswer(owner))
    try:
        try:
            return await attempt(False)
        except SmallStreamBroke as broke:
            if broke.owner is not owner:
                raise
            retry = broke
        _WHOLE_ANSWER.set(WholeAnswer(owner, retry))
        return await attempt(True)
    finally:
        _WHOLE_ANSWER.reset(token)


def without_run_id(config: RunnableConfig | None) -> RunnableConfig | None:
    """``config`` for the second run of one call: its ``run_id`` named the first run."""
    if config is None or "run_id" not in config:
        return config
    fresh = RunnableConfig(**config)
    del fresh["run_id"]
    return fresh
