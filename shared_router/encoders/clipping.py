"""Clipping long texts to the encoder's word-piece budget, keeping their start and end.

:func:`clip_token_ids` is the rule every backend follows: the first quarter of the budget
from the start of a text, the rest from its end. :func:`clip_text_ids` applies it without
tokenizing all of a long text: the cost of a text is bounded whatever its size (a 10 MB
text is not tokenized whole to keep 254 word pieces of it).

How :func:`clip_text_ids` keeps the result of ``clip_token_ids(tokenize(text), budget)``:
a text longer than :data:`WINDOW_CHARS_PER_TOKEN` characters per word piece of the budget
is tokenized in two windows, its start and its end, each cut at whitespace (``" \\t\\n\\r"``).
A BERT tokenizer splits words at whitespace before it splits them into word pieces, so the
word pieces of a window cut at whitespace are exactly the first (or last) word pieces of the
whole text. When the windows hold enough word pieces (the head's share and the tail's), the
result is the same ids as clipping the whole text's; when they do not (text averaging more
than 8 characters per word piece) they grow, up to :data:`MAX_CHARS_PER_TOKEN` characters
per word piece. Two cases differ from tokenizing whole, both with bounded cost: a window
edge with no whitespace within 256 characters is cut inside a word (the word pieces of
that word can differ), and a text with more than :data:`MAX_CHARS_PER_TOKEN` characters
per word piece in a window keeps what the windows hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shared_router.errors import EncoderError

__all__ = [
    "CLIP_HEAD_SHARE",
    "MAX_CHARS_PER_TOKEN",
    "WINDOW_CHARS_PER_TOKEN",
    "clip_text_ids",
    "clip_token_ids",
]

CLIP_HEAD_SHARE = 0.25
"""Share of the word-piece budget :func:`clip_token_ids` gives to the start of a long text."""

WINDOW_CHARS_PER_TOKEN = 8
"""Texts over this many characters per word piece of the budget are tokenized in windows
(English averages 4-5 characters per word piece, so the windows hold about twice what
is kept)."""

MAX_CHARS_PER_TOKEN = 512
"""The most characters per word piece the windows grow to (a bound on the work per text)."""

_GROWTH = 4
_SEARCH = 256  # how far back (or on) a window edge looks for whitespace
_WHITESPACE = frozenset(" \t\n\r")


def clip_token_ids(ids: Sequence[int], budget: int) -> list[int]:
    """Clip a text's word-piece ids to ``budget`` ids, keeping its start and its end.

    When ``len(ids) > budget`` the result is the first ``head = floor(budget * 0.25)`` ids
    followed by the last ``budget - head`` ids; otherwise the ids are returned unchanged.
    ``ids`` are content ids only: add the special tokens ([CLS] ... [SEP]) after clipping,
    with ``budget = max_tokens - number of special tokens`` (2 for BERT).

    Example: ``clip_token_ids([1, 2, 3, 4, 5, 6, 7, 8, 9], 4) == [1, 7, 8, 9]``.

    Args:
        ids: Word-piece ids of one text, without special tokens.
        budget: How many ids to keep, >= 0.

    Returns:
        The clipped ids, a new list.

    Raises:
        EncoderError: If ``budget`` is negative.
    """
    if budget < 0:
        raise EncoderError(f"token budget must be >= 0, got {budget}")
    if len(ids) <= budget:
        return list(ids)
    head = int(budget * CLIP_HEAD_SHARE)
    tail = budget - head
    return [*ids[:head], *ids[len(ids) - tail :]]


def clip_text_ids(tokenize: Callable[[str], Sequence[int]], text: str, budget: int) -> list[int]:
    """``clip_token_ids(tokenize(text), budget)``, tokenizing at most a bounded part of ``text``.

    Args:
        tokenize: A text's content word-piece ids (no special tokens), for a tokenizer that
            splits words at whitespace first (BERT's).
        text: One text.
        budget: How many ids to keep, >= 0.

    Returns:
        At most ``budget`` ids; for a long text, its first and last word pieces as
        :func:`clip_token_ids` keeps them (see the module for the two exceptions).

    Raises:
        EncoderError: If ``budget`` is negative.
    """
    if budget < 0:
        raise EncoderError(f"token budget must be >= 0, got {budget}")
    head_count = int(budget * CLIP_HEAD_SHARE)
    tail_count = budget - head_count
    factor = WINDOW_CHARS_PER_TOKEN
    while budget and len(text) > factor * budget:
        # head_end <= factor * head_count < len(text) - factor * tail_count <= tail_start
        head_end = _cut_before(text, factor * head_count)
        tail_start = _cut_after(text, len(text) - factor * tail_count)
        head = list(tokenize(text[:head_end])) if head_count else []
        tail = list(tokenize(text[tail_start:]))
        if (len(head) >= head_count and len(tail) >= tail_count) or factor >= MAX_CHARS_PER_TOKEN:
            return [*head[:head_count], *tail[max(0, len(tail) - tail_count) :]]
        factor *= _GROWTH
    return clip_token_ids(tokenize(text), budget)


def _cut_before(text: str, position: int) -> int:
    """The index of the last whitespace at or before ``position`` (nearby), else ``position``."""
    for index in range(position, max(0, position - _SEARCH) - 1, -1):
        if text[index] in _WHITESPACE:
            return index
    return position


def _cut_after(text: str, position: int) -> int:
    """The index of the first whitespace at or after ``position`` (nearby), else ``position``."""
    for index in range(position, min(len(text), position + _SEARCH)):
        if text[index] in _WHITESPACE:
            return index
    return position
