"""A routed stream: the chosen model's chunks pass through, and a last chunk carries the record.

The inner model's own last chunk is passed on as an ordinary chunk, so that the chunk with
``response_metadata["routing"]`` is the stream's last one; :class:`StreamTally` adds up what
that record needs (usage, the answering model's name) on the way.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessageChunk, BaseMessage

from shared_router.types import RoutingRecord

__all__ = ["StreamTally"]


class StreamTally:
    """What a stream needs for its routing record: usage, model name, content kind.

    Args:
        keep_text: Also keep the streamed text (:attr:`text`, for shadow evaluation).
    """

    __slots__ = (
        "chunks",
        "input_tokens",
        "list_content",
        "message_id",
        "model_name",
        "output_tokens",
        "texts",
        "total_cost",
    )

    def __init__(self, *, keep_text: bool = False) -> None:
        self.chunks = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.model_name: str | None = None
        self.message_id: str | None = None
        self.list_content = False
        self.total_cost: float | None = None
        self.texts: list[str] | None = [] if keep_text else None

    @property
    def text(self) -> str:
        """The text streamed so far (empty unless made with ``keep_text=True``)."""
        return "".join(self.texts or ())

    @property
    def usage(self) -> dict[str, Any]:
        """The tokens counted so far, as ``usage_metadata`` names them."""
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }
        if self.total_cost is not None:
            usage["total_cost"] = self.total_cost
        return usage

    def add(self, chunk: BaseMessage) -> AIMessageChunk:
        """Count one inner chunk; return it as a chunk that is not the last one.

        Args:
            chunk: A chunk of the inner model's stream (a whole message, for a model that
                does not stream).

        Returns:
            The chunk to pass on.
        """
        self.chunks += 1
        usage = getattr(chunk, "usage_metadata", None)
        if usage:
            self.input_tokens += usage.get("input_tokens", 0)
            self.output_tokens += usage.get("output_tokens", 0)
            if "total_cost" in usage:
                self.total_cost = (self.total_cost or 0) + usage["total_cost"]
        name = chunk.response_metadata.get("model_name")
        if isinstance(name, str) and name:
            self.model_name = name
        self.list_content = isinstance(chunk.content, list)
        if chunk.id is not None:
            self.message_id = chunk.id
        if self.texts is not None:
            self.texts.append(str(chunk.text))
        return _not_last(chunk)

    def final_chunk(self, record: RoutingRecord) -> AIMessageChunk:
        """The stream's last chunk: no content, the routing record in its metadata."""
        return AIMessageChunk(
            content=[] if self.list_content else "",
            id=self.message_id,
            response_metadata={"routing": record.as_dict()},
            chunk_position="last",
        )


def _not_last(chunk: BaseMessage) -> AIMessageChunk:
    if not isinstance(chunk, AIMessageChunk):  # a model without streaming gives a message
        fields = chunk.model_dump(exclude={"type"})
        return AIMessageChunk(**fields)
    if chunk.chunk_position == "last":
        return chunk.model_copy(update={"chunk_position": None})
    return chunk
