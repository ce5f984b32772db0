"""LlamaIndex LLMs as response sources for ``hybrid-llm collect`` and the LLM judge.

``shared_router.pipeline.sources`` imports this module by name when a ``module:callable`` SPEC gives
a LlamaIndex LLM, so the core never imports LlamaIndex itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.llms import LLM, ChatMessage, ChatResponse, MessageRole

from shared_router.pipeline.sources import Generation

__all__ = ["LlamaIndexSource"]

_INPUT_KEYS = ("prompt_tokens", "input_tokens")
_OUTPUT_KEYS = ("completion_tokens", "output_tokens")


class LlamaIndexSource:
    """Answers prompts with a LlamaIndex LLM (one user chat message per prompt).

    Args:
        llm: The LLM.
    """

    def __init__(self, llm: LLM) -> None:
        if not isinstance(llm, LLM):
            raise TypeError(f"expected a LlamaIndex LLM, got {type(llm).__name__}")
        self.llm = llm

    async def generate(self, prompt: str) -> Generation:
        """Answer one prompt.

        Args:
            prompt: The user message.

        Returns:
            The text of the reply and the token usage, where the integration reports it (in
            ``additional_kwargs`` or in the raw response's ``usage``).
        """
        response = await self.llm.achat([ChatMessage(role=MessageRole.USER, content=prompt)])
        input_tokens, output_tokens = _usage(response)
        return Generation(
            text=response.message.content or "",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )


def _usage(response: ChatResponse) -> tuple[int | None, int | None]:
    places: list[Mapping[str, Any]] = [response.additional_kwargs or {}]
    raw = response.raw
    usage = raw.get("usage") if isinstance(raw, Mapping) else getattr(raw, "usage", None)
    if isinstance(usage, Mapping):
        places.append(usage)
    elif usage is not None:
        places.append({key: getattr(usage, key, None) for key in (*_INPUT_KEYS, *_OUTPUT_KEYS)})
    return _first_count(places, _INPUT_KEYS), _first_count(places, _OUTPUT_KEYS)


def _first_count(places: list[Mapping[str, Any]], keys: tuple[str, ...]) -> int | None:
    for place in places:
        for key in keys:
            value = place.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None
