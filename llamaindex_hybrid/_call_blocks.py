"""Blocks of HybridLLM calls: a quality level, a conversation or the shadow judge's reference
answer, for the calls in a ``with``.

All are thread/task-local (:func:`~llamaindex_hybrid._call_knobs.knobs_in_block`,
:func:`~llamaindex_hybrid._routing_input.conversation_in_block`): other threads and asyncio
tasks are not affected, tasks started inside a block inherit it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

from llama_index.core.llms.function_calling import FunctionCallingLLM

from llamaindex_hybrid._call_knobs import checked_knobs, knobs_in_block
from llamaindex_hybrid._routing_input import conversation_in_block
from shared_router.errors import ConfigurationError, KnobError
from shared_router.live.settings import checked_reference

__all__ = ["CallBlocks", "block_reference"]

_REFERENCES: ContextVar[Mapping[int, str]] = ContextVar(
    "llamaindex_hybrid_reference", default=MappingProxyType({})
)


def block_reference(owner: object) -> str | None:
    """The reference answer of ``owner``'s ``reference()`` block here, or None."""
    return _REFERENCES.get().get(id(owner))


class CallBlocks(FunctionCallingLLM):
    """An LLM whose calls take a quality level or a conversation from a ``with`` block."""

    @contextmanager
    def quality(
        self,
        *,
        max_quality_drop: float | None = None,
        large_share: float | None = None,
        threshold: float | None = None,
    ) -> Iterator[None]:
        """Use another quality level for this LLM's calls inside a ``with`` block.

        The knob replaces the model's own for those calls only; other threads and asyncio
        tasks are not affected (tasks started inside the block inherit it). A knob given to
        one call (``llm.chat(messages, threshold=0.3)``) wins over the block's.

        Args:
            max_quality_drop: The most relative quality drop accepted.
            large_share: The share of calls for the large model.
            threshold: A raw threshold on p.

        Yields:
            Nothing; calls in the block use the level.

        Raises:
            KnobError: Unless exactly one knob is given, in range.
        """
        knobs = checked_knobs(max_quality_drop, large_share, threshold)
        if knobs.is_empty:
            raise KnobError("quality() needs one of max_quality_drop, large_share, threshold")
        with knobs_in_block(self, knobs):
            yield

    @contextmanager
    def reference(self, answer: str) -> Iterator[None]:
        """Give the shadow judge a reference answer for this LLM's calls inside a ``with`` block.

        For calls made by something else (a query engine, an agent) that cannot pass
        ``reference=`` to each call: with ``live=LiveSettings(...)``, a judge that compares
        with a reference (the ``match`` metric) grades the shadowed calls in the block against
        ``answer``. A ``reference=`` given to one call wins over the block's. Thread/task-local.

        Args:
            answer: The reference answer.

        Yields:
            Nothing; calls in the block carry the reference.

        Raises:
            ConfigurationError: If ``answer`` is not a string.
        """
        checked = checked_reference(answer)
        if checked is None:
            raise ConfigurationError("reference() needs the reference answer as a string, got None")
        token = _REFERENCES.set(MappingProxyType({**_REFERENCES.get(), id(self): checked}))
        try:
            yield
        finally:
            _REFERENCES.reset(token)

    @contextmanager
    def conversation(self, conversation_id: str) -> Iterator[None]:
        """Make this LLM's calls inside the ``with`` block one conversation, for ``sticky``.

        Use a session or user id: with ``sticky=True``, once a call of the conversation went
        to the large model, its later calls stay there. The block is thread/task-local and
        wins over a chat engine's memory (each chat engine is otherwise its own
        conversation).

        Args:
            conversation_id: The conversation's id.

        Yields:
            Nothing; calls in the block belong to the conversation.

        Raises:
            ConfigurationError: If the id is blank.
        """
        if not isinstance(conversation_id, str) or not conversation_id.strip():
            raise ConfigurationError(
                f"conversation() needs a non-empty id (a session or user id), got "
                f"{conversation_id!r}"
            )
        with conversation_in_block(self, conversation_id):
            yield
