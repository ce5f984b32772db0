"""Shadow evaluation of ChatHybrid's answered calls (with ``live=LiveSettings(...)``).

After a call has answered, :func:`offer_shadow` offers it to the live loop
(:class:`~shared_router.live.serving_loop.LiveLoop`), which draws whether it is shadowed and,
if so, calls the model that did not answer on the same messages on its own background
thread: the caller's answer is already on its way and never waits for, or fails because of,
that call. The shadow call runs outside the caller's run (tagged ``hybrid:shadow``), with
the call's stop sequences and provider arguments. Calls with tools, calls the large model
answered because the small one failed, and calls the router did not score are not shadowed.
A call's reference answer (``reference=``, or ``metadata["reference"]`` in its config) goes
to the judge (:func:`call_reference`). Both calls' ``usage_metadata`` go with them, so that
with ``prices=`` the live loop prices them per token (an answer from an LLM cache cost
nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig

from langchain_hybrid._call_plan import CallPlan
from langchain_hybrid._fallback import Answer
from langchain_hybrid._records import from_llm_cache
from shared_router.live.settings import REFERENCE_KEYWORD, checked_reference
from shared_router.routing.accounting import TokenUsage
from shared_router.routing.live_hook import ShadowAnswer
from shared_router.routing.serving import RoutingService
from shared_router.types import other_model

__all__ = ["SHADOW_TAG", "call_reference", "config_reference", "offer_shadow", "token_usage"]

SHADOW_TAG = "hybrid:shadow"
"""The tag of a shadow call's run."""


def config_reference(config: Mapping[str, Any]) -> Any:
    """The reference answer a chain put in the config's ``metadata``, or None (unchecked)."""
    return (config.get("metadata") or {}).get(REFERENCE_KEYWORD)


def call_reference(config: Mapping[str, Any], kwargs: dict[str, Any]) -> str | None:
    """Take the call's reference answer out of ``kwargs`` (else the config's ``metadata``).

    A chain passes it with ``config={"metadata": {"reference": ...}}``; a direct call or
    ``bind`` with ``reference=...``. It goes to the shadow judge, never to a model.

    Raises:
        ConfigurationError: For a reference that is not a string.
    """
    given = kwargs.pop(REFERENCE_KEYWORD, None)
    return checked_reference(config_reference(config) if given is None else given)


def offer_shadow(
    service: RoutingService,
    plan: CallPlan,
    messages: Sequence[BaseMessage],
    stop: list[str] | None,
    answer: Answer[Any],
    text: str,
    usage: Mapping[str, Any] | None,
) -> bool:
    """Offer an answered call to the service's live loop, if it has one (returns at once).

    Args:
        service: The routing service that decided the call.
        plan: The call's plan (its decision, models and provider arguments).
        messages: The call's messages.
        stop: Its stop sequences.
        answer: Which model answered (and whether it was a fallback).
        text: The answer's text.
        usage: Its ``usage_metadata`` (``input_tokens``, ``output_tokens``), where reported.

    Returns:
        True when the call's shadow work was queued.
    """
    if service.live is None or plan.tools is not None or answer.failure is not None:
        return False
    target = plan.target(other_model(answer.choice))
    kwargs = dict(plan.kwargs)
    config = RunnableConfig(tags=[SHADOW_TAG], metadata={"hybrid_shadow_of": answer.choice})

    def call_other() -> ShadowAnswer:
        message = target.invoke(list(messages), config, stop=stop, **kwargs)
        return ShadowAnswer(
            str(message.text), token_usage(getattr(message, "usage_metadata", None))
        )

    return service.live.offer(
        plan.routed,
        answer.choice,
        text,
        call_other,
        reference=plan.reference,
        usage=token_usage(usage),
        prices=service.prices,
    )


def token_usage(usage: Mapping[str, Any] | None) -> TokenUsage | None:
    """A message's ``usage_metadata`` as a :class:`TokenUsage`; None where none was reported
    or the answer came from an LLM cache (it cost nothing)."""
    if not usage or from_llm_cache(usage):
        return None
    return TokenUsage.reported(usage.get("input_tokens"), usage.get("output_tokens"))
