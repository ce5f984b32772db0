"""The LlamaIndex spans around a HybridLLM call: its chat engine's memory, its engine's response.

LlamaIndex opens an instrumentation span for every engine, synthesizer and LLM method, each
with its parent. :class:`RoutingSpans`, a span handler on the root dispatcher (installed once,
by the first HybridLLM), follows them to do two things no single LLM call can:

* **Conversation ids.** A chat engine's memory names its conversation (``Memory.session_id``;
  the chat store and key of a ``ChatMemoryBuffer``). Every call made inside a chat engine's
  span belongs to that conversation, which sticky routing keys on (:meth:`conversation`).
* **Records on engine responses.** A routed call's record is collected in the span it runs in
  (:meth:`collect`) and handed to its parent span when a span ends, so an engine's span ends
  holding the records of every call made under it. When its result is an engine response
  (``Response``, ``PydanticResponse``, a chat engine's ``AgentChatResponse``...), the records go
  on its ``metadata``: ``"routing"`` (the last call's: the one that produced the answer) and
  ``"routing_calls"`` (all, in order). A ``ChatResponse`` / ``CompletionResponse`` that has no
  record of its own (a ``StructuredLLM``'s) gets the last one in ``additional_kwargs``.

Streamed engine responses are returned before their LLM call runs, so their ``metadata``
has no record: the chunks of the stream and the :class:`~llamaindex_hybrid.RoutingEvent` carry
it. Only spans that are open are held, so the handler keeps nothing once calls have ended.
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.base.llms.types import ChatResponse, CompletionResponse
from llama_index.core.base.response.schema import PydanticResponse, Response
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.chat_engine.types import AgentChatResponse, BaseChatEngine
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.span import BaseSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler

__all__ = ["RoutingSpans", "routing_spans"]

_ENGINE_RESPONSES = (Response, PydanticResponse, AgentChatResponse)


@dataclass
class _Open:
    """What is known of one open span."""

    parent: str | None
    conversation: str | None
    records: list[dict[str, Any]] = field(default_factory=list)


def memory_conversation(engine: BaseChatEngine) -> str | None:
    """The conversation a chat engine's memory names, or None for an engine without memory."""
    memory = getattr(engine, "_memory", None)
    if memory is None:
        return None
    session = getattr(memory, "session_id", None)
    if isinstance(session, str) and session:
        return f"memory:{session}"
    store = getattr(memory, "chat_store", None)
    key = getattr(memory, "chat_store_key", None)
    return f"memory:{id(store) if store is not None else id(memory)}:{key}"


class RoutingSpans(BaseSpanHandler[BaseSpan]):
    """Follows LlamaIndex's open spans for conversation ids and response records."""

    _spans: dict[str, _Open] = PrivateAttr(default_factory=dict)
    _table_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def class_name(cls) -> str:
        """The handler's name in LlamaIndex."""
        return "HybridLLMRoutingSpans"

    def conversation(self, span_id: str | None) -> str | None:
        """The conversation of the chat engine the span ``span_id`` runs under, or None."""
        with self._table_lock:
            held = self._spans.get(span_id) if span_id is not None else None
            return held.conversation if held is not None else None

    def collect(self, span_id: str | None, record: dict[str, Any]) -> None:
        """Hold one call's routing record in its span, until that span ends."""
        with self._table_lock:
            held = self._spans.get(span_id) if span_id is not None else None
            if held is not None:
                held.records.append(record)

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> BaseSpan:
        """Hold a new span, with the conversation of its chat engine (or of its parent)."""
        with self._table_lock:
            parent = self._spans.get(parent_span_id) if parent_span_id is not None else None
            conversation = parent.conversation if parent is not None else None
            if conversation is None and isinstance(instance, BaseChatEngine):
                conversation = memory_conversation(instance)
            self._spans[id_] = _Open(parent_span_id, conversation)
        return BaseSpan(id_=id_, parent_id=parent_span_id)

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> BaseSpan:
        """Put the span's records on its result when it is a response, then on its parent."""
        records = self._close(id_)
        if records:
            _attach(result, records)
        return BaseSpan(id_=id_)

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> BaseSpan:
        """Forget a span that raised (its records still reach its parent)."""
        self._close(id_)
        return BaseSpan(id_=id_)

    def _close(self, id_: str) -> list[dict[str, Any]]:
        with self._table_lock:
            held = self._spans.pop(id_, None)
            if held is None:
                return []
            parent = self._spans.get(held.parent) if held.parent is not None else None
            if parent is not None:
                parent.records.extend(held.records)
            return held.records


def _attach(result: Any, records: list[dict[str, Any]]) -> None:
    """Put ``records`` on an engine response, or the last one on a response without one."""
    if isinstance(result, _ENGINE_RESPONSES):
        result.metadata = {
            **(result.metadata or {}),
            "routing": records[-1],
            "routing_calls": list(records),
        }
    elif isinstance(result, (ChatResponse, CompletionResponse)):
        result.additional_kwargs.setdefault("routing", records[-1])


_install_lock = threading.Lock()
_installed: RoutingSpans | None = None


def routing_spans() -> RoutingSpans:
    """The one :class:`RoutingSpans` of the process, added to the root dispatcher on first use."""
    global _installed
    if _installed is None:
        with _install_lock:
            if _installed is None:
                handler = RoutingSpans()
                get_dispatcher().add_span_handler(handler)
                _installed = handler
    return _installed
