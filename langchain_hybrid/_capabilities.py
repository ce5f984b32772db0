"""What the inner models support: tool calling, structured output, an async API, a window.

A feature the large model lacks cannot be offered at all (any call may be routed to it); a
feature only the large model has sends such calls to it, with a reason the routing record
shows. A model without its own async API is called through its sync API on a thread pool of
ChatHybrid's (:meth:`~shared_router.routing.serving.RoutingService.run_sync`), not through
langchain-core's default async path, which would run it on the event loop's default executor.
Each question is asked of the chat model under an inner model's wrappers
(:func:`~langchain_hybrid._inner_models.chat_model_of`); ``init_chat_model``'s configurable
model, whose model is chosen per call, is taken to support tools and structured output (a
model that does not raises when the call is made) and to have its own async API.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from langchain_hybrid._inner_models import InnerModel, chat_model_of

__all__ = [
    "context_window",
    "generates_sync_only",
    "model_type",
    "needs_large",
    "only_large",
    "streams_sync_only",
    "takes_structured_output",
    "takes_tools",
]


def generates_sync_only(model: InnerModel) -> bool:
    """Whether ``model`` answers only synchronously (``_generate`` without ``_agenerate``)."""
    chat = chat_model_of(model)
    return chat is not None and type(chat)._agenerate is BaseChatModel._agenerate


def streams_sync_only(model: InnerModel) -> bool:
    """Whether ``model`` has no async stream of its own (no ``_astream``)."""
    chat = chat_model_of(model)
    return chat is not None and type(chat)._astream is BaseChatModel._astream


def takes_tools(model: InnerModel) -> bool:
    """Whether ``model`` implements ``bind_tools``."""
    chat = chat_model_of(model)
    return chat is None or type(chat).bind_tools is not BaseChatModel.bind_tools


def takes_structured_output(model: InnerModel) -> bool:
    """Whether ``model`` implements ``with_structured_output`` (directly or through tools)."""
    chat = chat_model_of(model)
    if chat is None:
        return True
    overridden = type(chat).with_structured_output is not BaseChatModel.with_structured_output
    return overridden or takes_tools(chat)


def context_window(model: InnerModel) -> int | None:
    """The most input tokens ``model``'s profile allows, or None where it says nothing."""
    chat = chat_model_of(model)
    profile = chat.profile if chat is not None else None
    window = profile.get("max_input_tokens") if profile else None
    return window if isinstance(window, int) and window > 0 else None


def model_type(model: InnerModel) -> str:
    """The class name of the chat model under ``model``'s wrappers, for messages."""
    return type(chat_model_of(model) or model).__name__


def only_large(feature: str, small: InnerModel) -> str:
    """The routing reason of a call that goes large because the small model lacks ``feature``."""
    return f"only the large model supports {feature} ({model_type(small)} does not)"


def needs_large(feature: str, large: InnerModel) -> str:
    """The error message when the large model lacks ``feature``."""
    return (
        f"ChatHybrid needs the large model to support {feature}, because any call may be "
        f"routed to it; {model_type(large)} does not"
    )
