"""What an answer-quality metric is: the items it scores, its verdicts, its interface.

An answer-quality metric grades one model response as a number in [0, 1] (the pipeline's
``judge`` stage writes these as the responses' ``score``); it is not a routing evaluation
(:mod:`shared_router.evaluation` measures routers). The metrics themselves live in
:mod:`shared_router.pipeline.quality_lexical`, :mod:`shared_router.pipeline.quality_model_based`
and :mod:`shared_router.pipeline.quality_llm_judge`; :mod:`shared_router.pipeline.quality_metrics`
names them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from shared_router.errors import DataError

__all__ = ["Judgement", "QualityMetric", "ScoreItem", "require_reference"]


@dataclass(frozen=True)
class ScoreItem:
    """One response to score.

    Attributes:
        query: The prompt the response answers.
        response: The response.
        reference: The reference answer, or None.
    """

    query: str
    response: str
    reference: str | None = None


@dataclass(frozen=True)
class Judgement:
    """A metric's verdict on one response.

    Attributes:
        score: The quality in [0, 1], or None when it could not be scored.
        error: Why there is no score, or None.
    """

    score: float | None
    error: str | None = None


class QualityMetric(ABC):
    """A quality metric: scores responses in [0, 1]."""

    name: ClassVar[str]

    @property
    def needs_reference(self) -> bool:
        """Whether every item must carry a reference answer."""
        return True

    @abstractmethod
    def score_batch(self, items: Sequence[ScoreItem]) -> list[Judgement]:
        """Score a batch of responses.

        Args:
            items: The responses with their queries and references.

        Returns:
            One judgement per item, in order.
        """

    def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Release what the metric holds (event loop, model); the default holds nothing."""


def require_reference(item: ScoreItem, metric: str) -> str:
    """The item's reference answer.

    Args:
        item: The response to score.
        metric: The metric's name, for the message.

    Raises:
        DataError: If the item has no reference.
    """
    if item.reference is None:
        raise DataError(f"metric {metric!r} needs a reference answer for every response")
    return item.reference
