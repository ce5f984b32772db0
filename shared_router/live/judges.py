"""Judges of a shadowed call: both models' answers to one request, scored in [0, 1].

A judge takes a :class:`ShadowCase` (the request, the small and the large model's answers,
the caller's reference answer when there is one) and returns a :class:`PairScores`, or raises
when it cannot score (the evaluator counts that in ``judge_errors`` and keeps nothing):

- :class:`PointwiseJudge` grades each answer alone with one of the pipeline's answer-quality
  metrics (:mod:`shared_router.pipeline.quality_metrics`: a reference ``match``, ``embedding``
  similarity, ``rouge``, the pointwise LLM ``judge``, a ``module:fn`` callable);
- :class:`PairwiseJudge` shows an LLM both answers, in a random order (so that a judge's
  preference for the first or second answer cannot favour one model), and asks which is
  better; the loser gets 0, the winner 1, a tie 1 each (both good enough);
- :class:`CallableJudge` is any ``fn(case) -> (small_quality, large_quality)``.
"""

from __future__ import annotations

import math
import random
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, cast

from shared_router.errors import DataError
from shared_router.pipeline.quality_base import QualityMetric, ScoreItem

__all__ = [
    "CallableJudge",
    "PairScores",
    "PairwiseJudge",
    "PointwiseJudge",
    "ShadowCase",
    "ShadowJudge",
    "pair_scores",
]


@dataclass(frozen=True)
class ShadowCase:
    """What a judge sees of one shadowed call.

    Attributes:
        request_id: The id of the request in the store (a fresh one per adapter call).
        query: The routed text, not the raw prompt: by default the last user turn
            (:func:`~shared_router.routing.text.routing_text`; ``routed_text="conversation"``:
            every turn, each prefixed with its role), stripped of surrounding whitespace,
            clipped to 4,000 characters (head and tail), lone surrogates replaced. A judge
            that looks data up by the prompt the caller sent misses such calls; give it what
            it needs as the call's ``reference`` instead (docs/live.md, "Reference answers").
        small_answer: The small model's answer.
        large_answer: The large model's answer.
        reference: The caller's reference answer, or None.
    """

    request_id: str
    query: str
    small_answer: str
    large_answer: str
    reference: str | None = None


