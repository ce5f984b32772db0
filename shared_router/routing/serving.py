"""What both framework adapters share: lazy router, knob resolution, fallbacks, records, stats.

An adapter (LangChain's ``ChatHybrid``, LlamaIndex's ``HybridLLM``) turns its messages into
text (:func:`~shared_router.routing.text.routing_text`), asks :meth:`RoutingService.decide` (or,
in async code, :meth:`RoutingService.adecide`) which model to call, calls it, and turns the
outcome into a :class:`~shared_router.types.RoutingRecord` with :meth:`RoutingService.record`.
Routing never loses a request: when the router fails to score, the decision is "large" with
``fallback=True`` and the reason. A router that cannot be *loaded* is a setup error, raised:
a misspelt folder fails when the service is made, a broken one on the first decision.

Services over one source share one router (:mod:`~shared_router.routing.registry`), and
decisions over one :class:`~shared_router.routing.router.Router` are scored in micro-batches on
its own thread (:mod:`~shared_router.routing.batching`): many concurrent callers, sync or
async, make one encoder pass each few milliseconds, not one each, and an async caller never
holds the event loop or its default executor while it waits.

An inner model that has only a synchronous API runs, in the adapters' async paths, on a
bounded thread pool the service owns for that model, never on the event loop's default
executor (:mod:`~shared_router.routing.service_threads`). Stats and prices, sticky routing's
memory and paced shares are in ``accounting``, ``sticky`` and ``pacing`` next to this module.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from shared_router.errors import ConfigurationError, KnobError
from shared_router.routing.accounting import CallCounters, ModelPrices, StatsSnapshot
from shared_router.routing.batching import BatchedScore, ScoreBatcher, batcher_for
from shared_router.routing.live_hook import LiveHook, LiveLevel, at_live_threshold
from shared_router.routing.pacing import LargeSharePacers
from shared_router.routing.registry import check_router_source, shared_router, source_key
from shared_router.routing.router_failures import RouterFailureLog, large_decision
from shared_router.routing.service_threads import ServiceThreads
from shared_router.routing.sticky import LargeConversations
from shared_router.types import ModelChoice, QualityKnobs, RouteDecision, RoutingRecord

if TYPE_CHECKING:
    from shared_router.routing.router import Router

__all__ = ["SERVICE_FIELDS", "Routed", "RoutingService"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SETTINGS = ("router", "knobs", "sticky", "pace_large_share", "prices", "sticky_capacity", "live")
_STICKY_REASON = "sticky: this conversation already went to the large model"

SERVICE_FIELDS = frozenset({"router", "sticky", "pace_large_share", "prices", "live"})
"""The fields of both adapters their routing service is built from, the quality knobs aside:
assigning one rebuilds the service."""


@dataclass(frozen=True)
class Routed:
    """A decision with what the adapter needs to report it.

    Attributes:
        decision: The router's decision (or the forced/fallback one).
        router_ms: Time spent deciding, in milliseconds (all of it: queue, compute and the
            service's own work).
        router_failed: True when the router raised and the large model was chosen instead.
        conversation_key: The conversation this call belongs to, for sticky routing.
        queue_ms: Of ``router_ms``, the time the text waited for the router's thread.
        compute_ms: Of ``router_ms``, the time the router took to score the batch the text
            was in (0 when the router was not asked: a forced or sticky decision).
        text: The routed text when the router was asked (for shadow evaluation), else None.
        calibration: The live calibration that chose the threshold, or None.
        router_name: The name of the router that scored the text (with a live loop, the
            router version that routes now), or None when no router was asked.
    """

    decision: RouteDecision
    router_ms: float
    router_failed: bool = False
    conversation_key: str | None = None
    queue_ms: float = 0.0
    compute_ms: float = 0.0
    text: str | None = None
    calibration: LiveLevel | None = None
    router_name: str | None = None

    @property
    def model(self) -> ModelChoice:
        """The chosen model, ``"small"`` or ``"large"``."""
        return self.decision.model

    def fallback_reason(self, error: BaseException) -> str:
        """The record's ``reason`` when the large model answered for the failed small one."""
        return (
            f"small model failed ({type(error).__name__}: {error}); the large model answered "
            f"instead (routing: {self.decision.reason})"
        )


class RoutingService:
    """Thread-safe routing front end shared by the adapters.

    Args:
        router: A :class:`~shared_router.routing.router.Router` (used as given), ``"default"``
            for the bundled router, or a router folder. A folder is checked here (it must
            exist and hold a ``config.json``) and loaded on first use, once per process: every
            service over the same folder shares one router
            (:func:`~shared_router.routing.registry.shared_router`).
        knobs: The default quality level; empty means the router's own default level.
        sticky: Once a conversation went to the large model, later turns stay there.
        pace_large_share: Hold a ``large_share`` knob on live traffic with an
            :class:`~shared_router.model.calibration.OnlinePacer` (running quantile of recent
            scores) instead of the calibration table's quantile.
        prices: Optional ``{"small": ModelPrices, "large": ModelPrices}`` for savings accounting.
        sticky_capacity: How many conversations to remember for sticky routing (LRU).
        live: A live loop (:class:`~shared_router.live.serving_loop.LiveLoop`): a
            ``max_quality_drop`` knob is routed at its live threshold
            (:mod:`~shared_router.routing.live_hook`), with the router it says.

    Raises:
        ArtifactError: When ``router`` names a folder that does not exist or holds no router.
        KnobError: When ``prices`` lacks ``"small"`` or ``"large"``.

    A service copies with :meth:`replace` (same router, fresh stats), and pickles as its
    router's source and its settings (:meth:`__getstate__`); ``copy.deepcopy`` is
    :meth:`replace`.
    """

    def __init__(
        self,
        router: Router | str | Path = "default",
        *,
        knobs: QualityKnobs | None = None,
        sticky: bool = False,
        pace_large_share: bool = False,
        prices: Mapping[str, ModelPrices] | None = None,
        sticky_capacity: int = 10_000,
        live: LiveHook | None = None,
    ) -> None:
        if prices is not None and set(prices) != {"small", "large"}:
            raise KnobError(
                f"prices must have exactly the keys 'small' and 'large', got {sorted(prices)}"
            )
        if isinstance(router, (str, Path)):
            check_router_source(router)
        self.router_spec = router
        self.knobs = knobs if knobs is not None else QualityKnobs()
        self.sticky = sticky
        self.pace_large_share = pace_large_share
        self.prices = dict(prices) if prices is not None else None
        self.live = live
        self._sticky_capacity = sticky_capacity
        self._router: Router | None = None if isinstance(router, (str, Path)) else router
        self._batcher: ScoreBatcher | None = None
        self._threads = ServiceThreads()
        self._counters = CallCounters(self.prices)
        self._lock = threading.Lock()
        self._large_conversations = LargeConversations(sticky_capacity)
        self._pacers = LargeSharePacers(lambda: self.router.calibration_)
        self._failures = RouterFailureLog(logger)

    @property
    def router(self) -> Router:
        """The router, loaded on first use, once per process per source (thread-safe).

        Raises:
            ArtifactError: When the router folder cannot be loaded (it names the folder and
                the cause).
            RoutingError: When the router fails to load for another reason.
        """
        if self._router is None:
            loaded = shared_router(self.router_spec)  # type: ignore[arg-type]
            with self._lock:
                if self._router is None:
                    self._router = loaded
        return self._router

    def replace(self, **settings: Any) -> RoutingService:
        """A new service with the same router (and batcher) and some settings changed.

        Its stats, sticky conversations and pacers start afresh.

        Args:
            **settings: Any of the constructor's arguments (``router``, ``knobs``,
                ``sticky``, ``pace_large_share``, ``prices``, ``sticky_capacity``); a new
                ``router`` gives the copy that router instead.

        Raises:
            ConfigurationError: For a name that is not a setting.
        """
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise ConfigurationError(
                f"RoutingService.replace takes {', '.join(_SETTINGS)}; got {', '.join(unknown)}"
            )
        merged = {**self._settings(), **settings}
        copy = RoutingService(merged.pop("router"), **merged)
        if "router" not in settings:
            copy._router, copy._batcher = self._router, self._batcher
        return copy

    def _settings(self) -> dict[str, Any]:
        return {
            "router": self.router_spec,
            "knobs": self.knobs,
            "sticky": self.sticky,
            "pace_large_share": self.pace_large_share,
            "prices": self.prices,
            "sticky_capacity": self._sticky_capacity,
            "live": self.live,
        }

    def __getstate__(self) -> dict[str, Any]:
        """Its router's source and its settings: no stats, locks, threads or loaded router.

        A source given as a folder is pickled as that folder's absolute path; a router object
        is pickled as itself (a :class:`~shared_router.routing.router.Router` as the folder it
        was loaded from, see :meth:`Router.__reduce__`).
        """
        state = self._settings()
        if isinstance(self.router_spec, (str, Path)) and self.router_spec != "default":
            state["router"] = source_key(self.router_spec)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild the service from :meth:`__getstate__`'s settings, on this process's router."""
        settings = dict(state)
        self.__init__(settings.pop("router"), **settings)  # type: ignore[misc]

    def __deepcopy__(self, memo: dict[int, Any]) -> RoutingService:
        """:meth:`replace` with no change: the same router, fresh stats."""
        return self.replace()

    @property
    def router_name(self) -> str:
        """The router's name, without loading it when it is not loaded yet."""
        if self._router is not None:
            return self._router.name
        return str(self.router_spec)

    def resolve_knobs(self, override: QualityKnobs | None = None) -> QualityKnobs:
        """Return the quality level for one call.

        A knob given per call (``override``) replaces the service's own; with neither, the
        router's default level applies.
        """
        chosen = (override or QualityKnobs()).or_else(self.knobs)
        return chosen if not chosen.is_empty else self.router.default_knobs

    def decide(
        self,
        text: str,
        knobs: QualityKnobs | None = None,
        *,
        conversation_key: str | None = None,
        force_large: str | None = None,
    ) -> Routed:
        """Decide which model answers ``text``.

        Never raises because the router fails to score: such a decision is large, with
        ``router_failed=True``. Texts of concurrent calls are scored together, in one batch
        (see :mod:`~shared_router.routing.batching`); each decision is the one the call would
        get alone.

        Args:
            text: The routed text (see :func:`shared_router.routing.text.routing_text`).
            knobs: A per-call quality level replacing the service's own.
            conversation_key: Identifies the conversation, for sticky routing.
            force_large: When given, skip the router and go large for this reason (for
                example "only the large model supports tools").

        Returns:
            The decision with its timing.

        Raises:
            KnobError: For bad knobs.
            ArtifactError: When the router cannot be loaded (see :attr:`router`).
        """
        start = time.perf_counter()
        early = self._forced_or_sticky(force_large, conversation_key, start)
        if early is not None:
            return early
        router = self._current(self.router)
        batcher = self._batcher_of(router)
        if batcher is None:  # a router object of another kind: asked text by text
            return self._decide_directly(router, text, knobs, conversation_key, start)
        try:
            level = self.resolve_knobs(knobs)
            scored = batcher.score(text) if _scorable(text) else None
            return self._scored(router, text, scored, level, conversation_key, start)
        except KnobError:
            raise
        except Exception as error:  # the router failed: the large model answers, visibly
            return self._failed(error, conversation_key, start)

    async def adecide(
        self,
        text: str,
        knobs: QualityKnobs | None = None,
        *,
        conversation_key: str | None = None,
        force_large: str | None = None,
    ) -> Routed:
        """:meth:`decide` for async callers: awaiting it never blocks the event loop.

        The text is scored in a batch on the router's own thread, never on the loop's
        default executor (which DNS lookups and every other ``run_in_executor(None, ...)``
        of the process need); the first call loads the router on the service's router
        threads. Same arguments, result and errors as :meth:`decide`.
        """
        start = time.perf_counter()
        early = self._forced_or_sticky(force_large, conversation_key, start)
        if early is not None:
            return early
        router = self._router
        if router is None:
            router = await self._threads.on_router_threads(lambda: self.router)
        router = self._current(router)
        batcher = self._batcher_of(router)
        if batcher is None:
            asked = functools.partial(self._decide_directly, router, text, knobs, conversation_key)
            routed = await self._threads.on_router_threads(lambda: asked(time.perf_counter()))
            total = _ms_since(start)
            return dataclasses.replace(
                routed, router_ms=total, queue_ms=max(0.0, total - routed.router_ms)
            )
        try:
            level = self.resolve_knobs(knobs)
            scored = await batcher.ascore(text) if _scorable(text) else None
            return self._scored(router, text, scored, level, conversation_key, start)
        except KnobError:
            raise
        except Exception as error:  # the router failed: the large model answers, visibly
            return self._failed(error, conversation_key, start)

    def _forced_or_sticky(
        self, force_large: str | None, key: str | None, start: float
    ) -> Routed | None:
        if force_large is not None:
            return self._forced(force_large, start, key)
        if self.sticky and key is not None and self._large_conversations.remembers(key):
            return self._forced(_STICKY_REASON, start, key)
        return None

    def _current(self, loaded: Router) -> Router:
        """The router that routes now: the loaded one, or the live loop's version."""
        return loaded if self.live is None else self.live.router_for(loaded)

    def _batcher_of(self, router: Router) -> ScoreBatcher | None:
        """The router's batcher, or None for a router object that is not a Router."""
        if router is self._router and self._batcher is not None:
            return self._batcher
        from shared_router.routing.router import Router

        if not isinstance(router, Router):
            return None
        batcher = batcher_for(router)
        if router is self._router:  # not a version the live loop swapped in
            self._batcher = batcher
        return batcher

    def _scored(
        self,
        router: Router,
        text: str,
        scored: BatchedScore | None,
        level: QualityKnobs,
        key: str | None,
        start: float,
    ) -> Routed:
        """The decision for a text the batcher scored (None: not scorable, decided as such)."""
        if scored is None and not isinstance(text, str):
            decide: Callable[..., RouteDecision] = functools.partial(router.route, text)
        else:
            decide = functools.partial(
                router.route_scored, None if scored is None else scored.score
            )
        decision, live = self._at_level(level, decide)
        queue_ms, compute_ms = (
            (0.0, 0.0) if scored is None else (scored.queue_ms, scored.compute_ms)
        )
        total = _ms_since(start)
        return Routed(decision, total, False, key, queue_ms, compute_ms, text, live, router.name)

    def _decide_directly(
        self,
        router: Router,
        text: str,
        knobs: QualityKnobs | None,
        key: str | None,
        start: float,
    ) -> Routed:
        try:
            level = self.resolve_knobs(knobs)
            decision, live = self._at_level(level, functools.partial(router.route, text))
        except KnobError:
            raise
        except Exception as error:  # the router failed: the large model answers, visibly
            return self._failed(error, key, start)
        total = _ms_since(start)
        name = getattr(router, "name", None)
        return Routed(decision, total, False, key, 0.0, total, text, live, name)

    def _failed(self, error: Exception, key: str | None, start: float) -> Routed:
        decision = self._failures.decision_for(error, self.router_name)
        return Routed(decision, _ms_since(start), True, key)

    def _at_level(
        self, level: QualityKnobs, route: Callable[..., RouteDecision]
    ) -> tuple[RouteDecision, LiveLevel | None]:
        """:meth:`_paced_or_plain`, or at the live threshold for ``max_quality_drop``."""
        active = level.active
        if self.live is None or active is None or active[0] != "max_quality_drop":
            return self._paced_or_plain(level, route), None
        live = self.live.threshold_for(active[1])
        return at_live_threshold(route(threshold=min(1.0, live.threshold)), live, active[1]), live

    def _paced_or_plain(
        self, level: QualityKnobs, route: Callable[..., RouteDecision]
    ) -> RouteDecision:
        """``route(**knobs)`` at ``level``, or at the pacer's threshold for a paced share."""
        active = level.active
        if self.pace_large_share and active is not None and active[0] == "large_share":
            return self._pacers.route(active[1], route)
        return route(**level.set_knobs())

    def _forced(self, reason: str, start: float, key: str | None) -> Routed:
        return Routed(large_decision(reason), _ms_since(start), False, key)

    def record(
        self,
        routed: Routed,
        *,
        answered_by: ModelChoice,
        model_name: str,
        fallback: bool = False,
        reason: str | None = None,
    ) -> RoutingRecord:
        """Build the routing record of one answered call and count it.

        Args:
            routed: What :meth:`decide` returned.
            answered_by: The model that produced the answer.
            model_name: That model's own name.
            fallback: True when the large model answered because the small model failed.
            reason: Overrides the decision's reason (for example the small model's error).

        Returns:
            The record to attach to the response.
        """
        record = self.make_record(
            routed,
            answered_by=answered_by,
            model_name=model_name,
            fallback=fallback,
            reason=reason,
        )
        self.count_answer(routed, record)
        return record

    def make_record(
        self,
        routed: Routed,
        *,
        answered_by: ModelChoice,
        model_name: str,
        fallback: bool = False,
        reason: str | None = None,
    ) -> RoutingRecord:
        """Build the routing record of one call without counting it (see :meth:`record`).

        A stream carries its record on every chunk but is counted only once it has ended
        (:meth:`count_answer`) or broken (:meth:`count_failure`).
        """
        decision = routed.decision
        return RoutingRecord(
            model=answered_by,
            model_name=model_name,
            score=decision.score,
            threshold=decision.threshold,
            knob=decision.knob,
            router=routed.router_name or self.router_name,
            router_ms=round(routed.router_ms, 3),
            fallback=fallback or routed.router_failed,
            reason=reason if reason is not None else decision.reason,
            router_queue_ms=round(routed.queue_ms, 3),
            router_compute_ms=round(routed.compute_ms, 3),
            extra={} if routed.calibration is None else routed.calibration.record_fields(),
        )

    def count_answer(self, routed: Routed, record: RoutingRecord) -> None:
        """Count one answered call (built with :meth:`make_record`)."""
        if self.sticky and routed.conversation_key is not None and record.model == "large":
            self._large_conversations.add(routed.conversation_key)
        self._counters.count_answer(
            record.model, fallback=record.fallback, router_failed=routed.router_failed
        )

    def count_failure(self, routed: Routed) -> None:
        """Count one call that raised to its caller instead of answering.

        Such a call is not an answer: it is counted in ``stats.failed`` (and, when the router
        failed on it too, in ``stats.router_errors``), never in ``calls``, ``small`` or
        ``large``.
        """
        self._counters.count_failure(router_failed=routed.router_failed)

    def account(
        self, record: RoutingRecord, *, input_tokens: int | None, output_tokens: int | None
    ) -> None:
        """Add one call's token usage to the stats (and its cost, when prices are set).

        A call without usage (both counts None) is counted in ``stats.unpriced`` when
        prices are set (:meth:`CallCounters.count_tokens`).
        """
        self._counters.count_tokens(record.model, input_tokens, output_tokens)

    @property
    def stats(self) -> StatsSnapshot:
        """A consistent snapshot of the counters."""
        return self._counters.snapshot()

    async def run_sync(
        self, choice: ModelChoice, func: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """Run a synchronous ``choice`` model call on that model's own pool, in the caller's
        context (:meth:`ServiceThreads.run_sync
        <shared_router.routing.service_threads.ServiceThreads.run_sync>`)."""
        return await self._threads.run_sync(choice, func, *args, **kwargs)

    def iterate_sync(
        self, choice: ModelChoice, open_stream: Callable[[], Iterable[T]]
    ) -> AsyncIterator[T]:
        """Open and iterate a synchronous stream on the ``choice`` model's own pool
        (:meth:`ServiceThreads.iterate_sync
        <shared_router.routing.service_threads.ServiceThreads.iterate_sync>`)."""
        return self._threads.iterate_sync(choice, open_stream)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _scorable(text: object) -> bool:
    """Whether the router scores ``text`` (a str that is not blank) or decides it unscored."""
    return isinstance(text, str) and bool(text.strip())
