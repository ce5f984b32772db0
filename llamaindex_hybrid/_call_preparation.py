"""A HybridLLM call's preparation: what it is routed on, and what its RoutedCalls need.

The inner models' metadata (read once, :mod:`llamaindex_hybrid._metadata`) says which model
calls tools and which is a chat model; a chat is routed on its messages, a completion on its
prompt (:mod:`llamaindex_hybrid._routing_input`), a call offering tools only the large model
calls goes large (:mod:`llamaindex_hybrid._tools`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import ChatMessage, LLMMetadata
from llama_index.core.callbacks import EventPayload
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM

from llamaindex_hybrid._call_blocks import block_reference
from llamaindex_hybrid._call_knobs import call_knobs, checked_knobs
from llamaindex_hybrid._metadata import InnerMetadata
from llamaindex_hybrid._routed_calls import RoutedCalls
from llamaindex_hybrid._routing_input import (
    RoutingInput,
    chat_routing_input,
    prompt_routing_input,
)
from llamaindex_hybrid._tools import TOOLS_KWARG, ToolRequest, tool_route
from shared_router.live.settings import REFERENCE_KEYWORD, checked_reference
from shared_router.routing.failures import FallbackPolicy
from shared_router.routing.serving import RoutingService
from shared_router.routing.text import RoutedTextMode
from shared_router.types import KNOB_NAMES, ModelChoice, QualityKnobs

__all__ = ["CallPreparation"]


class CallPreparation(FunctionCallingLLM):
    """An LLM that prepares each call for routing: its routing input and its RoutedCalls."""

    if TYPE_CHECKING:  # HybridLLM's fields (read here), private attributes, conversation

        @property
        def small(self) -> LLM: ...

        @property
        def large(self) -> LLM: ...

        @property
        def max_quality_drop(self) -> float | None: ...

        @property
        def large_share(self) -> float | None: ...

        @property
        def threshold(self) -> float | None: ...

        @property
        def routed_text(self) -> RoutedTextMode: ...

        _service: RoutingService
        _fallbacks: FallbackPolicy
        _inner: InnerMetadata

        def _conversation(self) -> str | None: ...

    def _meta(self, choice: ModelChoice) -> LLMMetadata:
        model = self.small if choice == "small" else self.large
        meta = self._inner.of(choice, model)
        if meta.model_name and meta.model_name != "unknown":
            return meta
        return meta.model_copy(update={"model_name": model.class_name()})

    def _calls_tools(self, model: LLM) -> bool:
        choice: ModelChoice = "small" if model is self.small else "large"
        return (
            isinstance(model, FunctionCallingLLM) and self._meta(choice).is_function_calling_model
        )

    def _is_chat_model(self, model: LLM) -> bool:
        choice: ModelChoice = "small" if model is self.small else "large"
        return self._meta(choice).is_chat_model

    def _routed_calls(self, kwargs: dict[str, Any], request: dict[str, Any]) -> RoutedCalls:
        """What this call needs; pops the per-call knobs and reference answer from ``kwargs``
        (never passed on)."""
        per_call = checked_knobs(*(kwargs.pop(knob, None) for knob in KNOB_NAMES))
        reference = checked_reference(kwargs.pop(REFERENCE_KEYWORD, None))
        if reference is None:
            reference = block_reference(self)
        own = QualityKnobs(self.max_quality_drop, self.large_share, self.threshold)
        request[EventPayload.ADDITIONAL_KWARGS] = kwargs
        request[EventPayload.SERIALIZED] = self.to_payload()
        return RoutedCalls(
            small=self.small,
            large=self.large,
            names={
                "small": self._meta("small").model_name,
                "large": self._meta("large").model_name,
            },
            service=self._service,
            knobs=per_call.or_else(call_knobs(self, own)),
            fallbacks=self._fallbacks,
            conversation=self._conversation(),
            callbacks=self.callback_manager,
            request=request,
            span_id=active_span_id.get(),
            rate_limiter=self.rate_limiter,
            reference=reference,
        )

    def _chat_routing(
        self,
        messages: Sequence[ChatMessage],
        tools: ToolRequest | None,
        question: str | None = None,
    ) -> RoutingInput:
        force_large = tool_route(
            tools,
            messages,
            small_calls_tools=self._calls_tools(self.small),
            large_calls_tools=self._calls_tools(self.large),
            names=(self._meta("small").model_name, self._meta("large").model_name),
        )
        return chat_routing_input(
            messages, routed_text=self.routed_text, question=question, force_large=force_large
        )

    def _chat_call(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> tuple[RoutedCalls, RoutingInput, ToolRequest | None]:
        tools = kwargs.pop(TOOLS_KWARG, None)
        calls = self._routed_calls(kwargs, {EventPayload.MESSAGES: messages})
        return calls, self._chat_routing(messages, tools), tools

    def _completion_call(
        self, prompt: str, kwargs: dict[str, Any]
    ) -> tuple[RoutedCalls, RoutingInput]:
        calls = self._routed_calls(kwargs, {EventPayload.PROMPT: prompt})
        return calls, prompt_routing_input(prompt)
