"""What both framework adapters share: lazy router, knob resolution, fallbacks, records, stats.

An adapter (LangChain's ``ChatHybrid``, LlamaIndex's ``HybridLLM``) turns its messages into
text (:func:`~shared_router.routing.text.routing_text`), asks :meth:`RoutingService.decide` which
model to call, calls it, and turns the outcome into a :class:`~shared_router.types.RoutingRecord`
with :meth:`RoutingService.record`. Routing never loses a request: when the router fails, the
decision is "large" with ``fallback=True`` and the reason.

An inner model that has only a synchronous API runs, in the adapters' async paths, on a
bounded thread pool the service owns for that model (:meth:`RoutingService.run_sync`,
:meth:`RoutingService.iterate_sync`), never on the event loop's default executor: a
blocking model then holds its own threads only, not those every other coroutine of the
process needs.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from shared_router._internal.model_threads import ModelThreads
from shared_router.errors import ConfigurationError, KnobError
from shared_router.types import ModelChoice, QualityKnobs, RouteDecision, RoutingRecord

if TYPE_CHECKING:
    from shared_router.model.calibration import OnlinePacer
    from shared_router.routing.router import Router

__all__ = ["SYNC_MODEL_THREADS", "ModelPrices", "Routed", "RoutingService", "StatsSnapshot"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

SYNC_MODEL_THREADS = 16
"""Threads of the pool each synchronous-only inner model runs on, per routing service."""

_DONE = object()


@dataclass(frozen=True)
class ModelPrices:
    """Token prices of one model, in any currency, per million tokens.

    Attributes:
        input_per_million: Price of one million prompt tokens.
        output_per_million: Price of one million completion tokens.
    """

    input_per_million: float
    output_per_million: float

    def __post_init__(self) -> None:
        if self.input_per_million < 0 or self.output_per_million < 0:
            raise ConfigurationError(
                "prices must be >= 0, got "
                f"input={self.input_per_million!r}, output={self.output_per_million!r}"
            )

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Return the price of one call."""
        return (
            input_tokens * self.input_per_million + output_tokens * self.output_per_million
        ) / 1e6


@dataclass(frozen=True)
class Routed:
    """A decision with what the adapter needs to report it.

    Attributes:
        decision: The router's decision (or the forced/fallback one).
        router_ms: Time spent deciding, in milliseconds.
        router_failed: True when the router raised and the large model was chosen instead.
        conversation_key: The conversation this call belongs to, for sticky routing.
    """

    decision: RouteDecision
    router_ms: float
    router_failed: bool = False
    conversation_key: str | None = None

    @property
    def model(self) -> ModelChoice:
        """The chosen model, ``"small"`` or ``"large"``."""
        return self.decision.model


@dataclass(frozen=True)
class StatsSnapshot:
    """Counters of a routing service at one moment.

    Attributes:
        calls: Calls answered.
        small: Calls answered by the small model.
        large: Calls answered by the large model (fallbacks included).
        fallbacks: Calls the large model answered because the small model or the router failed.
        router_errors: Calls on which the router failed.
        input_tokens: Prompt tokens by answering model (``"small"``/``"large"``).
        output_tokens: Completion tokens by answering model.
        cost: Estimated cost of the answered calls, or None without prices.
        cost_always_large: Estimated cost had every call gone to the large model, or None.
        cost_saved: ``cost_always_large - cost``, or None without prices.
        failed: Calls that raised to the caller instead of answering: the answering model
            failed (the large one, or the small one without fallback), or a stream broke
            after its first chunk. They are not in ``calls``.
    """

    calls: int
    small: int
    large: int
    fallbacks: int
    router_errors: int
    input_tokens: Mapping[str, int]
    output_tokens: Mapping[str, int]
    cost: float | None
    cost_always_large: float | None
    cost_saved: float | None
    failed: int = 0

    @property
    def small_share(self) -> float:
        """Share of calls the small model answered (the realised cost advantage)."""
        return self.small / self.calls if self.calls else 0.0


