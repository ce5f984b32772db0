"""Tool calling through the chosen model's own ``chat_with_tools``.

:meth:`HybridLLM._prepare_chat_with_tools` only collects the request (a :class:`ToolRequest`,
passed to ``chat`` under :data:`TOOLS_KWARG`); the model the router picks formats the tools the
way its provider wants.

When only the large model calls tools, a call offering tools goes to it, so that the tools
can be called; but an agent's step that follows a tool's result (the chat ends with a
``tool`` message) is routed like any other call: the small model, when chosen, answers from
the result without being offered the tools. So ``FunctionAgent`` runs over such a pair: tool
steps go large, the others are routed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection

from shared_router.errors import RoutingError

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = [
    "TOOLS_KWARG",
    "ChatMethod",
    "ToolRequest",
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


def tool_route(
    tools: ToolRequest | None,
    messages: Sequence[ChatMessage],
    *,
    small_calls_tools: bool,
    large_calls_tools: bool,
    names: tuple[str, str],
) -> str | None:
    """Why a call must go large because of its tools, or None when it may go either way.

    Args:
        tools: The call's tool request, or None.
        messages: The call's chat.
        small_calls_tools: Whether the small model is a function-calling model.
        large_calls_tools: Whether the large model is one.
        names: The two models' names, for the error.

    Raises:
        RoutingError: If the call has tools and neither model calls tools.
    """
    if tools is None or small_calls_tools:
        return None
    if not large_calls_tools:
        raise RoutingError(
            f"tool calling needs a function-calling model, but neither {names[0]!r} nor "
            f"{names[1]!r} is one (a FunctionCallingLLM whose metadata.is_function_calling_model "
            "is True)"
        )
    if messages and messages[-1].role == MessageRole.TOOL:
        return None  # a step after a tool's result: either model may answer from it
    return _NO_TOOLS_REASON


def chat_invoker(
    method: ChatMethod,
    messages: Sequence[ChatMessage],
    tools: ToolRequest | None,
    kwargs: dict[str, Any],
    calls_tools: Callable[[LLM], bool],
) -> Callable[[LLM], Any]:
    """The call of one chat method on whichever model is chosen, with its tools if any.

    Args:
        method: The chat method HybridLLM was called through.
        messages: The chat.
        tools: The tool request, or None for a plain chat.
        kwargs: The other keyword arguments of the call.
        calls_tools: Whether a model is a function-calling model.

    Returns:
        A function that runs the call on the model it is given (a model that does not call
        tools is called without them, see the module's doc).
    """

    def invoke(model: LLM) -> Any:
        if tools is None or not calls_tools(model):
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

    A model that does not call tools made none: ``[]``, or an error when one is required.

    Raises:
        RoutingError: If ``model`` is not a function-calling LLM and ``error_on_no_tool_call``.
    """
    if not isinstance(model, FunctionCallingLLM):
        if not error_on_no_tool_call:
            return []
        raise RoutingError(
            f"{model.class_name()!r} answered and is not a FunctionCallingLLM, "
            "so it has no tool calls to read"
        )
    return model.get_tool_calls_from_response(
        response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
    )
