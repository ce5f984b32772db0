"""Shadow evaluation: on a random share of calls the other model answers too; a judge scores both.

:class:`ShadowEvaluator` is what an adapter calls after it has answered a request
(:meth:`ShadowEvaluator.maybe_shadow`). Whether a call is shadowed is drawn uniformly at
random with probability ``shadow_rate``, before and independently of the routing decision,
so the shadowed calls are an unbiased sample of the traffic. A shadowed call is queued; the
call to the model that did not answer, the judge and the store write all run on the
evaluator's own background threads, never on the caller's:

- the queue is bounded: when it is full the shadow work is dropped and counted
  (``stats.dropped``), the caller is not held;
- a shadow call or a judge that raises is counted (``shadow_errors``, ``judge_errors``) and
  leaves no row; one that blocks past ``shadow_timeout`` is abandoned (its thread written off)
  and counted the same way;
- rows go to the store through a bounded buffer
  (:class:`~shared_router.live.store_writer.StoreWriter`): an unreachable store loses
  nothing until the buffer is full, then drops and counts; the buffer goes out with the next
  row or :meth:`ShadowEvaluator.flush`, and rows still in it at :meth:`~ShadowEvaluator.close`
  are dropped, counted and warned about.

Each evaluator writes its traffic counters (running totals) to the store under its own name,
``worker`` and a run id, so evaluators in one process, or a restarted process of the same
``host:pid``, never overwrite each other's.

Costs are per call in any unit (:class:`~shared_router.live.costs.ShadowCosts`; the replay
uses 1 for the large model and ``--small-cost`` for the small one) or per token
(:class:`~shared_router.live.costs.TokenCosts`: the answered call's and the shadow call's
reported usage at the models' token prices): ``stats.shadow_cost`` is what the shadow calls
and the judge cost, so savings can be reported net of it.

Wiring it into an adapter (after the answer is ready)::

    shadowed = evaluator.maybe_shadow(
        request_id, routed_text, routed, answered_by="small", answer=text,
        call_other=lambda: large_model(prompt), reference=None, calibration=live_threshold,
        usage=TokenUsage(input_tokens=12, output_tokens=40),
    )
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from shared_router._internal.model_threads import ModelThreads
from shared_router._internal.validation import check_positive_int, check_positive_seconds
from shared_router.encoders.encoder import Encoder
from shared_router.errors import ConfigurationError, UsageError
from shared_router.live.costs import LiveCosts, ShadowCosts, TokenCosts
from shared_router.live.judges import PairScores, ShadowCase, ShadowJudge, pair_scores
from shared_router.live.recalibration import LiveThreshold
from shared_router.live.rows import ShadowRow, TrafficCounts
from shared_router.live.store import ShadowStore, default_worker
from shared_router.live.store_writer import StoreWriter
from shared_router.routing.accounting import TokenUsage
from shared_router.routing.live_hook import ShadowAnswer
from shared_router.routing.serving import Routed
from shared_router.types import ModelChoice, RouteDecision, other_model

__all__ = ["ShadowEvaluator", "ShadowStats", "check_shadow_rate", "check_shadow_settings"]

logger = logging.getLogger(__name__)

_TRAFFIC_EVERY_S = 5.0


@dataclass(frozen=True)
class ShadowStats:
    """Counters of a shadow evaluator.

    Attributes:
        calls: Calls offered (every answered call passed to ``maybe_shadow``).
        shadowed: Calls drawn for shadowing and queued.
        dropped: Calls drawn for shadowing but dropped: the queue was full.
        shadow_errors: Shadow calls that raised or timed out (no row).
        judge_errors: Judgements that raised or timed out (no row).
        labelled: Rows made (both answers judged).
        shadow_cost: What the shadow calls and the judgements cost.
        rows_written: Rows in the store.
        rows_buffered: Rows waiting for the store.
        rows_lost: Rows dropped because the store failed and the buffer was full.
        pending: Shadow work queued or running now.
        unpriced: Answered and shadow calls priced at 0 because token prices
            (:class:`~shared_router.live.costs.TokenCosts`) met a call that reported no token
            usage (a WARNING names the first).
    """

    calls: int
    shadowed: int
    dropped: int
    shadow_errors: int
    judge_errors: int
    labelled: int
    shadow_cost: float
    rows_written: int
    rows_buffered: int
    rows_lost: int
    pending: int
    unpriced: int


@dataclass(frozen=True)
class _Work:
    request_id: str
    text: str
    decision: RouteDecision
    answered_by: ModelChoice
    answer: str
    call_other: Callable[[], str | ShadowAnswer]
    reference: str | None
    calibration: LiveThreshold | None
    router_version: str
    created_at: float
    costs: LiveCosts


def check_shadow_settings(
    *,
    shadow_rate: object,
    queue_size: object,
    workers: object,
    shadow_timeout: object,
    keep: object,
    owner: str = "",
) -> None:
    """Check the settings of a :class:`ShadowEvaluator` (``LiveSettings`` checks its own here).

    Args:
        shadow_rate: In [0, 1].
        queue_size: An int >= 1.
        workers: An int >= 1.
        shadow_timeout: Seconds, finite and > 0.
        keep: ``"text"`` or ``"embedding"``.
        owner: The class the values are fields of, for the messages (``"LiveSettings"``).

    Raises:
        ConfigurationError: Naming the first value out of its range, and what it was.
    """
    prefix = f"{owner}." if owner else ""
    check_shadow_rate(shadow_rate, f"{prefix}shadow_rate")
    check_positive_int(f"{prefix}queue_size", queue_size)
    check_positive_int(f"{prefix}workers", workers)
    check_positive_seconds(f"{prefix}shadow_timeout", shadow_timeout)
    if keep not in ("text", "embedding"):
        raise ConfigurationError(f"{prefix}keep must be 'text' or 'embedding', got {keep!r}")


def check_shadow_rate(rate: object, name: str = "shadow_rate") -> None:
    """Refuse a shadow rate that is not a number in [0, 1] (a bool is not one).

    Raises:
        ConfigurationError: ``"{name} must lie in [0, 1], got {rate!r}"``.
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise ConfigurationError(f"{name} must lie in [0, 1], got {rate!r}")


