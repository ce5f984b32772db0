"""Blocks of HybridLLM calls: a quality level, or a conversation, for the calls in a ``with``.

Both are thread/task-local (:func:`~llamaindex_hybrid._call_knobs.knobs_in_block`,
:func:`~llamaindex_hybrid._routing_input.conversation_in_block`): other threads and asyncio
tasks are not affected, tasks started inside a block inherit it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from llama_index.core.llms.function_calling import FunctionCallingLLM

from llamaindex_hybrid._call_knobs import checked_knobs, knobs_in_block
from llamaindex_hybrid._routing_input import conversation_in_block
from shared_router.errors import ConfigurationError, KnobError

__all__ = ["CallBlocks"]


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
