"""Where blocking model calls run: a bounded pool of daemon threads per model, hangs counted.

A synchronous model call (a LangChain chat model without native async, a LlamaIndex
``CustomLLM``, a source's ``generate_sync``, a user's metric function) cannot be stopped once
it runs: ``asyncio.wait_for`` abandons the await, not the thread. On the event loop's default
executor (the stdlib's, shared by every model, joined at close and at interpreter exit) a few
hung calls therefore starve every other model's calls and keep the process from ending.

So the pipeline never uses that executor for model calls. Each model (response source, judge,
user metric) gets its own :class:`ModelThreads`: at most ``max_workers`` threads at work, as
many as the calls it lets in flight. When a caller gives up on a call that is still running
(its timeout passed), :meth:`ModelThreads.abandon` writes that thread off as *hung*: it no
longer counts against ``max_workers``, so a fresh thread takes the next call, and it is
reported by name. The threads are daemon threads, so a hung one never keeps the process
alive, and :meth:`ModelThreads.shutdown` never waits for one. At most ``max_hung`` threads may
hang at once; past that the model is taken to be broken and further calls fail at once (a
:class:`~shared_router.errors.UsageError` naming the hung threads) instead of starting
threads without bound.

Calls that frameworks send to the loop's default executor themselves (LangChain's
``run_in_executor(None, ...)`` for models without native async) reach the right pool through
:class:`LoopExecutor`, which the pipeline installs as the default executor of the event loops
it owns, and :func:`tracked_calls`, which says whose call is in progress.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared_router.errors import ConfigurationError, UsageError

__all__ = ["LoopExecutor", "ModelThreads", "TrackedCalls", "default_max_hung", "tracked_calls"]

T = TypeVar("T")


def default_max_hung(max_workers: int) -> int:
    """How many threads of a pool may hang before its model counts as broken: 64, or 8 per worker.

    A blocked thread costs little (its stack), so the bound is generous: a model hanging on a
    few prompts keeps answering the others; one hanging on most of them is stopped.
    """
    return max(64, 8 * max_workers)


@dataclass
class _Work:
    future: Future[Any]
    call: Callable[[], Any]


class ModelThreads(Executor):
    """A bounded pool of daemon threads for one model's blocking calls.

    Args:
        name: The model's name; the threads are named ``hybrid-llm NAME-N``.
        max_workers: Threads at work at once (hung ones not counted).
        max_hung: Hung threads allowed at once; defaults to :func:`default_max_hung`.

    Raises:
        ConfigurationError: If ``max_workers`` or ``max_hung`` is below 1.
    """

    def __init__(self, name: str, max_workers: int, *, max_hung: int | None = None) -> None:
        self.max_hung = default_max_hung(max_workers) if max_hung is None else max_hung
        if max_workers < 1 or self.max_hung < 1:
            raise ConfigurationError(
                f"max_workers and max_hung must be >= 1, got {max_workers}, {self.max_hung}"
            )
        self.name = name
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._numbers = itertools.count(1)
        self._workers: set[threading.Thread] = set()  # live threads that are not hung
        self._idle = 0
        self._pending = 0
        self._running: dict[Future[Any], threading.Thread] = {}
        self._hung: dict[Future[Any], str] = {}
        self._closed = False

    @property
    def hung(self) -> tuple[str, ...]:
        """The names of the threads still blocked in an abandoned call."""
        with self._lock:
            return tuple(sorted(self._hung.values()))

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on one of the pool's threads.

        Raises:
            UsageError: If the pool is shut down, or ``max_hung`` of its threads are hung.
        """
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise UsageError(f"the threads of {self.name!r} are shut down")
            if len(self._hung) >= self.max_hung:
                raise UsageError(
                    f"{len(self._hung)} calls of {self.name!r} are still blocked after their "
                    f"timeout (hung threads: {', '.join(sorted(self._hung.values())[:5])}, ...); "
                    "no thread is started for more: check the model, then rerun to retry"
                )
            self._pending += 1
            self._queue.put(_Work(future, lambda: fn(*args, **kwargs)))
            self._add_worker_if_needed()
        return future

    def abandon(self, future: Future[Any]) -> str | None:
        """Give up on a call: cancel it if it has not started, else write its thread off.

        Args:
            future: A future :meth:`submit` returned.

        Returns:
            The name of the thread left blocked in the call (now counted as hung), or None
            when the call had not started (it is cancelled) or has already finished.
        """
        with self._lock:
            if future.cancel() or future.done():
                return None
            if future in self._hung:
                return self._hung[future]
            thread = self._running.get(future)
            if thread is None:
                return None
            self._hung[future] = thread.name
            self._workers.discard(thread)
            self._add_worker_if_needed()
            return thread.name

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the pool; hung threads are never waited for.

        Args:
            wait: Wait for the threads that are not hung to finish their calls.
            cancel_futures: Cancel the calls that have not started.
        """
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        if cancel_futures:
            with contextlib.suppress(queue.Empty):
                while True:
                    work = self._queue.get_nowait()
                    if work is not None:
                        work.future.cancel()
        for _ in workers:
            self._queue.put(None)
        if wait:
            for thread in workers:
                if thread is not threading.current_thread():
                    thread.join()

    def _add_worker_if_needed(self) -> None:
        """Start a thread when calls wait, none is idle and fewer than max_workers work."""
        if self._pending <= self._idle or len(self._workers) >= self.max_workers:
            return
        thread = threading.Thread(
            target=self._work, name=f"hybrid-llm {self.name}-{next(self._numbers)}", daemon=True
        )
        self._workers.add(thread)
        self._idle += 1
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            work = self._queue.get()
            with self._lock:
                self._idle -= 1
                if work is None:
                    self._workers.discard(me)
                    return
                self._pending -= 1
                if not work.future.set_running_or_notify_cancel():
                    self._idle += 1
                    continue
                self._running[work.future] = me
            try:
                result = work.call()
            except BaseException as exc:  # handed to the caller, as ThreadPoolExecutor does
                work.future.set_exception(exc)
            else:
                work.future.set_result(result)
            with self._lock:
                del self._running[work.future]
                if self._hung.pop(work.future, None) is not None:
                    return  # written off while blocked; a fresh thread has taken its place
                self._idle += 1


@dataclass
class TrackedCalls:
    """The thread pool calls made for one try of one request, and where they ran.

    Attributes:
        threads: The pool calls of this try go to.
        futures: The calls submitted during the try.
    """

    threads: ModelThreads
    futures: list[Future[Any]] = field(default_factory=list)

    def abandon_running(self) -> list[str]:
        """Abandon every call of the try that has not finished; the names of hung threads."""
        names = (self.threads.abandon(future) for future in self.futures)
        return [name for name in names if name is not None]


_CURRENT: contextvars.ContextVar[TrackedCalls | None] = contextvars.ContextVar(
    "hybrid_llm_tracked_calls", default=None
)


@contextlib.contextmanager
def tracked_calls(threads: ModelThreads) -> Iterator[TrackedCalls]:
    """Send the default-executor calls made inside the block (and tasks it starts) to ``threads``.

    Args:
        threads: The pool of the model being called.

    Yields:
        The record of the calls made, to abandon the running ones after a timeout.
    """
    tracked = TrackedCalls(threads)
    previous = _CURRENT.get()
    _CURRENT.set(tracked)
    try:
        yield tracked
    finally:
        # set, not reset: a coroutine closed by the garbage collector ends in another context
        _CURRENT.set(previous)


class LoopExecutor(ThreadPoolExecutor):
    """An event loop's default executor that runs each call on the pool of the model calling.

    A call made inside :func:`tracked_calls` goes to that block's pool and is recorded there;
    any other call (a DNS lookup outside a request) goes to ``fallback``. It is a
    ``ThreadPoolExecutor`` only because ``loop.set_default_executor`` asks for one: it starts
    no thread of its own.

    Args:
        fallback: The pool for calls made outside :func:`tracked_calls`.
    """

    def __init__(self, fallback: ModelThreads) -> None:
        super().__init__(max_workers=1, thread_name_prefix="hybrid-llm unused")
        self.fallback = fallback

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn`` on the calling model's pool (see the class docstring)."""
        tracked = _CURRENT.get()
        if tracked is None:
            return self.fallback.submit(fn, *args, **kwargs)
        future = tracked.threads.submit(fn, *args, **kwargs)
        tracked.futures.append(future)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut the fallback pool down (each model's pool is shut down by its owner)."""
        self.fallback.shutdown(wait, cancel_futures=cancel_futures)
