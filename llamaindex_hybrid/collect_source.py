"""The LlamaIndex collect-time plugin: LLMs as response sources for ``hybrid-llm collect``.

``hybrid-llm collect`` and the LLM judge ask models through it. The core declares it in
:data:`shared_router.pipeline.sources.COLLECT_PLUGINS` and imports it by name when a
``module:callable`` SPEC gives a LlamaIndex LLM, so the core never imports LlamaIndex itself.
"""

from __future__ import annotations

from llama_index.core.llms import LLM, ChatMessage, ChatResponse, MessageRole

from llamaindex_hybrid._responses import token_usage
from llamaindex_hybrid._routed_calls import runs_sync_only
from shared_router.errors import ModelTypeError
from shared_router.pipeline.sources import Generation

__all__ = ["LlamaIndexSource"]


class LlamaIndexSource:
    """Answers prompts with a LlamaIndex LLM (one user chat message per prompt).

    Args:
        llm: The LLM.
    """

    def __init__(self, llm: LLM) -> None:
        if not isinstance(llm, LLM):
            raise ModelTypeError(f"expected a LlamaIndex LLM, got {type(llm).__name__}")
        self.llm = llm

    async def generate(self, prompt: str) -> Generation:
        """Answer one prompt.

        Args:
            prompt: The user message.

        Returns:
            The text of the reply and the token usage, where the integration reports it (see
            :func:`llamaindex_hybrid._responses.token_usage`).
        """
        return _generation(await self.llm.achat(_messages(prompt)))

    @property
    def native_async(self) -> bool:
        """Whether ``achat`` is the LLM's own; a ``CustomLLM``'s runs ``chat`` on the event loop,
        so the pipeline calls :meth:`generate_sync` on the model's own threads instead."""
        return not runs_sync_only(self.llm, "achat")

    def generate_sync(self, prompt: str) -> Generation:
        """Answer one prompt with the LLM's blocking ``chat`` (see :attr:`native_async`)."""
        return _generation(self.llm.chat(_messages(prompt)))


def _messages(prompt: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=prompt)]


def _generation(response: ChatResponse) -> Generation:
    input_tokens, output_tokens = token_usage(response)
    return Generation(
        text=response.message.content or "",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )
