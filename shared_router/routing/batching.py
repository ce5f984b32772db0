"""Micro-batching: concurrent decisions scored as one batch on the router's own thread.

Each :class:`~shared_router.routing.router.Router` gets one :class:`ScoreBatcher`
(:func:`batcher_for`), shared by every service over that router. A decision hands its text
to the batcher and waits (:meth:`ScoreBatcher.score` blocks a thread,
:meth:`ScoreBatcher.ascore` awaits without holding the event loop); the batcher's thread
takes every text waiting, up to :data:`MAX_BATCH`, scores them with one
:meth:`Router.score` call (one encoder pass), and hands each caller its score.

The window adapts to the load: a text that arrives when the thread is idle is scored at
once, alone (no added wait); while a batch runs, the texts that arrive meanwhile wait and
form the next batch; and after a batch of several texts the thread waits up to
:data:`MAX_WAIT_S` for more, up to :data:`MAX_BATCH`. A caller's score is the one it would
get alone: the encoder's vectors do not depend on the texts encoded with them, and a batch
that fails is scored again text by text, so only the text that fails gets the error.

Scores come back with the time the text waited for the thread (``queue_ms``) and the time
its batch took (``compute_ms``): what a routing record reports as ``router_queue_ms`` and
``router_compute_ms``. The thread is a daemon thread, named ``hybrid-llm router ...``; it
ends after :data:`IDLE_EXIT_S` without work and starts again on the next text (and in a
child process after ``fork``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared_router.errors import UsageError

if TYPE_CHECKING:
    from shared_router.routing.router import Router

__all__ = ["IDLE_EXIT_S", "MAX_BATCH", "MAX_WAIT_S", "BatchedScore", "ScoreBatcher", "batcher_for"]

MAX_BATCH = 64
"""Most texts scored in one batch."""

MAX_WAIT_S = 0.001
"""Most seconds the thread waits for more texts after a batch of several (never when idle)."""

IDLE_EXIT_S = 30.0
"""Seconds without work after which the batcher's thread ends (it restarts on demand)."""


@dataclass(frozen=True)
class BatchedScore:
    """One text's score and where its time went.

    Attributes:
        score: p(small is good enough), as :meth:`Router.score` gives it.
        queue_ms: Milliseconds from handing the text in to the start of its batch.
        compute_ms: Milliseconds its batch took to score.
        batch_size: Texts in that batch (this one included).
    """

    score: float
    queue_ms: float
    compute_ms: float
    batch_size: int


_Outcome = BatchedScore | BaseException


