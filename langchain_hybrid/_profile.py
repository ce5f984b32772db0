"""ChatHybrid's model profile: what both inner models can do, and the smaller limits.

LangChain reads a chat model's ``profile`` (``create_agent`` picks its structured-output
strategy from it, ``trim_messages``-style code its ``max_input_tokens``). Any call may go to
either inner model, so ChatHybrid supports a capability only where both do, and its token
limits are the smaller of the two.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel, ModelProfile

__all__ = ["shared_profile"]

_LIMITS = frozenset({"max_input_tokens", "max_output_tokens"})


def shared_profile(small: BaseChatModel | None, large: BaseChatModel | None) -> ModelProfile | None:
    """The profile of a pair: capabilities both have, limits the smaller of the two.

    Args:
        small: The chat model under the small model's wrappers (None: chosen per call).
        large: The same for the large model.

    Returns:
        The keys both profiles have: a capability (a bool) is true when both are true, a
        limit (``max_input_tokens``, ``max_output_tokens``) is the smaller value;
        descriptive keys (name, dates, ...) are left out. None when either model has no
        profile.
    """
    first = small.profile if small is not None else None
    second = large.profile if large is not None else None
    if not first or not second:
        return None
    shared: dict[str, Any] = {}
    for key in first.keys() & second.keys():
        mine, theirs = first[key], second[key]  # type: ignore[literal-required]
        if key in _LIMITS and isinstance(mine, int) and isinstance(theirs, int):
            shared[key] = min(mine, theirs)
        elif isinstance(mine, bool) and isinstance(theirs, bool) and key != "open_weights":
            shared[key] = mine and theirs
    profile: ModelProfile = ModelProfile(**shared)  # type: ignore[typeddict-item]
    return profile
