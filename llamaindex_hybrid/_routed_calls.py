"""One HybridLLM call: decide, run the chosen model (the large one on a failure), record.

:class:`RoutedCalls` holds what a call needs from HybridLLM; HybridLLM makes one per call
from its current fields. When the small model raises (before its first chunk, for streams)
and fallback is on, the large model answers, with ``fallback=True`` and the error in the
record's ``reason``. Every response (each streamed chunk too) carries
``additional_kwargs["routing"]``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TypeVar

from llama_index.core.base.llms.types import ChatResponse, CompletionResponse
from llama_index.core.llms.llm import LLM

from llamaindex_hybrid._responses import model_name, token_usage, with_routing
from llamaindex_hybrid._routing_input import RoutingInput
from shared_router.routing.serving import Routed, RoutingService
from shared_router.types import ModelChoice, QualityKnobs, RoutingRecord

__all__ = ["RoutedCalls"]

logger = logging.getLogger(__name__)

R = TypeVar("R", ChatResponse, CompletionResponse)


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
        try:
            response = invoke(self._model(answered_by))
        except Exception as failure:
            if not self._can_fall_back(answered_by):
                raise
            error, answered_by = failure, "large"
            response = invoke(self.large)
        record = self._record(routed, answered_by, error)
        self._account(record, response)
        return with_routing(response, record.as_dict())

    async def acall(self, routed: Routed, invoke: Callable[[LLM], Awaitable[R]]) -> R:
        """The async form of :meth:`call`."""
        error: Exception | None = None
        answered_by = routed.model
        try:
            response = await invoke(self._model(answered_by))
        except Exception as failure:
            if not self._can_fall_back(answered_by):
                raise
            error, answered_by = failure, "large"
            response = await invoke(self.large)
        record = self._record(routed, answered_by, error)
        self._account(record, response)
        return with_routing(response, record.as_dict())

    def stream(
        self, routed: Routed, open_stream: Callable[[LLM], Iterator[R]]
    ) -> Generator[R, None, None]:
        """Stream from the chosen model (the large one if the small fails before a chunk)."""
        error: Exception | None = None
        answered_by = routed.model
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
        if first is not None:
            last = with_routing(first, routing)
            yield last
            for chunk in chunks:
                last = with_routing(chunk, routing)
                yield last
        self._account(record, last)

    async def astream(
        self, routed: Routed, open_stream: Callable[[LLM], Awaitable[AsyncIterator[R]]]
    ) -> AsyncGenerator[R, None]:
        """The async form of :meth:`stream`."""
        error: Exception | None = None
        answered_by = routed.model
        try:
            chunks = await open_stream(self._model(answered_by))
            first = await anext(chunks, None)
        except Exception as failure:
            if not self._can_fall_back(answered_by):
                raise
            error, answered_by = failure, "large"
            chunks = await open_stream(self.large)
            first = await anext(chunks, None)
        record = self._record(routed, answered_by, error)
        routing = record.as_dict()
        last = None
        if first is not None:
            last = with_routing(first, routing)
            yield last
            async for chunk in chunks:
                last = with_routing(chunk, routing)
                yield last
        self._account(record, last)

    def _model(self, choice: ModelChoice) -> LLM:
        return self.small if choice == "small" else self.large

    def _can_fall_back(self, choice: ModelChoice) -> bool:
        return choice == "small" and self.fallback_to_large

    def _record(
        self, routed: Routed, answered_by: ModelChoice, error: Exception | None
    ) -> RoutingRecord:
        reason = None
        if error is not None:
            reason = f"small model failed: {type(error).__name__}: {error}"
            logger.warning("HybridLLM: %s; the large model answers", reason)
        return self.service.record(
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
