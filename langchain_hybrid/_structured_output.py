"""Structured output through the chosen model's own ``with_structured_output``.

Each model formats the schema its own way (and takes its own ``method``). Both runnables are
asked for ``include_raw=True``, so that the raw message carries the routing record and a
small-model answer that does not parse can count as a failure (the large model answers).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from langchain_hybrid._capabilities import only_large, takes_structured_output
from shared_router.types import ModelChoice

__all__ = ["StructuredOutput", "raise_if_unparsed", "structured_value"]


@dataclass(frozen=True)
class StructuredOutput:
    """The two models' structured-output runnables for one schema.

    Attributes:
        small: The small model's runnable, or None when it cannot take the schema.
        large: The large model's runnable.
        include_raw: Whether the caller asked for ``{"raw", "parsed", "parsing_error"}``.
        force_large: Why every call goes large (the small model cannot take the schema),
            or None.
    """

    small: Runnable[LanguageModelInput, Any] | None
    large: Runnable[LanguageModelInput, Any]
    include_raw: bool
    force_large: str | None

    @classmethod
    def for_schema(
        cls,
        small: BaseChatModel,
        large: BaseChatModel,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool,
        options: Mapping[str, Any],
    ) -> StructuredOutput:
        """Bind ``schema`` on both models (on the small one where it takes the arguments).

        Args:
            small: The small chat model.
            large: The large chat model, known to support structured output.
            schema: The output schema.
            include_raw: Whether the caller wants the raw message too.
            options: The other ``with_structured_output`` arguments (``method``, ...).

        Returns:
            The runnables.
        """
        bound_large = large.with_structured_output(schema, include_raw=True, **options)
        bound_small = None
        if takes_structured_output(small):
            # The large model accepted these arguments; if the small one refuses them, it
            # cannot take this schema or method, and such calls go large.
            with contextlib.suppress(NotImplementedError, ValueError):
                bound_small = small.with_structured_output(schema, include_raw=True, **options)
        reason = None if bound_small is not None else only_large("structured output", small)
        return cls(bound_small, bound_large, include_raw, reason)

    def runnable(self, choice: ModelChoice) -> Runnable[LanguageModelInput, Any]:
        """The runnable of the chosen model (the large one where the small one has none)."""
        return self.small if choice == "small" and self.small is not None else self.large


def raise_if_unparsed(result: dict[str, Any]) -> None:
    """Raise when a structured-output result did not parse, so that the large model answers.

    Raises:
        Exception: The result's parsing error, or :class:`OutputParserException` when it
            parsed to nothing.
    """
    if result["parsing_error"] is not None:
        raise result["parsing_error"]
    if result["parsed"] is None:
        raise OutputParserException("the small model returned no structured output")


def structured_value(result: dict[str, Any], raw: BaseMessage, *, include_raw: bool) -> Any:
    """What the caller gets: the parsed value, or the whole result with ``raw`` replaced.

    Args:
        result: The chosen model's ``{"raw", "parsed", "parsing_error"}``.
        raw: Its raw message with the routing record.
        include_raw: Whether the caller asked for the whole result.

    Returns:
        The parsed value, or the result with ``raw``.

    Raises:
        Exception: The parsing error, when the caller did not ask for the raw result.
    """
    if include_raw:
        return {**result, "raw": raw}
    if result["parsing_error"] is not None:
        raise result["parsing_error"]
    return result["parsed"]
