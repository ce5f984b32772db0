"""hybrid-llm for LangChain: ``ChatHybrid`` sends each call to a small or a large chat model.

Layer 5, the top: this package may import ``shared_router`` and LangChain (``langchain_core``,
and ``langchain`` for ``provider:model`` SPECs) only, and nothing imports it but users and the
core's collect-time plugin table (:data:`shared_router.pipeline.sources.COLLECT_PLUGINS`).

Modules:
    chat_models: :class:`ChatHybrid`, the chat model.
    collect_source: The collect-time plugin, LangChain chat models as response sources for
        ``hybrid-llm collect`` and the LLM judge.
    _configurable: A chain's ``configurable`` quality knobs passed on to each call.
    _routed_calls: One call: decide, run the chosen model (falling back), record.
    _fallback, _streaming, _structured_output, _capabilities, _records, _tracing,
    _conversation: The large model answering for a failed small one, the routed stream,
        structured output, what the inner models support, routing records on answers, child
        runs in traces, and messages as ``(role, text)`` turns.

Importing this package loads neither torch nor the router; the router loads on the first call.
"""

from shared_router._internal.extras import require_extra

require_extra("langchain_core", extra="langchain", purpose="langchain_hybrid")

from langchain_hybrid.chat_models import ChatHybrid  # noqa: E402  (after the check above)

__all__ = ["ChatHybrid"]