class ShadowEvaluator:
    """Shadows a random share of calls off the caller's path and stores the judged rows.

    Args:
        store: Where the judged rows go.
        judge: Scores both answers (:mod:`~shared_router.live.judges`).
        shadow_rate: Probability that a call is shadowed, in [0, 1].
        seed: Seed of the shadow draws and nothing else (None: unseeded).
        queue_size: Most shadow calls waiting at once; beyond it new ones are dropped.
        workers: Background threads that run shadow calls and judgements.
        shadow_timeout: Seconds a shadow call or a judgement may take before it is
            abandoned and counted as an error.
        costs: Prices of the calls, for ``shadow_cost`` and the traffic counters, unless a
            call brings its own (default: ``ShadowCosts()``).
        keep: ``"text"`` keeps the routed text in the row; ``"embedding"`` keeps only its
            embedding (made by ``encoder`` on the background thread).
        keep_answers: Keep both answers in the row.
        encoder: The router's encoder, needed for ``keep="embedding"``.
        router_version: The current router's name, or a function returning it at call time.
        worker: This process's name in the store's rows (default ``host:pid``); its traffic
            counters go under ``worker/<run id>``.
        buffer_capacity: Most rows kept while the store is unreachable.

    Raises:
        ConfigurationError: For a rate outside [0, 1], sizes below 1, or
            ``keep="embedding"`` without an encoder.
    """

    def __init__(
        self,
        store: ShadowStore,
        judge: ShadowJudge,
        *,
        shadow_rate: float,
        seed: int | None = None,
        queue_size: int = 64,
        workers: int = 2,
        shadow_timeout: float = 120.0,
        costs: LiveCosts | None = None,
        keep: str = "text",
        keep_answers: bool = False,
        encoder: Encoder | None = None,
        router_version: str | Callable[[], str] = "default",
        worker: str | None = None,
        buffer_capacity: int = 10_000,
    ) -> None:
        check_shadow_settings(
            shadow_rate=shadow_rate,
            queue_size=queue_size,
            workers=workers,
            shadow_timeout=shadow_timeout,
            keep=keep,
        )
        if keep == "embedding" and encoder is None:
            raise ConfigurationError(
                "keep='embedding' stores the routed text's embedding only, so it needs the "
                "router's encoder: pass encoder=router.encoder_"
            )
        self.store = store
        self.judge = judge
        self.shadow_rate = float(shadow_rate)
        self.shadow_timeout = float(shadow_timeout)
        self.costs: LiveCosts = costs if costs is not None else ShadowCosts()
        self.keep = keep
        self.keep_answers = keep_answers
        self.encoder = encoder
        self.router_version = router_version
        self.worker = worker or default_worker()
        self._traffic_name = f"{self.worker}/{uuid.uuid4().hex[:12]}"
        self.writer = StoreWriter(store, capacity=buffer_capacity)
        self._rng = random.Random(seed)
        self._queue: queue.Queue[_Work | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._traffic = TrafficCounts()
        self._counts = {"shadow_errors": 0, "judge_errors": 0, "labelled": 0, "unpriced": 0}
        self._calls_pool = ModelThreads("shadow calls", workers)
        self._closed = False
        self._warned: set[str] = set()
        self._traffic_sent_at = 0.0
        self._threads = [
            threading.Thread(target=self._run, name=f"hybrid-llm shadow-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def maybe_shadow(
        self,
        request_id: str | None,
        routed_text: str,
        routed: Routed | RouteDecision,
        answered_by: ModelChoice,
        answer: str,
        call_other: Callable[[], str | ShadowAnswer],
        reference: str | None = None,
        calibration: LiveThreshold | None = None,
        usage: TokenUsage | None = None,
        costs: LiveCosts | None = None,
    ) -> bool:
        """Count one answered call and, with probability ``shadow_rate``, queue its shadow work.

        Returns at once: the other model's call, the judge and the store write run on the
        evaluator's threads. Never raises because of the shadow work.

        Args:
            request_id: The caller's id of the request (kept in the row); None: a fresh id,
                made only for a call that is drawn.
            routed_text: The text the router scored.
            routed: What :meth:`RoutingService.decide` returned (or its decision).
            answered_by: The model whose answer the user got.
            answer: That answer.
            call_other: Calls the other model on the same request and returns its answer
                (a :class:`ShadowAnswer` to report the tokens it used).
            reference: A reference answer, for judges that compare with one.
            calibration: The live calibration that chose the threshold, for the row.
            usage: The tokens the answered call used (for token prices).
            costs: How to price this call and its shadow work (default: the evaluator's).

        Returns:
            True when the call was queued for shadowing; False when it was not drawn, or
            drawn and dropped (queue full or evaluator closed).
        """
        if answered_by not in ("small", "large"):
            raise ConfigurationError(f"answered_by must be 'small' or 'large', got {answered_by!r}")
        priced = self.costs if costs is None else costs
        answer_cost = self._price(priced, answered_by, usage, "answered")
        with self._lock:
            drawn = self._rng.random() < self.shadow_rate
            self._traffic = self._traffic + TrafficCounts(
                calls=1,
                small=int(answered_by == "small"),
                answer_cost=answer_cost,
                large_cost=priced.call("large", usage),
            )
            closed = self._closed
        if not drawn:
            return False
        decision = routed.decision if isinstance(routed, Routed) else routed
        version = self.router_version() if callable(self.router_version) else self.router_version
        work = _Work(
            uuid.uuid4().hex if request_id is None else str(request_id),
            routed_text,
            decision,
            answered_by,
            answer,
            call_other,
            reference,
            calibration,
            version,
            time.time(),
            priced,
        )
        try:
            if closed:
                raise queue.Full
            self._queue.put_nowait(work)
        except queue.Full:
            with self._lock:
                self._traffic = self._traffic + TrafficCounts(dropped=1)
            return False
        with self._lock:
            self._traffic = self._traffic + TrafficCounts(shadowed=1)
        return True

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            try:
                if work is None:
                    return
                self._shadow(work)
                self._send_traffic(force=False)
            except Exception:  # a bug in a judge adapter must not kill the thread
                logger.exception("shadow evaluation of a request failed unexpectedly")
            finally:
                self._queue.task_done()

    def _shadow(self, work: _Work) -> None:
        other = other_model(work.answered_by)
        returned = self._bounded(work.call_other, "shadow call", work.request_id)
        if returned is None:
            self._count("shadow_errors")
            return
        other_answer, usage = (
            (returned.text, returned.usage)
            if isinstance(returned, ShadowAnswer)
            else (str(returned), None)
        )
        cost = self._price(work.costs, other, usage, "shadow") + work.costs.judge
        with self._lock:
            self._traffic = self._traffic + TrafficCounts(shadow_cost=cost)
        small_answer, large_answer = (
            (work.answer, other_answer)
            if work.answered_by == "small"
            else (other_answer, work.answer)
        )
        case = ShadowCase(work.request_id, work.text, small_answer, large_answer, work.reference)
        # A plain function returning a pair is accepted; any other result is logged, counted.
        scores = self._bounded(lambda: pair_scores(self.judge(case)), "judge", work.request_id)
        if not isinstance(scores, PairScores):
            self._count("judge_errors")
            return
        embedding, identity = None, None
        if self.keep == "embedding" and self.encoder is not None:
            embedding = self.encoder.encode([work.text])[0]
            identity = self.encoder.identity
        decision, calibration = work.decision, work.calibration
        row = ShadowRow(
            request_id=work.request_id,
            created_at=work.created_at,
            judged_at=time.time(),
            router_version=work.router_version,
            decision=work.answered_by,
            small_quality=scores.small_quality,
            large_quality=scores.large_quality,
            text=work.text if self.keep == "text" else None,
            embedding=embedding,
            encoder_identity=identity,
            score=decision.score,
            threshold=calibration.threshold if calibration is not None else decision.threshold,
            calibration_source=calibration.source if calibration is not None else None,
            calibration_rows=calibration.n_rows if calibration is not None else None,
            calibration_bound=calibration.bound if calibration is not None else None,
            small_answer=small_answer if self.keep_answers else None,
            large_answer=large_answer if self.keep_answers else None,
            shadow_cost=cost,
            worker=self.worker,
        )
        self._count("labelled")
        self.writer.write(row)

    def _bounded(self, call: Callable[[], object], what: str, request_id: str) -> object | None:
        """Run ``call`` on the pool within ``shadow_timeout``; None (logged) when it fails."""
        try:
            future = self._calls_pool.submit(call)
        except UsageError as exc:
            self._log_failure(what, "%s for request %r not started: %s", what, request_id, exc)
            return None
        try:
            return future.result(timeout=self.shadow_timeout)
        except concurrent.futures.TimeoutError:
            hung = self._calls_pool.abandon(future)
            self._log_failure(
                what,
                "%s for request %r gave no result within %g s%s; counted, no row kept",
                what,
                request_id,
                self.shadow_timeout,
                f" (thread {hung} left blocked)" if hung else "",
            )
        except Exception as exc:
            self._log_failure(
                what,
                "%s for request %r raised %s: %s; counted, no row kept",
                what,
                request_id,
                type(exc).__name__,
                exc,
            )
        return None

    def _log_failure(self, what: str, message: str, *args: object) -> None:
        """A WARNING for the first failure of each kind, DEBUG after (``stats`` counts all)."""
        with self._lock:
            first = what not in self._warned
            self._warned.add(what)
        (logger.warning if first else logger.debug)(message, *args)

    def _price(
        self, costs: LiveCosts, model: ModelChoice, usage: TokenUsage | None, kind: str
    ) -> float:
        """The price of one call of ``model``; a call token prices meet without its usage is
        counted in ``unpriced`` (a WARNING for the first). Not under ``self._lock``."""
        if usage is None and isinstance(costs, TokenCosts):
            self._count("unpriced")
            self._log_failure(
                "unpriced",
                "%s of the %s model reported no token usage, so its token price is 0 "
                "(stats.live.unpriced counts these); per-token live costs need a provider that "
                "reports usage, else give LiveSettings(costs=ShadowCosts(...)) per call",
                "a shadow call" if kind == "shadow" else "an answered call",
                model,
            )
        return costs.call(model, usage)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1
            if name in ("shadow_errors", "judge_errors"):
                self._traffic = self._traffic + (
                    TrafficCounts(shadow_errors=1)
                    if name == "shadow_errors"
                    else TrafficCounts(judge_errors=1)
                )

    def _send_traffic(self, *, force: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._traffic_sent_at < _TRAFFIC_EVERY_S:
                return
            self._traffic_sent_at = now
            counts = self._traffic
        try:
            self.writer.flush()
            self.store.record_traffic(self._traffic_name, counts)
        except Exception as exc:  # the store is down: the counters go out next time
            logger.debug("live store %r: traffic counters not written: %s", self.store.url, exc)

    def flush(self) -> None:
        """Write the buffered rows and the traffic counters, if the store takes them now.

        The live loop calls it on every refresh, so that rows buffered while the store was
        unreachable go out once it is back, without waiting for the next shadowed call.
        """
        self._send_traffic(force=True)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until the queued shadow work is done and the counters are in the store.

        Args:
            timeout: Most seconds to wait (None: until done).

        Returns:
            True when nothing is left queued or running.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        self._send_traffic(force=True)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking shadow work, finish the queued work for up to ``timeout`` seconds.

        Rows the store still has not taken then are dropped, counted in ``rows_lost`` and
        warned about (:meth:`StoreWriter.abandon
        <shared_router.live.store_writer.StoreWriter.abandon>`).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.drain(timeout)
        self.writer.abandon()
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
        self._calls_pool.shutdown(wait=False)

    @property
    def traffic(self) -> TrafficCounts:
        """This evaluator's traffic counters (the store sums them over workers)."""
        with self._lock:
            return self._traffic

    @property
    def stats(self) -> ShadowStats:
        """A snapshot of the counters."""
        written = self.writer.stats
        with self._lock:
            return ShadowStats(
                calls=self._traffic.calls,
                shadowed=self._traffic.shadowed,
                dropped=self._traffic.dropped,
                shadow_errors=self._counts["shadow_errors"],
                judge_errors=self._counts["judge_errors"],
                labelled=self._counts["labelled"],
                shadow_cost=self._traffic.shadow_cost,
                rows_written=written.written,
                rows_buffered=written.buffered,
                rows_lost=written.lost,
                pending=self._queue.unfinished_tasks,
                unpriced=self._counts["unpriced"],
            )
