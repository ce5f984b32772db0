"""The large model answers when the small one fails: calls and streams with fallback.

A call routed to the small model runs there first; when it raises and fallback is on, the
same call goes to the large model and the small model's error is kept for the routing record.
A stream falls back only before its first chunk, because chunks already delivered cannot be
taken back. Errors of the large model are raised unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared_router.types import ModelChoice

__all__ = [
    "Answer",
    "acall_with_fallback",
    "astream_with_fallback",
    "call_with_fallback",
    "stream_with_fallback",
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
