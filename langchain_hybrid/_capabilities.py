"""What the inner models support: tool calling, structured output, an async API.

A feature the large model lacks cannot be offered at all (any call may be routed to it); a
feature only the large model has sends such calls to it, with a reason the routing record
shows. A model without its own async API is called through its sync API on a thread pool of
ChatHybrid's (:meth:`~shared_router.routing.serving.RoutingService.run_sync`), not through
langchain-core's default async path, which would run it on the event loop's default executor.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

__all__ = [
    "generates_sync_only",
    "needs_large",
    "only_large",
    "streams_sync_only",
    "takes_structured_output",
    "takes_tools",
]


def generates_sync_only(model: BaseChatModel) -> bool:
    """Whether ``model`` answers only synchronously (``_generate`` without ``_agenerate``)."""
    return type(model)._agenerate is BaseChatModel._agenerate


def streams_sync_only(model: BaseChatModel) -> bool:
    """Whether ``model`` has no async stream of its own (no ``_astream``)."""
    return type(model)._astream is BaseChatModel._astream


def takes_tools(model: BaseChatModel) -> bool:
    """Whether ``model`` implements ``bind_tools``."""
    return type(model).bind_tools is not BaseChatModel.bind_tools


def takes_structured_output(model: BaseChatModel) -> bool:
    """Whether ``model`` implements ``with_structured_output`` (directly or through tools)."""
    overridden = type(model).with_structured_output is not BaseChatModel.with_structured_output
    return overridden or takes_tools(model)


def only_large(feature: str, small: BaseChatModel) -> str:
    """The routing reason of a call that goes large because the small model lacks ``feature``."""
    return f"only the large model supports {feature} ({type(small).__name__} does not)"


def needs_large(feature: str, large: BaseChatModel) -> str:
    """The error message when the large model lacks ``feature``."""
    return (
        f"ChatHybrid needs the large model to support {feature}, because any call may be "
        f"routed to it; {type(large).__name__} does not"
    )
