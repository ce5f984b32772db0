"""The bounded thread pools a routing service runs blocking work on, never the loop's default.

An inner model that has only a synchronous API runs, in the adapters' async paths, on a pool
of its own (:meth:`ServiceThreads.run_sync`, :meth:`ServiceThreads.iterate_sync`); the router
is loaded, and a router object that has no batcher is asked, on the router's pool
(:meth:`ServiceThreads.on_router_threads`). A blocking model then holds its own threads only,
not those every other coroutine of the process needs (``run_in_executor(None, ...)``, DNS
lookups).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

from shared_router._internal.model_threads import ModelThreads
from shared_router.types import ModelChoice

__all__ = ["ROUTER_THREADS", "SYNC_MODEL_THREADS", "ServiceThreads"]

T = TypeVar("T")

SYNC_MODEL_THREADS = 16
"""Threads of the pool each synchronous-only inner model runs on, per routing service."""

ROUTER_THREADS = 4
"""Threads of the pool that, for async callers, loads the router and asks a router object
that is not a :class:`~shared_router.routing.router.Router` (it has no batcher), per service."""

_DONE = object()


class ServiceThreads:
    """One routing service's thread pools: one per synchronous model, one for the router.

    Each pool is a :class:`~shared_router._internal.model_threads.ModelThreads`, made on first
    use.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[str, ModelThreads] = {}

    def executor(self, choice: ModelChoice) -> ModelThreads:
        """The bounded thread pool the synchronous-only ``choice`` model runs on (lazy)."""
        return self._pool(f"{choice} model", SYNC_MODEL_THREADS)

    async def on_router_threads(self, call: Callable[[], T]) -> T:
        """Run ``call`` on the router's pool, in a copy of the caller's context."""
        pool = self._pool("router", ROUTER_THREADS)
        return await _run_in(pool, contextvars.copy_context(), call)

    async def run_sync(
        self, choice: ModelChoice, func: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """Run a synchronous model call on the model's own pool (see :meth:`executor`).

        The call runs in a copy of the caller's context (tracing and callback context
        variables travel with it). Cancelling the await frees the caller; the call itself
        runs to its end on its thread, which holds only that model's pool.

        Args:
            choice: Which model is called.
            func: The synchronous call.
            *args: Its positional arguments.
            **kwargs: Its keyword arguments.

        Returns:
            What ``func`` returned.
        """
        call = functools.partial(func, *args, **kwargs)
        return await _run_in(self.executor(choice), contextvars.copy_context(), call)

    async def iterate_sync(
        self, choice: ModelChoice, open_stream: Callable[[], Iterable[T]]
    ) -> AsyncIterator[T]:
        """Open and iterate a synchronous stream on the model's own pool, a hop per chunk.

        Every hop runs in one copy of the caller's context, so what the stream sets in a
        context variable at one chunk is still set at the next.

        Args:
            choice: Which model streams.
            open_stream: Opens the stream (runs on the pool too: opening may block).

        Yields:
            The stream's chunks.
        """
        pool, context = self.executor(choice), contextvars.copy_context()
        chunks = iter(await _run_in(pool, context, open_stream))
        while True:
            chunk = await _run_in(pool, context, functools.partial(next, chunks, _DONE))
            if chunk is _DONE:
                return
            yield chunk

    def _pool(self, name: str, threads: int) -> ModelThreads:
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                pool = ModelThreads(name, threads)
                self._pools[name] = pool
            return pool


async def _run_in(pool: ModelThreads, context: contextvars.Context, call: Callable[[], T]) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, context.run, call)
