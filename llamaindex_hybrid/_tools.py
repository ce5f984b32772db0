"""Tool calling through the chosen model's own ``chat_with_tools``.

:meth:`HybridLLM._prepare_chat_with_tools` only collects the request (a :class:`ToolRequest`,
passed to ``chat`` under :data:`TOOLS_KWARG`); the model the router picks formats the tools the
way its provider wants. When only the large model calls tools, such calls go to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection

from llamaindex_hybrid._responses import model_name
from shared_router.errors import RoutingError

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = [
    "TOOLS_KWARG",
    "ChatMethod",
    "ToolRequest",
    "calls_tools",
    "chat_invoker",
    "read_tool_calls",
    "tool_route",
]

TOOLS_KWARG = "hybrid_tools"
"""The keyword argument that carries a :class:`ToolRequest` from ``chat_with_tools`` to ``chat``."""

ChatMethod = Literal["chat", "achat", "stream_chat", "astream_chat"]

_TOOL_METHODS: dict[ChatMethod, str] = {
    "chat": "chat_with_tools",
    "achat": "achat_with_tools",
    "stream_chat": "stream_chat_with_tools",
    "astream_chat": "astream_chat_with_tools",
}
_NO_TOOLS_REASON = "only the large model supports tool calling"


@dataclass(frozen=True)
class ToolRequest:
    """What ``chat_with_tools`` was asked, handed to the chosen model's own tool calling."""

    tools: Sequence[BaseTool]
    verbose: bool
    allow_parallel_tool_calls: bool
    tool_required: bool
    kwargs: dict[str, Any] = field(default_factory=dict)


def calls_tools(llm: LLM) -> bool:
    """Whether ``llm`` is a function-calling model."""
    return isinstance(llm, FunctionCallingLLM) and llm.metadata.is_function_calling_model


def tool_route(tools: ToolRequest | None, small: LLM, large: LLM) -> str | None:
    """Why a call must go large because of its tools, or None when it may go either way.

    Raises:
        RoutingError: If the call has tools and neither model calls tools.
    """
    if tools is None or calls_tools(small):
        return None
    if not calls_tools(large):
        raise RoutingError(
            "tool calling needs a function-calling model, but neither "
            f"{model_name(small)!r} nor {model_name(large)!r} is one "
            "(a FunctionCallingLLM whose metadata.is_function_calling_model is True)"
        )
    return _NO_TOOLS_REASON


def chat_invoker(
    method: ChatMethod,
    messages: Sequence[ChatMessage],
    tools: ToolRequest | None,
    kwargs: dict[str, Any],
) -> Callable[[LLM], Any]:
    """The call of one chat method on whichever model is chosen, with its tools if any.

    Args:
        method: The chat method HybridLLM was called through.
        messages: The chat.
        tools: The tool request, or None for a plain chat.
        kwargs: The other keyword arguments of the call.

    Returns:
        A function that runs the call on the model it is given.
    """

    def invoke(model: LLM) -> Any:
        if tools is None:
            return getattr(model, method)(messages, **kwargs)
        return getattr(model, _TOOL_METHODS[method])(
            tools.tools,
            chat_history=list(messages),
            verbose=tools.verbose,
            allow_parallel_tool_calls=tools.allow_parallel_tool_calls,
            tool_required=tools.tool_required,
            **{**tools.kwargs, **kwargs},
        )

    return invoke


def read_tool_calls(
    model: LLM, response: ChatResponse, error_on_no_tool_call: bool, **kwargs: Any
) -> list[ToolSelection]:
    """Read the tool calls of ``response`` with the parser of ``model``, the one that answered.

    Raises:
        RoutingError: If ``model`` is not a function-calling LLM.
    """
    if not isinstance(model, FunctionCallingLLM):
        raise RoutingError(
            f"{model_name(model)!r} answered and is not a FunctionCallingLLM, "
            "so it has no tool calls to read"
        )
    return model.get_tool_calls_from_response(
        response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
    )
