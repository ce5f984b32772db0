"""One HybridLLM call: decide, run the chosen model (the large one on a failure), record.

:class:`RoutedCalls` holds what a call needs from HybridLLM; HybridLLM makes one per call
from its current fields. Decisions go through the routing service's ``decide`` /
``adecide``, which score concurrent calls' texts together, in batches, on the router's own
thread (never on the event loop or its default executor).

When the small model raises a provider error (see :mod:`shared_router.routing.failures`)
and fallback is on, the large model answers, with ``fallback=True`` and the error in the
record's ``reason``, logged at WARNING; a programming error propagates. Every response (each
streamed chunk too) carries ``additional_kwargs["routing"]``; each answered call fires one
:class:`~llamaindex_hybrid.RoutingEvent` and hands its record to the span it runs in (see
:mod:`llamaindex_hybrid._spans`), and reports to HybridLLM's own callback handlers that the
answering model does not report to (:mod:`llamaindex_hybrid._callbacks`).

Streams follow the rule of both adapters: the small model's stream falls back while nothing
of it has reached the caller, that is when it fails before its first chunk; after that the
error is raised (chunks already delivered cannot be taken back). A call that raises is
counted in ``stats.failed``, never as an answer; a stream is counted once it has ended.

An inner model with only a synchronous API (a ``CustomLLM`` that keeps its async methods,
which call the sync ones on the event loop) is called, in HybridLLM's async entry points,
through its sync API on a thread pool of HybridLLM's
(:meth:`~shared_router.routing.serving.RoutingService.run_sync`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from llama_index.core.base.llms.types import ChatResponse, CompletionResponse
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.llm import LLM

from llamaindex_hybrid._callbacks import CallbackReport
from llamaindex_hybrid._responses import token_usage, with_routing
from llamaindex_hybrid._routing_input import RoutingInput
from llamaindex_hybrid._shadowing import Response, offer_shadow
from llamaindex_hybrid._spans import routing_spans
from llamaindex_hybrid.events import announce
from shared_router.routing.decision_calibration import calibration_label
from shared_router.routing.failures import FallbackPolicy
from shared_router.routing.serving import Routed, RoutingService
from shared_router.types import ModelChoice, QualityKnobs, RoutingRecord

__all__ = ["AsyncMethod", "RoutedCalls", "runs_sync_only"]

logger = logging.getLogger(__name__)

R = TypeVar("R", bound=ChatResponse | CompletionResponse)


AsyncMethod = Literal["achat", "acomplete", "astream_chat", "astream_complete"]


def runs_sync_only(model: LLM, method: AsyncMethod) -> bool:
    """Whether ``model``'s async ``method`` is CustomLLM's, which runs the sync one in place.

    The class that defines the method is looked up in the MRO: LlamaIndex wraps methods on
    access, so the function objects themselves do not compare.
    """
    if not isinstance(model, CustomLLM):
        return False
    owner = next(cls for cls in type(model).__mro__ if method in vars(cls))
    return owner is CustomLLM


@dataclass(frozen=True)
class RoutedCalls:
    """What HybridLLM's calls need: the two models, the routing service and the settings.

    Attributes:
        small: The small LLM.
        large: The large LLM.
        names: Each model's name, for the records.
        service: The routing service (decisions, stickiness, statistics).
        knobs: The quality level of this call.
        fallbacks: Which errors of the small model the large one answers.
        conversation: The conversation this call belongs to, for sticky routing, or None.
        callbacks: HybridLLM's own callback manager.
        request: The call's callback payload (messages or prompt, keyword arguments, model).
        span_id: The instrumentation span of the call (a stream's record is made later,
            while its chunks are read, outside it).
        rate_limiter: HybridLLM's own ``rate_limiter``, acquired once per call before it is
            routed, as LlamaIndex's call decorators do for any LLM (the inner models' own
            limiters apply on top, to the model that is called).
        reference: The caller's reference answer for the shadow judge, or None.
    """

    small: LLM
    large: LLM
    names: dict[ModelChoice, str]
    service: RoutingService
    knobs: QualityKnobs
    fallbacks: FallbackPolicy
    conversation: str | None
    callbacks: CallbackManager
    request: dict[str, Any]
    span_id: str | None
    rate_limiter: Any = None
    reference: str | None = None

    def decide(self, routing: RoutingInput) -> Routed:
        """Route one call (its text scored with those of concurrent calls)."""
        if self.rate_limiter is not None:
            self.rate_limiter.acquire()
        return self.service.decide(
            routing.text,
            self.knobs,
            conversation_key=self.conversation,
            force_large=routing.force_large,
        )

    async def adecide(self, routing: RoutingInput) -> Routed:
        """Route one call without blocking the event loop (see the module's doc)."""
        if self.rate_limiter is not None:
            await self.rate_limiter.async_acquire()
        return await self.service.adecide(
            routing.text,
            self.knobs,
            conversation_key=self.conversation,
            force_large=routing.force_large,
        )

    def call(self, routed: Routed, invoke: Callable[[LLM], R]) -> R:
        """Run ``invoke`` on the chosen model, on the large one if the small one fails."""
        error: Exception | None = None
        answered_by = routed.model
        report = self._report(routed)
        with self._counting_failures(routed, report):
            try:
                response = invoke(self._model(answered_by))
            except Exception as failure:
                if not self._can_fall_back(answered_by, failure):
                    raise
                error, answered_by = failure, "large"
                response = invoke(self.large)
        record = self._record(routed, answered_by, error)
        answered = self._answered(routed, record, response, report)
        self._offer(routed, answered_by, error, response, lambda other: invoke(self._model(other)))
        return answered

    async def acall(
        self,
        routed: Routed,
        method: AsyncMethod,
        invoke: Callable[[LLM], Awaitable[R]],
        sync_invoke: Callable[[LLM], R],
    ) -> R:
        """The async form of :meth:`call` (``sync_invoke`` for a sync-only model)."""
        error: Exception | None = None
        answered_by = routed.model

        async def run(choice: ModelChoice) -> R:
            model = self._model(choice)
            if runs_sync_only(model, method):
                return await self.service.run_sync(choice, sync_invoke, model)
            return await invoke(model)

        report = self._report(routed)
        with self._counting_failures(routed, report):
            try:
                response = await run(answered_by)
            except Exception as failure:
                if not self._can_fall_back(answered_by, failure):
                    raise
                error, answered_by = failure, "large"
                response = await run("large")
        record = self._record(routed, answered_by, error)
        answered = self._answered(routed, record, response, report)
        self._offer(
            routed, answered_by, error, response, lambda other: sync_invoke(self._model(other))
        )
        return answered

    def stream(
        self, routed: Routed, open_stream: Callable[[LLM], Iterator[R]]
    ) -> Generator[R, None, None]:
        """Stream from the chosen model: the module's rule says when it falls back.

        The call is counted once its stream has ended: as an answer, or in
        ``stats.failed`` when it broke after its first chunk (the error is raised).
        """
        error: Exception | None = None
        answered_by = routed.model
        report = self._report(routed)
        with self._counting_failures(routed, report):
            try:
                chunks = iter(open_stream(self._model(answered_by)))
                first = next(chunks, None)
            except Exception as failure:
                if not self._can_fall_back(answered_by, failure):
                    raise
                error, answered_by = failure, "large"
                chunks = iter(open_stream(self.large))
                first = next(chunks, None)
        record = self._record(routed, answered_by, error)
        routing = record.as_dict()
        last = None
        with self._counting_failures(routed, report):
            if first is not None:
                last = with_routing(first, routing)
                yield last
                for chunk in chunks:
                    last = with_routing(chunk, routing)
                    yield last
        self._ended(routed, record, last, report)
        self._offer(
            routed, answered_by, error, last, lambda other: _last(open_stream(self._model(other)))
        )

    async def astream(
        self,
        routed: Routed,
        method: AsyncMethod,
        open_stream: Callable[[LLM], Awaitable[AsyncIterator[R]]],
        sync_open: Callable[[LLM], Iterator[R]],
    ) -> AsyncGenerator[R, None]:
        """The async form of :meth:`stream` (``sync_open`` for a sync-only model)."""
        error: Exception | None = None
        answered_by = routed.model

        async def open_chunks(choice: ModelChoice) -> AsyncIterator[R]:
            model = self._model(choice)
            if runs_sync_only(model, method):
                return aiter(self.service.iterate_sync(choice, lambda: sync_open(model)))
            return await open_stream(model)

        report = self._report(routed)
        with self._counting_failures(routed, report):
            try:
                chunks = await open_chunks(answered_by)
                first = await anext(chunks, None)
            except Exception as failure:
                if not self._can_fall_back(answered_by, failure):
                    raise
                error, answered_by = failure, "large"
                chunks = await open_chunks("large")
                first = await anext(chunks, None)
        record = self._record(routed, answered_by, error)
        routing = record.as_dict()
        last = None
        with self._counting_failures(routed, report):
            if first is not None:
                last = with_routing(first, routing)
                yield last
                async for chunk in chunks:
                    last = with_routing(chunk, routing)
                    yield last
        self._ended(routed, record, last, report)
        self._offer(
            routed, answered_by, error, last, lambda other: _last(sync_open(self._model(other)))
        )

    def _offer(
        self,
        routed: Routed,
        answered_by: ModelChoice,
        error: Exception | None,
        response: Response | None,
        call_other: Callable[[ModelChoice], Response | None],
    ) -> None:
        """Offer the answered call for shadow evaluation (:func:`offer_shadow`)."""
        offer_shadow(
            self.service,
            routed,
            answered_by,
            error is not None,
            response,
            call_other,
            reference=self.reference,
        )

    def _report(self, routed: Routed) -> CallbackReport:
        return CallbackReport(self.callbacks, self._model(routed.model), self.request)

    @contextmanager
    def _counting_failures(self, routed: Routed, report: CallbackReport) -> Iterator[None]:
        """Count the call in ``stats.failed`` when what runs in the block raises."""
        try:
            yield
        except Exception as error:
            self.service.count_failure(routed)
            report.failed(error)
            raise

    def _answered(
        self, routed: Routed, record: RoutingRecord, response: R, report: CallbackReport
    ) -> R:
        """Count an answered call and return its response with the record."""
        routed_response = with_routing(response, record.as_dict())
        self._ended(routed, record, routed_response, report)
        return routed_response

    def _ended(
        self,
        routed: Routed,
        record: RoutingRecord,
        response: ChatResponse | CompletionResponse | None,
        report: CallbackReport,
    ) -> None:
        """Count, account and report a call that has answered (a stream: that has ended)."""
        self.service.count_answer(routed, record)
        self._account(record, response)
        report.answered(response)

    def _model(self, choice: ModelChoice) -> LLM:
        return self.small if choice == "small" else self.large

    def _can_fall_back(self, choice: ModelChoice, error: Exception) -> bool:
        return choice == "small" and self.fallbacks.falls_back(error)

    def _record(
        self, routed: Routed, answered_by: ModelChoice, error: Exception | None
    ) -> RoutingRecord:
        """The call's record (counted once the call has answered), announced to tracers."""
        reason = None
        if error is not None:
            reason = routed.fallback_reason(error)
            logger.warning("HybridLLM: %s", reason)
        record = self.service.make_record(
            routed,
            answered_by=answered_by,
            model_name=self.names[answered_by],
            fallback=error is not None,
            reason=reason,
        )
        announce(
            record,
            knob_value=routed.decision.knob_value,
            calibration=self._calibration(routed),
            conversation_id=self.conversation,
            span_id=self.span_id,
        )
        routing_spans().collect(self.span_id, record.as_dict())
        return record

    def _calibration(self, routed: Routed) -> str | None:
        """The calibration table a calibrated knob was turned into this threshold with."""
        # A scored decision means the router is loaded: reading it here loads nothing.
        router = self.service.router if routed.decision.score is not None else None
        return calibration_label(router, routed.decision)

    def _account(
        self, record: RoutingRecord, response: ChatResponse | CompletionResponse | None
    ) -> None:
        tokens_in, tokens_out = token_usage(response)
        self.service.account(record, input_tokens=tokens_in, output_tokens=tokens_out)


def _last(chunks: Iterator[R]) -> R | None:
    """A stream's last chunk (it carries the whole answer), or None for an empty stream."""
    kept = deque(chunks, maxlen=1)
    return kept[0] if kept else None
