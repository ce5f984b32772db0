"""The LangChain collect-time plugin: chat models as response sources for ``hybrid-llm collect``.

``hybrid-llm collect`` and the LLM judge ask models through it. The core declares it in
:data:`shared_router.pipeline.sources.COLLECT_PLUGINS` and imports it by name when a SPEC needs
LangChain, so the core never imports LangChain itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Imported here, not inside the first request: the first ainvoke would import LangChain's
# tracer context (and tenacity) inside the request's timeout.
import langchain_core.tracers.context  # noqa: F401
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage

from langchain_hybrid._capabilities import generates_sync_only
from shared_router._internal.extras import require_extra
from shared_router.errors import ModelTypeError
from shared_router.pipeline.sources import Generation
from shared_router.pipeline.token_logprobs import token_logprobs

__all__ = ["ChatModelSource", "chat_model_providers", "init_chat_model_source"]


class ChatModelSource:
    """Answers prompts with a LangChain chat model (one human message per prompt).

    Args:
        model: The chat model.
    """

    def __init__(self, model: BaseChatModel) -> None:
        if not isinstance(model, BaseChatModel):
            raise ModelTypeError(f"expected a LangChain BaseChatModel, got {type(model).__name__}")
        self.model = model

    @property
    def native_async(self) -> bool:
        """Whether the model answers asynchronously itself; else the pipeline calls
        :meth:`generate_sync` on the model's own threads, never on the loop's executor."""
        return not generates_sync_only(self.model)

    async def generate(self, prompt: str) -> Generation:
        """Answer one prompt.

        Args:
            prompt: The user message.

        Returns:
            The text of the reply, the token usage and the token log-probabilities
            (``response_metadata["logprobs"]``) the model reported.
        """
        return _generation(await self.model.ainvoke([HumanMessage(content=prompt)]))

    def generate_sync(self, prompt: str) -> Generation:
        """Answer one prompt with the model's blocking API (see :attr:`native_async`)."""
        return _generation(self.model.invoke([HumanMessage(content=prompt)]))


def _generation(message: BaseMessage) -> Generation:
    usage: Mapping[str, Any] = getattr(message, "usage_metadata", None) or {}
    return Generation(
        text=message.text,
        input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"),
        token_logprobs=token_logprobs(getattr(message, "response_metadata", None)),
    )


def init_chat_model_source(spec: str, settings: Mapping[str, Any]) -> ChatModelSource:
    """Make a source from a ``provider:model`` SPEC through ``init_chat_model``.

    Args:
        spec: ``provider:model``, for example ``openai:gpt-4o-mini``.
        settings: Keyword arguments for ``init_chat_model`` (temperature, max_tokens, ...).

    Returns:
        The source.

    Raises:
        MissingDependencyError: If the ``langchain`` package is missing; the message names
            ``pip install 'hybrid-llm[collect]'``.
        ImportError: If the provider's package is missing (raised by ``init_chat_model``,
            whose message names the package to install).
    """
    chat_models = require_extra(
        "langchain.chat_models", extra="collect", purpose="provider:model SPECs"
    )
    return ChatModelSource(chat_models.init_chat_model(spec, **dict(settings)))


def chat_model_providers() -> tuple[str, ...]:
    """The provider names the installed ``langchain`` knows (for checking the core's list)."""
    from langchain.chat_models import base

    return tuple(sorted(base._BUILTIN_PROVIDERS))