class _Job:
    """One text waiting for its score, and how to hand the score over."""

    __slots__ = ("future", "loop", "submitted", "text")

    def __init__(
        self,
        text: str,
        future: Future[BatchedScore] | asyncio.Future[BatchedScore],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.text = text
        self.future = future
        self.loop = loop
        self.submitted = time.perf_counter()


class ScoreBatcher:
    """Scores texts for many callers at once, in batches, on one thread of its own.

    Args:
        score_texts: Scores a list of distinct texts, one float each, in order
            (a router's :meth:`~shared_router.routing.router.Router.score`).
        name: Shown in the thread's name.
        max_batch: Most texts per batch.
        max_wait_s: Most seconds to wait for more texts after a batch of several.
        idle_exit_s: Seconds without work after which the thread ends.
    """

    def __init__(
        self,
        score_texts: Callable[[list[str]], Sequence[float]],
        *,
        name: str,
        max_batch: int = MAX_BATCH,
        max_wait_s: float = MAX_WAIT_S,
        idle_exit_s: float = IDLE_EXIT_S,
    ) -> None:
        if max_batch < 1 or max_wait_s < 0 or idle_exit_s <= 0:
            raise UsageError(
                f"max_batch must be >= 1, max_wait_s >= 0 and idle_exit_s > 0; got {max_batch}, "
                f"{max_wait_s}, {idle_exit_s}"
            )
        self.name = name
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.idle_exit_s = idle_exit_s
        self._score_texts = score_texts
        self._reset()
        _BATCHERS.add(self)

    def _reset(self) -> None:
        """Fresh lock, queue and no thread (at construction, and in a child after fork)."""
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Job] = []
        self._thread: threading.Thread | None = None

    def score(self, text: str) -> BatchedScore:
        """Score one text in the next batch, blocking the calling thread until it is scored.

        Raises:
            Exception: Whatever scoring the text raised (scored alone).
        """
        future: Future[BatchedScore] = Future()
        self._submit(_Job(text, future, None))
        return future.result()

    async def ascore(self, text: str) -> BatchedScore:
        """Score one text in the next batch; awaiting it holds neither the loop nor its executor.

        Raises:
            Exception: Whatever scoring the text raised (scored alone).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[BatchedScore] = loop.create_future()
        self._submit(_Job(text, future, loop))
        return await future

    def _submit(self, job: _Job) -> None:
        with self._cond:
            self._pending.append(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name=f"hybrid-llm router {self.name}", daemon=True
                )
                self._thread.start()
            else:
                self._cond.notify()

    def _work(self) -> None:
        last_size = 0
        while True:
            batch = self._next_batch(last_size)
            if batch is None:
                return
            last_size = len(batch)
            self._deliver(batch, self._run(batch))

    def _next_batch(self, last_size: int) -> list[_Job] | None:
        """Wait for texts; None when idle for ``idle_exit_s`` (the thread then ends)."""
        with self._cond:
            while not self._pending:
                if not self._cond.wait(self.idle_exit_s) and not self._pending:
                    self._thread = None
                    return None
            if last_size > 1 and self.max_wait_s > 0:  # under load: let a batch fill
                deadline = time.perf_counter() + self.max_wait_s
                while len(self._pending) < self.max_batch:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            return batch

    def _run(self, batch: list[_Job]) -> list[_Outcome]:
        """Score a batch; a batch that fails is scored text by text."""
        start = time.perf_counter()
        texts = list(dict.fromkeys(job.text for job in batch))
        by_text: dict[str, float | BaseException]
        try:
            by_text = dict(zip(texts, map(float, self._score_texts(texts)), strict=True))
        except Exception:  # find the texts that fail: each caller gets its own outcome
            by_text = {text: self._score_alone(text) for text in texts}
        compute_ms = (time.perf_counter() - start) * 1000.0
        outcomes: list[_Outcome] = []
        for job in batch:
            scored = by_text[job.text]
            if isinstance(scored, BaseException):
                outcomes.append(scored)
            else:
                queue_ms = (start - job.submitted) * 1000.0
                outcomes.append(BatchedScore(scored, queue_ms, compute_ms, len(batch)))
        return outcomes

    def _score_alone(self, text: str) -> float | BaseException:
        try:
            return float(self._score_texts([text])[0])
        except Exception as exc:  # handed to that text's caller
            return exc

    def _deliver(self, batch: list[_Job], outcomes: list[_Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, _Outcome]]] = {}
        for job, outcome in zip(batch, outcomes, strict=True):
            if job.loop is None:
                _settle(job.future, outcome)
            else:
                by_loop.setdefault(job.loop, []).append((job, outcome))
        for loop, settled in by_loop.items():  # one wake-up per event loop and batch
            try:
                loop.call_soon_threadsafe(_settle_all, settled)
            except RuntimeError:  # the loop is closed: nobody awaits these any more
                continue


def _settle_all(settled: list[tuple[_Job, _Outcome]]) -> None:
    for job, outcome in settled:
        _settle(job.future, outcome)


def _settle(future: Future[BatchedScore] | asyncio.Future[BatchedScore], outcome: _Outcome) -> None:
    if future.done():  # an await that was cancelled
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


_BATCHERS: weakref.WeakSet[ScoreBatcher] = weakref.WeakSet()
_BY_ROUTER: weakref.WeakKeyDictionary[Router, ScoreBatcher] = weakref.WeakKeyDictionary()
_BY_ROUTER_LOCK = threading.Lock()


def batcher_for(router: Router) -> ScoreBatcher:
    """The one batcher of ``router`` in this process (made on first use).

    The batcher holds the router weakly: it does not keep a router alive that nothing
    else uses.
    """
    with _BY_ROUTER_LOCK:
        batcher = _BY_ROUTER.get(router)
        if batcher is None:
            batcher = ScoreBatcher(_weak_scorer(router), name=router.name)
            _BY_ROUTER[router] = batcher
        return batcher


def _weak_scorer(router: Router) -> Callable[[list[str]], Sequence[float]]:
    reference = weakref.ref(router)
    name = router.name

    def score_texts(texts: list[str]) -> Sequence[float]:
        live = reference()
        if live is None:
            raise UsageError(f"router {name!r} was garbage-collected while texts waited for it")
        scores: list[float] = live.score(texts).tolist()
        return scores

    return score_texts


def _after_fork_in_child() -> None:
    """A child process has none of its parent's threads: start each batcher afresh."""
    global _BY_ROUTER_LOCK
    _BY_ROUTER_LOCK = threading.Lock()
    for batcher in list(_BATCHERS):
        batcher._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
