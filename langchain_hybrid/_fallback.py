"""The large model answers for a failed small one: calls and streams with fallback.

A call routed to the small model runs there first; when it raises an error the call's
:class:`~shared_router.routing.failures.FallbackPolicy` handles (by default a provider's
failure: time-out, connection, rate limit, server error, an answer that does not parse),
the same call goes to the large model, a WARNING names the cause, and the small model's
error is kept for the routing record. Any other error (a ``TypeError`` from a bad keyword,
a closed event loop) propagates, as do the large model's errors (after a fallback, with the
small model's error as their ``__context__``, as Python chains errors raised while handling one).

Streams fall back while nothing of the small model's answer has reached the caller:
``stream``/``astream`` hand each chunk on, so they fall back only when the small model fails
before its first chunk, and raise the error after it (chunks already delivered cannot be
taken back). ``invoke`` hands the caller one message, so an ``invoke`` that streams
(``streaming=True``) falls back whenever the small model fails.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared_router.routing.failures import FallbackPolicy
from shared_router.types import ModelChoice

__all__ = [
    "Answer",
    "acall_with_fallback",
    "astream_with_fallback",
    "call_with_fallback",
    "stream_with_fallback",
]

logger = logging.getLogger(__name__)

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


def _falls_back(policy: FallbackPolicy, error: Exception) -> bool:
    """Whether ``error`` of the small model makes the large one answer (logged if so)."""
    if not policy.falls_back(error):
        return False
    logger.warning(
        "small model failed (%s: %s); the large model answers this call instead",
        type(error).__name__,
        error,
    )
    return True


def call_with_fallback(
    call: Callable[[ModelChoice], T], choice: ModelChoice, policy: FallbackPolicy
) -> Answer[T]:
    """Run ``call`` on the chosen model; on a small-model error the policy handles, large.

    Args:
        call: Runs the call on the model it is given.
        choice: The model the router chose.
        policy: Which small-model errors fall back.

    Returns:
        The result and the model that produced it.
    """
    if choice != "small":
        return Answer(call(choice), choice)
    try:
        return Answer(call("small"), "small")
    except Exception as error:
        if not _falls_back(policy, error):
            raise
        # its error, if any, chains the small one's
        return Answer(call("large"), "large", error)


async def acall_with_fallback(
    call: Callable[[ModelChoice], Awaitable[T]], choice: ModelChoice, policy: FallbackPolicy
) -> Answer[T]:
    """The async form of :func:`call_with_fallback`."""
    if choice != "small":
        return Answer(await call(choice), choice)
    try:
        return Answer(await call("small"), "small")
    except Exception as error:
        if not _falls_back(policy, error):
            raise
        # its error, if any, chains the small one's
        return Answer(await call("large"), "large", error)


def stream_with_fallback(
    open_stream: Callable[[ModelChoice], Iterator[T]],
    choice: ModelChoice,
    policy: FallbackPolicy,
) -> Answer[Iterator[T]]:
    """Open the chosen model's stream; if the small one fails before its first chunk, the large's.

    Args:
        open_stream: Opens the stream of the model it is given.
        choice: The model the router chose.
        policy: Which small-model errors fall back.

    Returns:
        The chunks (a first chunk already read is put back in front) and the model they
        come from.
    """
    if choice != "small":
        return Answer(open_stream(choice), choice)
    try:
        chunks = open_stream("small")
        first = next(chunks, None)
    except Exception as error:
        if not _falls_back(policy, error):
            raise
        failure = error
    else:
        return Answer(itertools.chain(() if first is None else (first,), chunks), "small")
    return Answer(open_stream("large"), "large", failure)


async def astream_with_fallback(
    open_stream: Callable[[ModelChoice], AsyncIterator[T]],
    choice: ModelChoice,
    policy: FallbackPolicy,
) -> Answer[AsyncIterator[T]]:
    """The async form of :func:`stream_with_fallback`."""
    if choice != "small":
        return Answer(open_stream(choice), choice)
    try:
        chunks = open_stream("small")
        first = await anext(chunks, None)
    except Exception as error:
        if not _falls_back(policy, error):
            raise
        failure = error
    else:
        return Answer(_prepend(first, chunks), "small")
    return Answer(open_stream("large"), "large", failure)


async def _prepend(first: T | None, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    if first is not None:
        yield first
    async for item in rest:
        yield item
