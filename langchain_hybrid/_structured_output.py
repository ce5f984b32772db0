"""Structured output through the chosen model's own ``with_structured_output``.

Each model formats the schema its own way (and takes its own ``method``). Both runnables are
asked for ``include_raw=True``, so that the raw message carries the routing record and a
small-model answer that does not parse can count as a failure (the large model answers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from langchain_hybrid._capabilities import only_large, takes_structured_output
from langchain_hybrid._inner_models import InnerModel, with_schema

__all__ = ["StructuredOutput", "raise_if_unparsed", "structured_value"]


class StructuredOutput:
    """Structured output for one schema, bound on whichever model a call runs.

    Args:
        small: The small model.
        large: The large model, known to support structured output.
        schema: The output schema.
        include_raw: Whether the caller asked for ``{"raw", "parsed", "parsing_error"}``.
        options: The other ``with_structured_output`` arguments (``method``, ...).

    Attributes:
        include_raw: As given.
        force_large: Why every call goes large (the small model cannot take the schema or
            these arguments), or None.
    """

    def __init__(
        self,
        small: InnerModel,
        large: InnerModel,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool,
        options: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.options = dict(options)
        self.include_raw = include_raw
        # Bound now on the models as given (a configurable one is bound per call); the large
        # model's binding raises when it refuses these arguments.
        self._bound: dict[int, tuple[InnerModel, InnerModel]] = {}
        self._bind(large, remember=True)
        self.force_large: str | None = None
        if not takes_structured_output(small):
            self.force_large = only_large("structured output", small)
        else:
            # The large model accepted these arguments; if the small one refuses them, it
            # cannot take this schema or method, and such calls go large.
            try:
                self._bind(small, remember=True)
            except (NotImplementedError, ValueError):
                self.force_large = only_large("structured output", small)

    def _bind(self, model: InnerModel, *, remember: bool = False) -> InnerModel:
        known = self._bound.get(id(model))
        if known is not None and known[0] is model:
            return known[1]
        runnable = with_schema(model, self.schema, self.options)
        if remember:
            self._bound[id(model)] = (model, runnable)
        return runnable

    def runnable(self, model: InnerModel) -> Runnable[LanguageModelInput, Any]:
        """``model``'s structured-output runnable (bound once for the models as given; a
        model a call's ``configurable`` selects is bound for that call)."""
        return self._bind(model)


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
