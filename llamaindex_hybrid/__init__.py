"""hybrid-llm for LlamaIndex: ``HybridLLM`` routes each call to a small or a large LLM.

Importing this package loads neither torch nor the router; the router loads on the first call.
"""

from llamaindex_hybrid.base import HybridLLM
from shared_router.routing.serving import ModelPrices

__all__ = ["HybridLLM", "ModelPrices"]
