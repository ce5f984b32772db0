"""One HybridLLM call: decide, run the chosen model (the large one on a failure), record.

:class:`RoutedCalls` holds what a call needs from HybridLLM; HybridLLM makes one per call
from its current fields. When the small model raises and fallback is on, the large model
answers, with ``fallback=True`` and the error in the record's ``reason``. Every response
(each streamed chunk too) carries ``additional_kwargs["routing"]``.

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

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, TypeVar

from llama_index.core.base.llms.types import ChatResponse, CompletionResponse
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.llm import LLM

from llamaindex_hybrid._responses import model_name, token_usage, with_routing
from llamaindex_hybrid._routing_input import RoutingInput
from shared_router.routing.serving import Routed, RoutingService
from shared_router.types import ModelChoice, QualityKnobs, RoutingRecord

__all__ = ["AsyncMethod", "RoutedCalls", "runs_sync_only"]

logger = logging.getLogger(__name__)

R = TypeVar("R", ChatResponse, CompletionResponse)

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
        service: The routing service (decisions, stickiness, statistics).
        knobs: The quality level of this call.
        fallback_to_large: Whether the large model answers when the small one fails.
    """

    small: LLM
    large: LLM
    service: RoutingService
    knobs: QualityKnobs
    fallback_to_large: bool

    def decide(self, routing: RoutingInput) -> Routed:
        """Route one call."""
        return self.service.decide(
            routing.text,
            self.knobs,
            conversation_key=routing.conversation_key,
            force_large=routing.force_large,
        )

    async def adecide(self, routing: RoutingInput) -> Routed:
        """Route one call in a worker thread, keeping the event loop free while it scores."""
        return await asyncio.to_thread(self.decide, routing)

    def call(self, routed: Routed, invoke: Callable[[LLM], R]) -> R:
        """Run ``invoke`` on the chosen model, on the large one if the small one fails."""
        error: Exception | None = None
        answered_by = routed.model
        with self._counting_failures(routed):
            try:
                response = invoke(self._model(answered_by))
            except Exception as failure:
                if not self._can_fall_back(answered_by):
                    raise
                error, answered_by = failure, "large"
                response = invoke(self.large)
        record = self._record(routed, answered_by, error)
        self.service.count_answer(routed, record)
        self._account(record, response)
        return with_routing(response, record.as_dict())

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

        with self._counting_failures(routed):
            try:
                response = await run(answered_by)
            except Exception as failure:
                if not self._can_fall_back(answered_by):
                    raise
                error, answered_by = failure, "large"
                response = await run("large")
        record = self._record(routed, answered_by, error)
        self.service.count_answer(routed, record)
        self._account(record, response)
        return with_routing(response, record.as_dict())

    def stream(
        self, routed: Routed, open_stream: Callable[[LLM], Iterator[R]]
    ) -> Generator[R, None, None]:
        """Stream from the chosen model: the module's rule says when it falls back.

        The call is counted once its stream has ended: as an answer, or in
        ``stats.failed`` when it broke after its first chunk (the error is raised).
        """
        error: Exception | None = None
        answered_by = routed.model
        with self._counting_failures(routed):
            try:
                chunks = iter(open_stream(self._model(answered_by)))
                first = next(chunks, None)
            except Exception as failure:
                if not self._can_fall_back(answered_by):
                    raise
                error, answered_by = failure, "large"
                chunks = iter(open_stream(self.large))
                first = next(chunks, None)
        record = self._record(routed, answered_by, error)
        routing = record.as_dict()
        last = None
        with self._counting_failures(routed):
            if first is not None:
                last = with_routing(first, routing)
                yield last
                for chunk in chunks:
                    last = with_routing(chunk, routing)
                    yield last
        self.service.count_answer(routed, record)
        self._account(record, last)

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

        with self._counting_failures(routed):
            try:
                chunks = await open_chunks(answered_by)
                first = await anext(chunks, None)
            except Exception as failure:
                if not self._can_fall_back(answered_by):
                    raise
                error, answered_by = failure, "large"
                chunks = await open_chunks("large")
                first = await anext(chunks, None)
        record = self._record(routed, answered_by, error)
        routing = record.as_dict()
        last = None
        with self._counting_failures(routed):
            if first is not None:
                last = with_routing(first, routing)
                yield last
                async for chunk in chunks:
                    last = with_routing(chunk, routing)
                    yield last
        self.service.count_answer(routed, record)
        self._account(record, last)

    @contextmanager
    def _counting_failures(self, routed: Routed) -> Iterator[None]:
        """Count the call in ``stats.failed`` when what runs in the block raises."""
        try:
            yield
        except Exception:
            self.service.count_failure(routed)
            raise

    def _model(self, choice: ModelChoice) -> LLM:
        return self.small if choice == "small" else self.large

    def _can_fall_back(self, choice: ModelChoice) -> bool:
        return choice == "small" and self.fallback_to_large

    def _record(
        self, routed: Routed, answered_by: ModelChoice, error: Exception | None
    ) -> RoutingRecord:
        """The call's record (counted by the caller, once the call has answered)."""
        reason = None
        if error is not None:
            reason = f"small model failed: {type(error).__name__}: {error}"
            logger.warning("HybridLLM: %s; the large model answers", reason)
        return self.service.make_record(
            routed,
            answered_by=answered_by,
            model_name=model_name(self._model(answered_by)),
            fallback=error is not None,
            reason=reason,
        )

    def _account(
        self, record: RoutingRecord, response: ChatResponse | CompletionResponse | None
    ) -> None:
        tokens_in, tokens_out = token_usage(response) if response is not None else (None, None)
        self.service.account(record, input_tokens=tokens_in, output_tokens=tokens_out)