@dataclass(frozen=True)
class PairScores:
    """Both models' qualities on one request, each in [0, 1].

    Raises:
        DataError: When a quality is not a number in [0, 1].
    """

    small_quality: float
    large_quality: float

    def __post_init__(self) -> None:
        for name in ("small_quality", "large_quality"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DataError(f"a judge's {name} must be a number in [0, 1], got {value!r}")
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise DataError(f"a judge's {name} must lie in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))


class ShadowJudge(Protocol):
    """Scores both answers of a shadowed call; raises when it cannot."""

    def __call__(self, case: ShadowCase) -> PairScores:
        """Return both qualities."""
        ...


class PointwiseJudge:
    """Grades each answer alone with an answer-quality metric of the pipeline.

    Args:
        metric: A :class:`~shared_router.pipeline.quality_base.QualityMetric` (for example
            ``MetricSpec("match").build()`` when callers give reference answers).
    """

    def __init__(self, metric: QualityMetric) -> None:
        self.metric = metric

    def __call__(self, case: ShadowCase) -> PairScores:
        """Score both answers in one batch.

        Raises:
            DataError: When the metric needs a reference and the case has none, or the
                metric could not score an answer (its error is in the message).
        """
        if self.metric.needs_reference and case.reference is None:
            raise DataError(
                f"judge metric {self.metric.name!r} needs a reference answer; request "
                f"{case.request_id!r} came without one"
            )
        items = [
            ScoreItem(case.query, case.small_answer, case.reference),
            ScoreItem(case.query, case.large_answer, case.reference),
        ]
        small, large = self.metric.score_batch(items)
        if small.score is None or large.score is None:
            raise DataError(
                f"judge metric {self.metric.name!r} could not score request "
                f"{case.request_id!r}: {small.error or large.error}"
            )
        return PairScores(small.score, large.score)


_VERDICT = re.compile(r"winner\s*:\s*(A|B|tie)\b", re.IGNORECASE)

PAIRWISE_PROMPT = (
    "You compare two AI assistants' responses to the same user query. Judge correctness "
    "first, then completeness, relevance and clarity.\n\n"
    "Query:\n<<<\n{query}\n>>>\n\n{reference}"
    "Response A:\n<<<\n{first}\n>>>\n\nResponse B:\n<<<\n{second}\n>>>\n\n"
    'Reply with your verdict on the last line as "Winner: A", "Winner: B" or "Winner: tie" '
    "(tie when both are equally good or equally bad)."
)
"""The pairwise judge's prompt (``{query}``, ``{reference}``, ``{first}``, ``{second}``)."""


class PairwiseJudge:
    """An LLM sees both answers in a random order and names the better one.

    The order is drawn per call (seeded), so a judge that prefers the first answer favours
    each model equally often. Scores: the winner 1 and the loser 0; a tie 1 for both.

    Args:
        ask: Sends a prompt to the judge model and returns its reply (a blocking call).
        seed: Seed of the order draws (None: unseeded).
        attempts: Tries when the reply names no verdict.
    """

    def __init__(
        self, ask: Callable[[str], str], *, seed: int | None = None, attempts: int = 2
    ) -> None:
        if attempts < 1:
            raise DataError(f"attempts must be >= 1, got {attempts!r}")
        self.ask = ask
        self.attempts = attempts
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def prompt(self, case: ShadowCase, small_first: bool) -> str:
        """The prompt for one case, with the small model's answer first or second."""
        first, second = (
            (case.small_answer, case.large_answer)
            if small_first
            else (case.large_answer, case.small_answer)
        )
        reference = (
            f"Reference answer:\n<<<\n{case.reference}\n>>>\n\n"
            if case.reference is not None
            else ""
        )
        return PAIRWISE_PROMPT.format(
            query=case.query, reference=reference, first=first, second=second
        )

    def __call__(self, case: ShadowCase) -> PairScores:
        """Ask the judge which answer is better.

        Raises:
            DataError: When no reply names a verdict after ``attempts`` tries.
        """
        with self._lock:
            small_first = self._rng.random() < 0.5
        prompt = self.prompt(case, small_first)
        reply = ""
        for _ in range(self.attempts):
            reply = self.ask(prompt)
            found = _VERDICT.findall(reply)
            if not found:
                continue
            verdict = found[-1].lower()
            if verdict == "tie":
                return PairScores(1.0, 1.0)
            small_won = (verdict == "a") == small_first
            return PairScores(1.0, 0.0) if small_won else PairScores(0.0, 1.0)
        raise DataError(
            f"the pairwise judge named no winner for request {case.request_id!r} after "
            f"{self.attempts} tries; last reply: {reply[-200:]!r}"
        )


class CallableJudge:
    """Any function ``fn(case) -> (small_quality, large_quality)``.

    Args:
        function: The judge; a :class:`PairScores` is accepted too.
    """

    def __init__(self, function: Callable[[ShadowCase], tuple[float, float] | PairScores]) -> None:
        self.function = function

    def __call__(self, case: ShadowCase) -> PairScores:
        """Call the function and check its two qualities."""
        return pair_scores(self.function(case))


def pair_scores(value: object) -> PairScores:
    """A judge's result as :class:`PairScores`: one, or a pair (small_quality, large_quality).

    Raises:
        DataError: For anything else, naming what was received.
    """
    if isinstance(value, PairScores):
        return value
    if isinstance(value, (Mapping, str, bytes)):  # would unpack into keys or characters
        raise DataError(
            "a judge must return PairScores or (small_quality, large_quality), got "
            f"{type(value).__name__} {value!r:.120}"
        )
    try:
        small, large = cast("tuple[float, float]", value)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"a judge must return PairScores or (small_quality, large_quality), got {value!r}"
        ) from exc
    return PairScores(small, large)
