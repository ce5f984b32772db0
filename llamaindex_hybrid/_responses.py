"""LlamaIndex responses: the routing record on them and the token usage they report."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, TypeVar

from llama_index.core.base.llms.types import ChatResponse, CompletionResponse

__all__ = ["token_usage", "with_routing"]

R = TypeVar("R", bound=ChatResponse | CompletionResponse)

_USAGE_NAMES = (("prompt_tokens", "completion_tokens"), ("input_tokens", "output_tokens"))


def with_routing(response: R, routing: dict[str, Any]) -> R:
    """A copy of ``response`` carrying the record; the inner model's own response is untouched."""
    routed = copy.copy(response)
    routed.additional_kwargs = {**response.additional_kwargs, "routing": routing}
    return routed


def token_usage(
    response: ChatResponse | CompletionResponse | None,
) -> tuple[int | None, int | None]:
    """Token counts a provider reported: in ``additional_kwargs`` or in ``raw["usage"]``.

    Args:
        response: A response of any LlamaIndex integration (None: no response, no counts).

    Returns:
        ``(input_tokens, output_tokens)``; None where the provider reported no count. OpenAI
        style (``prompt_tokens``/``completion_tokens``) and Anthropic style
        (``input_tokens``/``output_tokens``) names are read, from a mapping or an object.
    """
    if response is None:
        return None, None
    raw = response.raw
    usage = raw.get("usage") if isinstance(raw, Mapping) else getattr(raw, "usage", None)
    for source in (response.additional_kwargs, usage):
        for names in _USAGE_NAMES:
            tokens_in, tokens_out = (_int_field(source, name) for name in names)
            if tokens_in is not None or tokens_out is not None:
                return tokens_in, tokens_out
    return None, None


def _int_field(source: Any, name: str) -> int | None:
    value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