class RoutingService:
    """Thread-safe routing front end shared by the adapters.

    Args:
        router: A :class:`~shared_router.routing.router.Router`, ``"default"`` for the bundled
        router,
            or a router folder. Loaded on first use, not here.
        knobs: The default quality level; empty means the router's own default level.
        sticky: Once a conversation went to the large model, later turns stay there.
        pace_large_share: Hold a ``large_share`` knob on live traffic with an
            :class:`~shared_router.model.calibration.OnlinePacer` (running quantile of recent
            scores) instead of the calibration table's quantile.
        prices: Optional ``{"small": ModelPrices, "large": ModelPrices}`` for savings accounting.
        sticky_capacity: How many conversations to remember for sticky routing (LRU).
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
    ) -> None:
        if prices is not None and set(prices) != {"small", "large"}:
            raise KnobError(
                f"prices must have exactly the keys 'small' and 'large', got {sorted(prices)}"
            )
        self.router_spec = router
        self.knobs = knobs if knobs is not None else QualityKnobs()
        self.sticky = sticky
        self.pace_large_share = pace_large_share
        self.prices = dict(prices) if prices is not None else None
        self._sticky_capacity = sticky_capacity
        self._router: Router | None = None if isinstance(router, (str, Path)) else router
        self._lock = threading.Lock()
        self._large_conversations: OrderedDict[str, None] = OrderedDict()
        self._pacers: dict[float, OnlinePacer] = {}
        self._counts = {
            "calls": 0,
            "small": 0,
            "large": 0,
            "fallbacks": 0,
            "router_errors": 0,
            "failed": 0,
        }
        self._router_failure_logged = False
        self._executors: dict[ModelChoice, ModelThreads] = {}
        self._tokens_in = {"small": 0, "large": 0}
        self._tokens_out = {"small": 0, "large": 0}
        self._cost = 0.0
        self._cost_large = 0.0

    @property
    def router(self) -> Router:
        """The router, loaded on first use (thread-safe)."""
        if self._router is None:
            with self._lock:
                if self._router is None:
                    from shared_router.routing.router import Router

                    self._router = Router.load(self.router_spec)  # type: ignore[arg-type]
        return self._router

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

        Never raises because of the router: a failing router yields a large decision with
        ``router_failed=True``. Bad knobs raise :class:`~shared_router.errors.KnobError`.

        Args:
            text: The routed text (see :func:`shared_router.routing.text.routing_text`).
            knobs: A per-call quality level replacing the service's own.
            conversation_key: Identifies the conversation, for sticky routing.
            force_large: When given, skip the router and go large for this reason (for
                example "only the large model supports tools").

        Returns:
            The decision with its timing.
        """
        start = time.perf_counter()
        if force_large is not None:
            return self._forced(force_large, start, conversation_key)
        if self.sticky and conversation_key is not None and self._is_sticky(conversation_key):
            return self._forced(
                "sticky: this conversation already went to the large model", start, conversation_key
            )
        try:
            level = self.resolve_knobs(knobs)
            decision = self._route(text, level)
        except KnobError:
            raise
        except Exception as error:  # the router failed: the large model answers, visibly
            reason = f"router failed: {type(error).__name__}: {error}"
            self._log_router_failure(reason)
            decision = RouteDecision(
                model="large", score=None, threshold=None, knob="none", reason=reason
            )
            return Routed(decision, _ms_since(start), True, conversation_key)
        return Routed(decision, _ms_since(start), False, conversation_key)

    def _log_router_failure(self, reason: str) -> None:
        """Log a router failure: a warning the first time, then at debug level."""
        with self._lock:
            first = not self._router_failure_logged
            self._router_failure_logged = True
        if first:
            logger.warning(
                "router %s: %s; the large model answers this call and any other the router "
                "fails on (each has fallback=True and the reason in its routing record, and "
                "stats.router_errors counts them); check the router and its input",
                self.router_name,
                reason,
            )
        else:
            logger.debug("router %s: %s; the large model answers", self.router_name, reason)

    def _route(self, text: str, level: QualityKnobs) -> RouteDecision:
        active = level.active
        if self.pace_large_share and active is not None and active[0] == "large_share":
            pacer = self._pacer(active[1])
            threshold = pacer.threshold()
            # The pacer may ask for more than 1 (large_share=1: everything large), which a
            # threshold knob cannot express; route at the clipped value, then compare again.
            decision = self.router.route(text, threshold=min(1.0, max(0.0, threshold)))
            if decision.score is None:
                return decision
            pacer.observe(decision.score)
            return dataclasses.replace(
                decision,
                model="small" if decision.score >= threshold else "large",
                threshold=threshold,
                knob="large_share (paced)",
                knob_value=active[1],
            )
        return self.router.route(text, **level.set_knobs())

    def _pacer(self, share: float) -> OnlinePacer:
        with self._lock:
            pacer = self._pacers.get(share)
            if pacer is None:
                from shared_router.model.calibration import OnlinePacer

                table = self.router.calibration_
                start = table.threshold_for_large_share(share) if table is not None else None
                pacer = OnlinePacer(share, initial_threshold=start)
                self._pacers[share] = pacer
            return pacer

    def _forced(self, reason: str, start: float, key: str | None) -> Routed:
        decision = RouteDecision(
            model="large", score=None, threshold=None, knob="none", reason=reason
        )
        return Routed(decision, _ms_since(start), False, key)

    def _is_sticky(self, key: str) -> bool:
        with self._lock:
            if key in self._large_conversations:
                self._large_conversations.move_to_end(key)
                return True
            return False

    def _remember_large(self, key: str) -> None:
        with self._lock:
            self._large_conversations[key] = None
            self._large_conversations.move_to_end(key)
            while len(self._large_conversations) > self._sticky_capacity:
                self._large_conversations.popitem(last=False)

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
            router=self.router_name,
            router_ms=round(routed.router_ms, 3),
            fallback=fallback or routed.router_failed,
            reason=reason if reason is not None else decision.reason,
        )

    def count_answer(self, routed: Routed, record: RoutingRecord) -> None:
        """Count one answered call (built with :meth:`make_record`)."""
        if self.sticky and routed.conversation_key is not None and record.model == "large":
            self._remember_large(routed.conversation_key)
        with self._lock:
            self._counts["calls"] += 1
            self._counts[record.model] += 1
            self._counts["fallbacks"] += int(record.fallback)
            self._counts["router_errors"] += int(routed.router_failed)

    def count_failure(self, routed: Routed) -> None:
        """Count one call that raised to its caller instead of answering.

        Such a call is not an answer: it is counted in ``stats.failed`` (and, when the router
        failed on it too, in ``stats.router_errors``), never in ``calls``, ``small`` or
        ``large``.
        """
        with self._lock:
            self._counts["failed"] += 1
            self._counts["router_errors"] += int(routed.router_failed)

    def account(
        self, record: RoutingRecord, *, input_tokens: int | None, output_tokens: int | None
    ) -> None:
        """Add one call's token usage to the stats (and its cost, when prices are set)."""
        tokens_in, tokens_out = input_tokens or 0, output_tokens or 0
        with self._lock:
            self._tokens_in[record.model] += tokens_in
            self._tokens_out[record.model] += tokens_out
            if self.prices is not None:
                self._cost += self.prices[record.model].cost(tokens_in, tokens_out)
                self._cost_large += self.prices["large"].cost(tokens_in, tokens_out)

    @property
    def stats(self) -> StatsSnapshot:
        """A consistent snapshot of the counters."""
        with self._lock:
            priced = self.prices is not None
            return StatsSnapshot(
                calls=self._counts["calls"],
                small=self._counts["small"],
                large=self._counts["large"],
                fallbacks=self._counts["fallbacks"],
                router_errors=self._counts["router_errors"],
                input_tokens=dict(self._tokens_in),
                output_tokens=dict(self._tokens_out),
                cost=self._cost if priced else None,
                cost_always_large=self._cost_large if priced else None,
                cost_saved=self._cost_large - self._cost if priced else None,
                failed=self._counts["failed"],
            )

    def executor(self, choice: ModelChoice) -> ModelThreads:
        """The bounded thread pool the synchronous-only ``choice`` model runs on (lazy)."""
        with self._lock:
            pool = self._executors.get(choice)
            if pool is None:
                pool = ModelThreads(f"{choice} model", SYNC_MODEL_THREADS)
                self._executors[choice] = pool
            return pool

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
        return await self._run_in(choice, contextvars.copy_context(), call)

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
        context = contextvars.copy_context()
        chunks = iter(await self._run_in(choice, context, open_stream))
        while True:
            chunk = await self._run_in(choice, context, functools.partial(next, chunks, _DONE))
            if chunk is _DONE:
                return
            yield chunk

    async def _run_in(
        self, choice: ModelChoice, context: contextvars.Context, call: Callable[[], T]
    ) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor(choice), context.run, call)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
