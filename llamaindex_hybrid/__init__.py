"""hybrid-llm for LlamaIndex: ``HybridLLM`` routes each call to a small or a large LLM.

Layer 5, the top: this package may import ``shared_router`` and LlamaIndex
(``llama_index.core``) only, and nothing imports it but users and the core's collect-time
plugin table (:data:`shared_router.pipeline.sources.COLLECT_PLUGINS`).

Modules:
    base: :class:`HybridLLM`, the LLM.
    questions: A templated prompt routed on its question, not on the retrieved context.
    collect_source: The collect-time plugin, LlamaIndex LLMs as response sources for
        ``hybrid-llm collect`` and the LLM judge.
    _routed_calls: One call: decide, run the chosen model (falling back), record.
    _routing_input, _call_knobs, _tools, _responses: What a call is routed on, the quality
        level of a ``with llm.quality(...)`` block, tool calling through the chosen model,
        and the routing record and token usage on responses.

Importing this package loads neither torch nor the router; the router loads on the first call.
"""

from shared_router._internal.extras import require_extra

require_extra("llama_index.core", extra="llamaindex", purpose="llamaindex_hybrid")

from llamaindex_hybrid.base import HybridLLM  # noqa: E402  (after the check above)
from shared_router.routing.serving import ModelPrices  # noqa: E402

__all__ = ["HybridLLM", "ModelPrices"]
