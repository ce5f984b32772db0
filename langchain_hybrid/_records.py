"""Routing records on LangChain answers: count the answered call, attach its record.

Every answer carries ``response_metadata["routing"]``, the
:class:`~shared_router.types.RoutingRecord` of its call; the inner model's own message is
copied, never changed. An answer the inner model took from LangChain's LLM cache is marked
``cached=True`` (langchain-core zeroes ``usage_metadata["total_cost"]`` on the messages it
replays from its cache), and its tokens, which cost nothing, are not added to the stats.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from langchain_core.messages import BaseMessage

from langchain_hybrid._fallback import Answer
from shared_router.routing.serving import Routed, RoutingService
from shared_router.types import RoutingRecord

__all__ = ["from_llm_cache", "record_answer", "with_routing"]

M = TypeVar("M", bound=BaseMessage)


def from_llm_cache(usage: Mapping[str, Any] | None) -> bool:
    """Whether a message with this ``usage_metadata`` was replayed from an LLM cache."""
    return usage is not None and usage.get("total_cost", None) == 0


def record_answer(
    service: RoutingService,
    routed: Routed,
    answer: Answer[Any],
    model_name: str,
    usage: Mapping[str, Any] | None,
) -> RoutingRecord:
    """Count one answered call (and its tokens) and return its routing record.

    Args:
        service: The routing service that decided the call.
        routed: Its decision.
        answer: Which model answered, and the small model's error where it fell back.
        model_name: The name of the model that answered.
        usage: Its ``usage_metadata`` (``input_tokens``, ``output_tokens``), where reported.

    Returns:
        The record (``cached=True`` for an answer from an LLM cache).
    """
    failure = answer.failure
    record = service.record(
        routed,
        answered_by=answer.choice,
        model_name=model_name,
        fallback=failure is not None,
        reason=None if failure is None else routed.fallback_reason(failure),
    )
    if from_llm_cache(usage):
        return dataclasses.replace(record, cached=True)
    usage = usage or {}
    service.account(
        record,
        input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"),
    )
    return record


def with_routing(message: M, record: RoutingRecord) -> M:
    """A copy of ``message`` with the record in ``response_metadata["routing"]``."""
    metadata = {**message.response_metadata, "routing": record.as_dict()}
    return message.model_copy(update={"response_metadata": metadata})
