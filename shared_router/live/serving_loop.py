"""The live loop an adapter holds: shadow evaluation, live calibration and retraining, served.

:class:`LiveLoop` is what ``ChatHybrid(..., live=LiveSettings(...))`` and
``HybridLLM(..., live=...)`` run; the adapters only pass it to their
:class:`~shared_router.routing.serving.RoutingService` (``live=``) and offer it each answered
call (:meth:`LiveLoop.offer`). Per call it does only cheap, lock-light work on the caller's
thread:

- :meth:`router_for` and :meth:`threshold_for` (asked by the routing service) return the
  current router version and the kept live threshold for a ``max_quality_drop``;
- :meth:`offer` draws whether the call is shadowed and queues its shadow work
  (:class:`~shared_router.live.shadow.ShadowEvaluator`: bounded queue, background threads).

Every ``refresh_interval_s`` the loop's own thread refreshes (:meth:`LiveRouting.refresh
<shared_router.live.live_routing.LiveRouting.refresh>`: reads the new rows, picks up a
version another worker swapped in, retrains when due, rebuilds the live calibration). A
refresh that fails (the store unreachable) is counted and logged, and routing goes on with
what it had. :func:`live_loop` gives the one loop of a settings object in this process.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from shared_router.errors import ConfigurationError, HybridLLMError, UsageError
from shared_router.live.costs import LiveCosts, TokenCosts
from shared_router.live.live_routing import LiveRouting
from shared_router.live.recalibration import LiveCalibrator, LiveThreshold
from shared_router.live.retraining import Retrainer
from shared_router.live.serving_stats import LiveServingStats, LiveStats
from shared_router.live.settings import LiveSettings
from shared_router.live.shadow import ShadowEvaluator, ShadowStats
from shared_router.live.store import ShadowStore, open_store
from shared_router.routing.accounting import ModelPrices, StatsSnapshot, TokenUsage
from shared_router.routing.live_hook import ShadowAnswer
from shared_router.routing.router import Router
from shared_router.routing.serving import Routed
from shared_router.types import ModelChoice

__all__ = ["LiveLoop", "live_loop"]

logger = logging.getLogger(__name__)


class LiveLoop:
    """One model's live loop in this process (see the module docstring).

    The store is opened here; the router version, calibration and shadow evaluator start
    with the first routed call, from the router the routing service loaded.

    Args:
        settings: What to shadow, where to store it, how to judge and recalibrate.

    Raises:
        ConfigurationError: For a store URL of an unknown scheme.
        RoutingError: When the store cannot be opened.
    """

    def __init__(self, settings: LiveSettings) -> None:
        self.settings = settings
        store = settings.store
        self.store: ShadowStore = (
            store
            if isinstance(store, ShadowStore)
            else open_store(store, versions_dir=settings.versions_dir)
        )
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._routing: LiveRouting | None = None
        self._base: Router | None = None
        self._evaluator: ShadowEvaluator | None = None
        self._thread: threading.Thread | None = None
        self._last: LiveThreshold | None = None
        self._refresh_errors = 0
        self._warned = False

    def __reduce__(self) -> tuple[Any, ...]:
        """A pickled loop is, in the process that unpickles it, the loop of its settings.

        Its threads, queue and calibration stay here; in a worker process the first model
        unpickled starts the loop there, on the same store (several workers share one store),
        and every later one (a pool's next task) shares it (:attr:`LiveSettings.loop_key`).
        """
        return (live_loop, (self.settings,))

    # -- what the routing service asks (the caller's thread) --

    def router_for(self, loaded: Router) -> Router:
        """The router version that routes now; the first call starts the loop on ``loaded``.

        Raises:
            ConfigurationError: When ``loaded`` is not the router the loop started on: one
                loop learns one router's traffic (give another router its own settings).
        """
        routing = self._routing
        if routing is None:
            routing = self._start(loaded)
        if loaded is not self._base:
            first, other = getattr(self._base, "name", "?"), getattr(loaded, "name", "?")
            which = (
                f"another Router object of the same name, {other!r} (loaded separately: "
                "Router.load(...) makes a new one; give both models the same source, "
                "'default' or the folder, and they share one)"
                if first == other
                else f"router {other!r}"
            )
            raise ConfigurationError(
                f"these LiveSettings already learn router {first!r}, and a model routing "
                f"with {which} was given them too; one LiveSettings learns one router: give "
                "each router its own LiveSettings (and store)"
            )
        return routing.router

    def threshold_for(self, max_quality_drop: float) -> LiveThreshold:
        """The kept live threshold for ``max_quality_drop`` (no store access).

        Raises:
            KnobError: For a ``max_quality_drop`` that is not a number in [0, 1].
            UsageError: Before the loop has started (no routed call yet).
        """
        routing = self._routing
        if routing is None:
            raise UsageError(
                "LiveLoop.threshold_for was asked before the loop started; the routing "
                "service asks router_for first"
            )
        level = routing.threshold_for(max_quality_drop)
        self._last = level
        return level

    # -- what the adapter offers after answering (the caller's thread) --

    def offer(
        self,
        routed: Routed,
        answered_by: ModelChoice,
        answer: str,
        call_other: Callable[[], str | ShadowAnswer],
        request_id: str | None = None,
        reference: str | None = None,
        usage: TokenUsage | None = None,
        prices: Mapping[str, ModelPrices] | None = None,
    ) -> bool:
        """Offer one answered call for shadowing; returns at once.

        Only calls the router scored are offered (a forced, sticky or unscored decision
        leaves no usable row); of those, ``shadow_rate`` are drawn at random, independently
        of the decision. The other model's call (``call_other``), the judge and the store
        write run on background threads; a full queue drops the work (counted).

        Args:
            routed: The call's decision (:meth:`RoutingService.decide`).
            answered_by: The model whose answer the caller got.
            answer: That answer's text.
            call_other: Calls the other model on the same request, returns its answer's text
                (or a :class:`~shared_router.routing.live_hook.ShadowAnswer` with its token usage).
            request_id: The request's id in the row (None: a fresh one).
            reference: The caller's reference answer, for judges that compare with one
                (a ``match`` metric needs it).
            usage: The tokens the answered call used.
            prices: The offering model's token prices (its ``prices=``): with them, and no
                ``costs`` in the settings, the call and its shadow work are priced per token.

        Returns:
            True when the call's shadow work was queued.
        """
        evaluator = self._evaluator
        if evaluator is None or routed.text is None or routed.decision.score is None:
            return False
        calibration = routed.calibration
        return evaluator.maybe_shadow(
            request_id,
            routed.text,
            routed,
            answered_by=answered_by,
            answer=answer,
            call_other=call_other,
            reference=reference,
            calibration=calibration if isinstance(calibration, LiveThreshold) else None,
            usage=usage,
            costs=self._costs(prices),
        )

    def _costs(self, prices: Mapping[str, ModelPrices] | None) -> LiveCosts | None:
        """The settings' costs; else the offering model's token prices; else the default."""
        if self.settings.costs is not None or prices is None:
            return self.settings.costs
        return TokenCosts.from_prices(prices)

    # -- the loop's own thread --

    def _start(self, loaded: Router) -> LiveRouting:
        with self._lock:
            if self._routing is not None:
                return self._routing
            settings = self.settings
            retrainer = None
            if settings.retrain:
                retrainer = Retrainer(
                    self.store,
                    min_rows=settings.retrain_min_rows,
                    every=settings.retrain_every,
                    versions_dir=settings.versions_dir,
                )
            routing = LiveRouting(
                self.store,
                loaded,
                version=settings.router_version,
                retrainer=retrainer,
                recalibrate_every=settings.recalibrate_every,
                make_calibrator=lambda r: LiveCalibrator(
                    getattr(r, "calibration_", None), min_rows=settings.min_live_rows
                ),
            )
            self._evaluator = ShadowEvaluator(
                self.store,
                settings.judge,
                shadow_rate=settings.shadow_rate,
                seed=settings.seed,
                queue_size=settings.queue_size,
                workers=settings.workers,
                shadow_timeout=settings.shadow_timeout,
                costs=settings.costs,
                keep=settings.keep,
                keep_answers=settings.keep_answers,
                encoder=getattr(loaded, "encoder_", None),
                router_version=lambda: routing.version,
                worker=settings.worker,
            )
            try:  # a fresh worker routes its first call with the version in use
                routing.pick_up_version()
            except HybridLLMError as exc:
                self._refresh_errors += 1  # under self._lock already
                logger.warning(
                    "live loop: the store could not be read at start (%s: %s); routing starts "
                    "with %s",
                    type(exc).__name__,
                    exc,
                    routing.version,
                )
            self._base, self._routing = loaded, routing
            self._thread = threading.Thread(
                target=self._run, name="hybrid-llm live loop", daemon=True
            )
            self._thread.start()
            self._wake.set()  # the first refresh reads the rows already in the store
            _at_exit(self.close)
            return routing

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.settings.refresh_interval_s)
            self._wake.clear()
            if self._stopped.is_set():
                return
            self.refresh()

    def refresh(self) -> bool:
        """Refresh now (the loop's thread does it on its own): rows, version, calibration.

        Returns:
            True when it refreshed; False before the loop started or when it failed (the
            failure is counted in ``stats.refresh_errors`` and logged; routing goes on).
        """
        routing, evaluator = self._routing, self._evaluator
        if routing is None:
            return False
        if evaluator is not None:  # rows buffered while the store was down go out now
            evaluator.flush()
        try:
            routing.refresh()
        except HybridLLMError as exc:  # the store is unreachable, a version unreadable
            self._count_failure()
            (logger.debug if self._warned else logger.warning)(
                "live loop: refresh failed (%s: %s); routing goes on with the calibration it has",
                type(exc).__name__,
                exc,
            )
            self._warned = True
            return False
        except Exception:  # a bug: loud, with its traceback, but never on a caller's path
            self._count_failure()
            logger.exception("live loop: refresh failed unexpectedly")
            return False
        return True

    def _count_failure(self) -> None:
        with self._lock:
            self._refresh_errors += 1

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for the queued shadow work, then refresh (for tests, scripts, shutdown).

        Args:
            timeout: Most seconds to wait for the shadow work (None: until done).

        Returns:
            True when no shadow work is left and the refresh succeeded.
        """
        evaluator = self._evaluator
        if evaluator is None:
            return True
        done = evaluator.drain(timeout)
        return self.refresh() and done

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop's thread and finish the queued shadow work, each for up to ``timeout`` s.

        A retraining in progress gives up at its next step (the thread is waited for, so that
        it does not die inside the encoder at exit, which aborts the process), and the store's
        retraining lock is released, so other workers need not wait for it to expire.
        """
        self._stopped.set()
        self._wake.set()
        retrainer = self._routing.retrainer if self._routing is not None else None
        if retrainer is not None:
            retrainer.stop()
        if self._evaluator is not None:
            self._evaluator.close(timeout)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if retrainer is not None:
            try:
                retrainer.release()
            except HybridLLMError as exc:  # the store is unreachable: the lock expires
                logger.debug("live loop: the retraining lock was not released (%s)", exc)

    # -- what llm.stats shows --

    def serving_stats(self, snapshot: StatsSnapshot) -> LiveServingStats:
        """A routing service's counters with this loop's beside them (``llm.stats``)."""
        fields = {name: getattr(snapshot, name) for name in snapshot.__dataclass_fields__}
        return LiveServingStats(**fields, live=self.stats)

    @property
    def stats(self) -> LiveStats:
        """A snapshot of the loop's counters and current calibration."""
        evaluator, routing, last = self._evaluator, self._routing, self._last
        shadow = evaluator.stats if evaluator is not None else _NO_SHADOW
        saved = evaluator.traffic.cost_saved_net if evaluator is not None else 0.0
        with self._lock:
            refresh_errors = self._refresh_errors
        level = last.record_fields() if last is not None else {}
        return LiveStats(
            **{name: getattr(shadow, name) for name in shadow.__dataclass_fields__},
            cost_saved_net=saved,
            calibration=level.get("calibration"),
            calibration_rows=int(level.get("calibration_rows", 0)),
            drop_bound=level.get("drop_bound"),
            router_version=routing.version if routing is not None else None,
            retrains=len(routing.history) if routing is not None else 0,
            refresh_errors=refresh_errors,
        )


def _at_exit(close: Callable[[], None]) -> None:
    """Call ``close`` when the interpreter exits, before thread pools refuse new work.

    ``threading._register_atexit`` callbacks run when the main thread ends, before
    ``concurrent.futures`` shuts its pools (which the encoder runs on) and before ``atexit``'s:
    a retraining stopped there ends cleanly, where at ``atexit`` time it failed on the
    encoder's pool (or, inside the encoder, died with the interpreter and aborted it).
    """
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(close)
            return
    except RuntimeError:  # the interpreter is already shutting down
        pass
    atexit.register(close)


_NO_SHADOW = ShadowStats(0, 0, 0, 0, 0, 0, 0.0, 0, 0, 0, 0, 0)
"""The counters before the first routed call started the evaluator."""

_LOOPS: dict[str, LiveLoop] = {}
_LOOPS_LOCK = threading.Lock()


def live_loop(settings: LiveSettings) -> LiveLoop:
    """The one loop of ``settings`` in this process (made, and its store opened, on first use).

    Copies of a model hold the same settings, and models unpickled in this process hold
    copies of them with the same :attr:`~LiveSettings.loop_key`: all share one loop.
    """
    with _LOOPS_LOCK:
        loop = _LOOPS.get(settings.loop_key)
        if loop is None:
            loop = _LOOPS[settings.loop_key] = LiveLoop(settings)
        return loop
