"""hybrid-llm for LlamaIndex: ``HybridLLM`` routes each call to a small or a large LLM.

Layer 5, the top: this package may import ``shared_router`` and LlamaIndex
(``llama_index.core``) only, and nothing imports it but users and the core's collect-time
plugin table (:data:`shared_router.pipeline.sources.COLLECT_PLUGINS`).

Modules:
    base: :class:`HybridLLM`, the LLM.
    questions: A prompt routed on its question, not on the retrieved context
        (:func:`routing_question` for prompts formatted by hand).
    events: :class:`RoutingEvent`, each decision as a LlamaIndex instrumentation event.
    collect_source: The collect-time plugin, LlamaIndex LLMs as response sources for
        ``hybrid-llm collect`` and the LLM judge.
    _routed_calls: One call: decide, run the chosen model (falling back), record.
    _call_preparation, _call_blocks, _service_state: A call prepared for routing (its
        routing input, the inner models' tool and chat support), ``quality()`` and
        ``conversation()`` blocks, and the routing service and fallback policy built from
        the settings (rebuilt on assignment, each copy's own).
    _routing_input, _library_prompts, _call_knobs: What a call is routed on (its question,
        its text, its conversation), LlamaIndex's templates recognised in formatted text,
        and checked quality levels (per call, per block).
    _prompting, _metadata, _tools, _inner_models: Templates formatted by the answering
        model, the inner models' metadata read without a server, tool calling through the
        chosen model, and the inner models and router in serialised form.
    _spans, _callbacks, _responses: The LlamaIndex spans around a call (chat-engine
        conversations, records on engine responses), callback events once per call, and
        the routing record and token usage on responses.
    _shadowing: Answered calls offered to the live loop (``live=LiveSettings(...)``).

Importing this package loads neither torch nor the router; the router loads on the first call.
"""

from shared_router._internal.extras import require_extra

require_extra("llama_index.core", extra="llamaindex", purpose="llamaindex_hybrid")

from llamaindex_hybrid.base import HybridLLM  # noqa: E402  (after the check above)
from llamaindex_hybrid.events import RoutingEvent  # noqa: E402
from llamaindex_hybrid.questions import routing_question  # noqa: E402
from shared_router.live.settings import LiveSettings  # noqa: E402
from shared_router.routing.accounting import ModelPrices  # noqa: E402

__all__ = ["HybridLLM", "LiveSettings", "ModelPrices", "RoutingEvent", "routing_question"]
