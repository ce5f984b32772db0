"""What the chosen model's answer becomes: one message, with the routing record on it.

An answer's record names the model by the name the answer gives (``model_name``), else by the
model's configured name; a stream's record is its last chunk (:class:`StreamTally`), a
structured-output answer's is on its ``raw`` message. :func:`merged` makes one message of a
stream's chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    message_chunk_to_message,
)

from langchain_hybrid._call_plan import CallPlan
from langchain_hybrid._fallback import Answer
from langchain_hybrid._inner_models import InnerModel
from langchain_hybrid._records import record_answer, with_routing
from langchain_hybrid._streaming import StreamTally
from langchain_hybrid._structured_output import structured_value
from shared_router.routing.serving import RoutingService
from shared_router.types import RoutingRecord

__all__ = ["answer_message", "final_chunk", "merged", "structured_result"]

Label = Callable[[InnerModel], str]
"""The configured name of a model (for records of answers that name none)."""


def answer_message(
    service: RoutingService, plan: CallPlan, answer: Answer[BaseMessage], label: Label
) -> AIMessage:
    """The answer as an ``AIMessage`` with its routing record."""
    message = answer.value
    if not isinstance(message, AIMessage):
        message = AIMessage(**message.model_dump(exclude={"type"}))
    return with_routing(message, _record(service, plan, answer, message, label))


def final_chunk(
    service: RoutingService, plan: CallPlan, answer: Answer[Any], tally: StreamTally, label: Label
) -> AIMessageChunk:
    """A stream's last chunk, with the routing record of the streamed answer."""
    name = tally.model_name or label(plan.model(answer.choice))
    record = record_answer(service, plan.routed, answer, name, tally.usage)
    return tally.final_chunk(record)


def structured_result(
    service: RoutingService,
    plan: CallPlan,
    answer: Answer[dict[str, Any]],
    label: Label,
    include_raw: bool,
) -> Any:
    """A structured-output answer, the routing record on its ``raw`` message."""
    raw = answer.value["raw"]
    record = _record(service, plan, answer, raw, label)
    return structured_value(answer.value, with_routing(raw, record), include_raw=include_raw)


def merged(chunks: Sequence[BaseMessage] | Iterator[BaseMessage]) -> AIMessage:
    """One message from a stream's chunks."""
    pieces = list(chunks)
    first = pieces[0]
    if not isinstance(first, BaseMessageChunk):  # a model without streaming gave a message
        return first if isinstance(first, AIMessage) else AIMessage(content=first.content)
    joined = first + pieces[1:] if len(pieces) > 1 else first
    message = message_chunk_to_message(joined)
    return message if isinstance(message, AIMessage) else AIMessage(content=message.content)


def _record(
    service: RoutingService,
    plan: CallPlan,
    answer: Answer[Any],
    message: BaseMessage,
    label: Label,
) -> RoutingRecord:
    name = message.response_metadata.get("model_name")
    if not (isinstance(name, str) and name):
        name = label(plan.model(answer.choice))
    usage = getattr(message, "usage_metadata", None)
    return record_answer(service, plan.routed, answer, name, usage)
