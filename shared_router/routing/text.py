"""The one place that turns a text or a conversation into what routing works on.

Both adapters reduce their message types to ``(role, text)`` turns and call
:func:`routing_text` for the text that is routed (the encoder then clips tokens the same way,
head and tail; clipping by characters first keeps routing time bounded for huge inputs).
Sticky routing keys a conversation on an id the caller gives (each adapter documents where
it reads it from), never on the conversation's text.

Both apply the project's policy for unencodable text
(:func:`shared_router._internal.validation.encodable_text`): a lone surrogate becomes U+FFFD,
so that no text makes routing fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from shared_router._internal.validation import encodable_text
from shared_router.errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_CHARS",
    "RoutedTextMode",
    "clip_head_tail",
    "routing_text",
]

RoutedTextMode = Literal["last_user", "conversation"]
DEFAULT_MAX_CHARS = 4000
_HEAD_FRACTION = 0.25
_ELISION = "\n...\n"
_USER_ROLES = frozenset({"user", "human"})


def clip_head_tail(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Shorten ``text`` to at most ``max_chars`` characters, keeping its start and its end.

    The question is often at the end of a prompt (after instructions or context), so a
    quarter of the budget keeps the start and the rest keeps the end.

    Args:
        text: Any text.
        max_chars: The most characters to keep; at least 16.

    Returns:
        ``text`` itself when short enough, else its head and tail joined by an elision mark.

    Raises:
        ConfigurationError: If ``max_chars`` is below 16.
    """
    if max_chars < 16:
        raise ConfigurationError(f"max_chars must be at least 16, got {max_chars}")
    if len(text) <= max_chars:
        return text
    budget = max_chars - len(_ELISION)
    head = int(budget * _HEAD_FRACTION)
    tail = budget - head
    return text[:head] + _ELISION + text[len(text) - tail :]


def routing_text(
    turns: Sequence[tuple[str, str]],
    *,
    mode: RoutedTextMode = "last_user",
    max_chars: int = DEFAULT_MAX_CHARS,
) -> str:
    """Return the text a router should score for a conversation.

    Args:
        turns: ``(role, text)`` pairs in order; roles such as ``"system"``, ``"user"``
            (or ``"human"``), ``"assistant"``, ``"tool"``. Turns without text may have ``""``.
        mode: ``"last_user"`` routes on the last user turn that has text (falling back to the
            whole conversation when no user turn has text); ``"conversation"`` routes on every
            turn, each prefixed with its role.
        max_chars: Bound on the returned text (head and tail kept), so that a huge
            conversation is routed in bounded time.

    Returns:
        The text to route (lone surrogates replaced by U+FFFD); ``""`` when no turn has any
        text.

    Raises:
        ConfigurationError: If ``mode`` is not one of the two modes.
    """
    if mode not in ("last_user", "conversation"):
        raise ConfigurationError(f"mode must be 'last_user' or 'conversation', got {mode!r}")
    if mode == "last_user":
        for role, text in reversed(turns):
            if role.lower() in _USER_ROLES and text.strip():
                return encodable_text(clip_head_tail(text.strip(), max_chars))
    parts = [f"{role}: {text.strip()}" for role, text in turns if text.strip()]
    return encodable_text(clip_head_tail("\n".join(parts), max_chars))
