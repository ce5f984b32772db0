"""One model call done robustly: the response-source protocol, timeouts, retries, hung threads.

A response source answers a prompt with ``async generate(prompt) -> Generation``
(:class:`ResponseSource`) or a blocking ``generate_sync(prompt) -> Generation``
(:class:`BlockingResponseSource`). :func:`generate_with_retries` asks one for one response
under a :class:`RetryPolicy`: a timeout per try, retries with exponential backoff and jitter.
Blocking calls never run on the event loop's default executor: they run on the model's own
:class:`~shared_router._internal.model_threads.ModelThreads`, and a timeout writes a call that
is still blocked off as hung (see :mod:`shared_router._internal.model_threads`).
:mod:`shared_router.pipeline.sources` re-exports every name here.
"""

from __future__ import annotations

import asyncio
import math
import numbers
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from shared_router._internal.model_threads import ModelThreads, tracked_calls
from shared_router.errors import DataError

__all__ = [
    "BlockingResponseSource",
    "Generation",
    "ResponseSource",
    "RetryPolicy",
    "TimedGeneration",
    "generate_with_retries",
    "sync_generate",
]


@dataclass(frozen=True)
class Generation:
    """One response of a model.

    Attributes:
        text: The response text.
        input_tokens: Prompt tokens, where the model reports them.
        output_tokens: Completion tokens, where the model reports them.
        token_logprobs: The log-probability of each generated token, where the model
            reports them (see :func:`shared_router.pipeline.token_logprobs.token_logprobs`).
    """

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    token_logprobs: tuple[float, ...] | None = None


class ResponseSource(Protocol):
    """Anything that answers a prompt asynchronously."""

    async def generate(self, prompt: str) -> Generation:
        """Answer one prompt.

        Args:
            prompt: The user message.

        Returns:
            The response and its token usage.
        """
        ...


class BlockingResponseSource(Protocol):
    """Anything that answers a prompt with a blocking call.

    A source may offer ``generate_sync`` next to ``generate`` (the adapters' sources do, for
    models without native async); :func:`generate_with_retries` then calls it on the model's
    own threads, unless the source has ``native_async = True`` (its ``generate`` does not
    block: it is awaited instead).
    """

    def generate_sync(self, prompt: str) -> Generation:
        """Answer one prompt, blocking the calling thread.

        Args:
            prompt: The user message.

        Returns:
            The response and its token usage.
        """
        ...


def sync_generate(source: object) -> Callable[[str], Generation] | None:
    """The blocking ``generate_sync`` to call for ``source``, or None to await ``generate``.

    Args:
        source: A response source.

    Returns:
        ``source.generate_sync`` when it has one and does not say ``native_async = True``.
    """
    method = getattr(source, "generate_sync", None)
    if not callable(method) or getattr(source, "native_async", False) is True:
        return None
    return method  # type: ignore[no-any-return]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request.

    Attributes:
        attempts: Tries per request, the first one included.
        base_delay: Seconds before the first retry; doubles with every retry.
        max_delay: The longest wait between two tries, in seconds.
        timeout: Seconds one try may take before it is abandoned.
    """

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    timeout: float = 120.0

    def __post_init__(self) -> None:
        attempts = self.attempts
        if isinstance(attempts, bool) or not isinstance(attempts, numbers.Integral) or attempts < 1:
            raise DataError(f"attempts must be a whole number >= 1, got {attempts!r}")
        for name in ("base_delay", "max_delay", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise DataError(f"{name} must be a number of seconds, got {value!r}")
            if not math.isfinite(value):
                raise DataError(f"{name} must be a finite number of seconds, got {value!r}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise DataError(
                f"retry delays must be >= 0, got base {self.base_delay}, max {self.max_delay}"
            )
        if self.timeout <= 0:
            raise DataError(f"timeout must be > 0 seconds, got {self.timeout}")

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based): exponential with jitter.

        The cap is ``min(max_delay, base_delay * 2 ** (retry - 1))``; the wait is drawn
        uniformly from ``[cap / 2, cap]`` so that parallel clients spread out.
        """
        cap = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return rng.uniform(cap / 2.0, cap)


@dataclass(frozen=True)
class TimedGeneration:
    """The outcome of :func:`generate_with_retries`.

    Attributes:
        generation: The response, or None when every try failed.
        latency_s: Seconds the successful try took (None on failure).
        attempts: Tries made.
        error: The last error as ``"Type: message"``, or None on success.
        hung: The threads left blocked by tries that timed out (abandoned, not waited for),
            one name per such try.
    """

    generation: Generation | None
    latency_s: float | None
    attempts: int
    error: str | None = None
    hung: tuple[str, ...] = ()


async def generate_with_retries(
    source: ResponseSource,
    prompt: str,
    policy: RetryPolicy,
    rng: random.Random,
    *,
    threads: ModelThreads | None = None,
) -> TimedGeneration:
    """Ask a source for one response with a per-try timeout and retries with backoff.

    Any exception of a try (``Exception``, a timeout included) is retried; cancellation and
    ``KeyboardInterrupt`` go through. A blocking source (:func:`sync_generate`) is called on
    ``threads``; so are the calls the source hands to the loop's default executor where
    that is a :class:`~shared_router._internal.model_threads.LoopExecutor`. A try that times
    out while its thread is still blocked writes that thread off as hung: it is named in
    the error and in :attr:`TimedGeneration.hung`, and the next try gets a fresh thread.

    Args:
        source: The model.
        prompt: The user message.
        policy: Tries, delays, timeout.
        rng: Random numbers for the jitter.
        threads: The model's own threads; None uses a one-thread pool for this call alone.

    Returns:
        The response with its latency, or the last error.
    """
    pool = threads if threads is not None else ModelThreads(type(source).__name__, 1)
    error = ""
    hung: list[str] = []
    try:
        for attempt in range(1, policy.attempts + 1):
            if attempt > 1:
                await asyncio.sleep(policy.delay(attempt - 1, rng))
            start = time.perf_counter()
            generation, error, threads_hung = await _try(source, prompt, policy.timeout, pool)
            hung.extend(threads_hung)
            if generation is not None:
                latency = time.perf_counter() - start
                return TimedGeneration(generation, latency, attempt, hung=tuple(hung))
    finally:
        if threads is None:
            pool.shutdown(wait=False)
    return TimedGeneration(None, None, policy.attempts, error, tuple(hung))


async def _try(
    source: ResponseSource, prompt: str, timeout: float, pool: ModelThreads
) -> tuple[Generation | None, str, list[str]]:
    """One try: the response or the error, and the threads it left hung (if it timed out)."""
    blocking = sync_generate(source)
    with tracked_calls(pool) as calls:
        try:
            if blocking is not None:
                future = pool.submit(blocking, prompt)
                calls.futures.append(future)
                generation = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
            else:
                generation = await asyncio.wait_for(source.generate(prompt), timeout)
        except asyncio.TimeoutError:
            names = calls.abandon_running()
            error = f"TimeoutError: no answer within {timeout:g} s"
            if names:
                error += f"; the call is still blocked in {_threads(names)} (hung)"
            return None, error, names
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}", []
    if not isinstance(generation, Generation):
        method = "generate_sync()" if blocking is not None else "generate()"
        error = f"TypeError: {method} returned {type(generation).__name__}, not Generation"
        return None, error, []
    return generation, "", []


def _threads(names: Sequence[str]) -> str:
    return f"thread {names[0]!r}" if len(names) == 1 else f"threads {', '.join(map(repr, names))}"
