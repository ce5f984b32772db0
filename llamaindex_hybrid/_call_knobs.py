"""Quality levels: checked, and for one block of calls private to each thread and task.

:func:`checked_knobs` is the check every level HybridLLM takes goes through (the
constructor, an assigned field, ``model_copy``, a per-call keyword, ``quality()``).
:meth:`HybridLLM.quality` stores a level per HybridLLM (by ``id``) in a context variable, so
that other threads and tasks keep theirs; tasks started inside the block inherit it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

from shared_router.types import QualityKnobs

__all__ = ["call_knobs", "checked_knobs", "knobs_in_block"]

_CALL_KNOBS: ContextVar[Mapping[int, QualityKnobs]] = ContextVar(
    "llamaindex_hybrid_call_knobs", default=MappingProxyType({})
)


def checked_knobs(
    max_quality_drop: object = None, large_share: object = None, threshold: object = None
) -> QualityKnobs:
    """The level the three knobs give, or a :class:`~shared_router.errors.KnobError`.

    Raises:
        KnobError: If a knob is not a number, out of range, or more than one is given.
    """
    return QualityKnobs(max_quality_drop, large_share, threshold)  # type: ignore[arg-type]


@contextmanager
def knobs_in_block(owner: object, knobs: QualityKnobs) -> Iterator[None]:
    """Use ``knobs`` for ``owner``'s calls inside the ``with`` block.

    Args:
        owner: The HybridLLM the level is for.
        knobs: The level.

    Yields:
        Nothing; calls in the block see the level through :func:`call_knobs`.
    """
    token = _CALL_KNOBS.set(MappingProxyType({**_CALL_KNOBS.get(), id(owner): knobs}))
    try:
        yield
    finally:
        _CALL_KNOBS.reset(token)


def call_knobs(owner: object, own: QualityKnobs) -> QualityKnobs:
    """The level of ``owner``'s call here: the block's, where one is set, else ``own``."""
    return _CALL_KNOBS.get().get(id(owner), QualityKnobs()).or_else(own)
