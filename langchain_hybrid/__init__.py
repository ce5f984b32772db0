"""hybrid-llm for LangChain: ``ChatHybrid`` sends each call to a small or a large chat model.

Layer 5, the top: this package may import ``shared_router`` and LangChain (``langchain_core``,
and ``langchain`` for ``provider:model`` SPECs) only, and nothing imports it but users and the
core's collect-time plugin table (:data:`shared_router.pipeline.sources.COLLECT_PLUGINS`).

Modules:
    chat_models: :class:`ChatHybrid`, the chat model.
    collect_source: The collect-time plugin, LangChain chat models as response sources for
        ``hybrid-llm collect`` and the LLM judge.
    _configurable: A chain's ``configurable`` quality knobs, and the level of one call.
    _entry_points: LangChain's call methods (``invoke``, ``stream``, ``_generate``, ...),
        each handing the call to ``_routed_calls``.
    _routed_calls: One call: decide, run the chosen model (falling back), record.
    _call_plan, _answers: A call's plan (its routing question, tools, why it must go large),
        and the answer as one message with its routing record.
    _runs: ChatHybrid's run in traces (the decision as metadata), the chosen model's its child.
    _binding: What ``bind``, ``with_config`` and ``with_structured_output`` return.
    _settings, _naming: Checks of ChatHybrid's settings, and its names (inner models'
        labels, identifying and LangSmith parameters).
    _inner_models, _capabilities, _profile, _token_counts: The accepted inner models
        (LangChain's wrappers included), what they support, the pair's model profile, and
        token counts by the inner models' own counters.
    _fallback, _streaming, _structured_output, _records, _conversation: The large model
        answering for a failed small one, the routed stream, structured output, routing
        records on answers, and conversations (turns, explicit ids).
    _shadowing: Answered calls offered to the live loop (``live=LiveSettings(...)``).

Importing this package loads neither torch nor the router; the router loads on the first call.
"""

from shared_router._internal.extras import require_extra

require_extra("langchain_core", extra="langchain", purpose="langchain_hybrid")

from langchain_hybrid.chat_models import ChatHybrid  # noqa: E402  (after the check above)
from shared_router.live.settings import LiveSettings  # noqa: E402
from shared_router.routing.accounting import ModelPrices  # noqa: E402

__all__ = ["ChatHybrid", "LiveSettings", "ModelPrices"]
