"""``RoutingEvent``: each HybridLLM decision as a LlamaIndex instrumentation event.

Every routed call fires one :class:`RoutingEvent` through LlamaIndex's dispatcher once its
answering model is known (after a fallback too), inside the call's span, so any
``BaseEventHandler`` on the root dispatcher (Arize Phoenix, Langfuse, a handler of your own)
sees which model answered and why, beside the answering model's own LLM events:

.. code-block:: python

    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llamaindex_hybrid import RoutingEvent

    class Decisions(BaseEventHandler):
        def handle(self, event, **kwargs):
            if isinstance(event, RoutingEvent):
                print(event.model, event.score, event.threshold, event.knob)

    get_dispatcher().add_event_handler(Decisions())
"""

from __future__ import annotations

from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events import BaseEvent

from shared_router.types import ModelChoice, RoutingRecord

__all__ = ["RoutingEvent", "announce"]

_dispatcher = get_dispatcher(__name__)


class RoutingEvent(BaseEvent):
    """Which model answered one HybridLLM call, and why.

    Attributes:
        model: ``"small"`` or ``"large"``: the model that answered.
        model_name: That model's own name.
        score: The router's p(small is good enough), or None when it did not score.
        threshold: The threshold the score was compared with, or None.
        knob: The quality knob that set the threshold (``"max_quality_drop"``,
            ``"large_share"``, ``"threshold"``, ...), or why none applied (``"none"``).
        knob_value: That knob's value, or None.
        calibration: The calibration table a calibrated knob was turned into a threshold
            with (its method, size and confidence), or None for a raw threshold.
        router: The router's name.
        router_ms: Milliseconds the decision took.
        fallback: True when the large model answered because the small one or the router
            failed.
        reason: A short explanation (the error, on a fallback).
        conversation_id: The conversation of a sticky call, or None.
        calibration_source: With ``live=``, which calibration chose a ``max_quality_drop``
            threshold: ``"prior"`` (the router's own) or ``"live"`` (shadow rows); else None.
        calibration_rows: The live rows it stood on, or None.
        drop_bound: Its upper bound on the quality drop at the threshold, or None.
    """

    model: ModelChoice
    model_name: str
    score: float | None
    threshold: float | None
    knob: str
    knob_value: float | None = None
    calibration: str | None = None
    router: str
    router_ms: float
    fallback: bool = False
    reason: str = ""
    conversation_id: str | None = None
    calibration_source: str | None = None
    calibration_rows: int | None = None
    drop_bound: float | None = None

    @classmethod
    def class_name(cls) -> str:
        """The name tracers show for the event."""
        return "HybridLLMRoutingEvent"


def announce(
    record: RoutingRecord,
    *,
    knob_value: float | None,
    calibration: str | None,
    conversation_id: str | None,
    span_id: str | None,
) -> None:
    """Fire the :class:`RoutingEvent` of one answered call, in its span, through the dispatcher."""
    _dispatcher.event(
        RoutingEvent(
            span_id=span_id,
            model=record.model,
            model_name=record.model_name,
            score=record.score,
            threshold=record.threshold,
            knob=record.knob,
            knob_value=knob_value,
            calibration=calibration,
            router=record.router,
            router_ms=record.router_ms,
            fallback=record.fallback,
            reason=record.reason,
            conversation_id=conversation_id,
            calibration_source=record.extra.get("calibration"),
            calibration_rows=record.extra.get("calibration_rows"),
            drop_bound=record.extra.get("drop_bound"),
        )
    )
