"""Shadow evaluation of HybridLLM's answered calls (with ``live=LiveSettings(...)``).

After a call has answered, :func:`offer_shadow` offers it to the live loop
(:class:`~shared_router.live.serving_loop.LiveLoop`), which draws whether it is shadowed and,
if so, makes the same call on the model that did not answer on its own background thread
(through the model's sync API): the caller's response is already on its way and never waits
for, or fails because of, that call. Answers without text (tool calls), answers the large
model gave because the small one failed, and calls the router did not score are not
shadowed. Both responses' token usage goes with them, so that with ``prices=`` the live loop
prices them per token.
"""

from __future__ import annotations

from collections.abc import Callable

from llama_index.core.base.llms.types import ChatResponse, CompletionResponse, ToolCallBlock

from llamaindex_hybrid._responses import token_usage
from shared_router.routing.accounting import TokenUsage
from shared_router.routing.live_hook import ShadowAnswer
from shared_router.routing.serving import Routed, RoutingService
from shared_router.types import ModelChoice, other_model

__all__ = ["Response", "offer_shadow", "reported_usage", "response_text"]

Response = ChatResponse | CompletionResponse


def response_text(response: Response | None) -> str | None:
    """A response's answer text, or None for one without text or with tool calls."""
    if response is None:
        return None
    if isinstance(response, CompletionResponse):
        return response.text or None
    message = response.message
    if message.additional_kwargs.get("tool_calls") or any(
        isinstance(block, ToolCallBlock) for block in message.blocks
    ):
        return None
    return message.content or None


def offer_shadow(
    service: RoutingService,
    routed: Routed,
    answered_by: ModelChoice,
    fell_back: bool,
    response: Response | None,
    call_other: Callable[[ModelChoice], Response | None],
    reference: str | None = None,
) -> bool:
    """Offer an answered call to the service's live loop, if it has one (returns at once).

    Args:
        service: The routing service that decided the call.
        routed: The call's decision.
        answered_by: The model whose response the caller got.
        fell_back: Whether the large model answered because the small one failed.
        response: That response (a stream's last chunk).
        call_other: Makes the same call on a model and returns its response (a stream's
            last chunk), run on the live loop's thread.
        reference: The caller's reference answer (``reference=`` on the call), for the judge.

    Returns:
        True when the call's shadow work was queued.
    """
    if service.live is None or fell_back:
        return False
    text = response_text(response)
    if text is None:
        return False
    other = other_model(answered_by)

    def shadow_call() -> ShadowAnswer:
        shadowed = call_other(other)
        return ShadowAnswer(response_text(shadowed) or "", reported_usage(shadowed))

    return service.live.offer(
        routed,
        answered_by,
        text,
        shadow_call,
        reference=reference,
        usage=reported_usage(response),
        prices=service.prices,
    )


def reported_usage(response: Response | None) -> TokenUsage | None:
    """The tokens a response reports using (:func:`token_usage`), or None when it reports none."""
    tokens_in, tokens_out = token_usage(response)
    if tokens_in is None and tokens_out is None:
        return None
    return TokenUsage.reported(tokens_in, tokens_out)
