"""LlamaIndex callback events for a HybridLLM call: one LLM event per call, not two.

The model that answers a call fires its own LLM events (callbacks and instrumentation), as it
does used bare: they carry what it really received and what its provider reported. HybridLLM
therefore fires no LLM events of its own (``TokenCountingHandler`` would count each call
twice), except to the callback handlers that are on HybridLLM's callback manager but not on
the answering model's: for those, :class:`CallbackReport` reports the call once, so a handler
given to HybridLLM alone (``HybridLLM(..., callback_manager=...)``, ``Settings.llm``, an
engine's ``callback_manager``) still sees every call.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.llms.llm import LLM

__all__ = ["CallbackReport"]


class CallbackReport:
    """One call's LLM event, to the handlers the answering model does not report to.

    Args:
        outer: HybridLLM's callback manager.
        model: The model about to answer.
        request: The call's payload: ``{EventPayload.MESSAGES: ...}`` or
            ``{EventPayload.PROMPT: ...}``, with ``ADDITIONAL_KWARGS`` and ``SERIALIZED``.
    """

    def __init__(self, outer: CallbackManager, model: LLM, request: dict[str, Any]) -> None:
        inner = getattr(model, "callback_manager", None)
        inner_handlers = inner.handlers if isinstance(inner, CallbackManager) else []
        missing = [h for h in outer.handlers if all(h is not other for other in inner_handlers)]
        self._manager: CallbackManager | None = None
        self._event_id = ""
        self._request = request
        if missing:
            self._manager = CallbackManager()
            self._manager.set_handlers(missing)
            self._event_id = self._manager.on_event_start(CBEventType.LLM, payload=request)

    def answered(self, response: Any) -> None:
        """Report the call's response (the last chunk, for a stream)."""
        if self._manager is None:
            return
        payload: dict[str, Any]
        if EventPayload.MESSAGES in self._request:
            payload = {
                EventPayload.MESSAGES: self._request[EventPayload.MESSAGES],
                EventPayload.RESPONSE: response,
            }
        else:
            payload = {
                EventPayload.PROMPT: self._request[EventPayload.PROMPT],
                EventPayload.COMPLETION: response,
            }
        self._manager.on_event_end(CBEventType.LLM, payload=payload, event_id=self._event_id)

    def failed(self, error: BaseException) -> None:
        """Report that the call raised."""
        if self._manager is not None:
            self._manager.on_event_end(
                CBEventType.LLM, payload={EventPayload.EXCEPTION: error}, event_id=self._event_id
            )
