"""Answer-quality metrics that compare a response's words with the reference answer.

No model is involved: :class:`MatchMetric` checks whether the answer in the response equals
the reference (exact, normalised, contained, numeric, multiple-choice letter or regex; the
answers are read with :mod:`shared_router.pipeline.answer_parsing`), :class:`RougeLMetric`
scores the longest common subsequence of words (:func:`rouge_l_f1`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from shared_router.errors import DataError
from shared_router.pipeline.answer_parsing import (
    extract_choice,
    extract_final_answer,
    extract_number,
    normalise_answer,
)
from shared_router.pipeline.quality_base import (
    Judgement,
    QualityMetric,
    ScoreItem,
    require_reference,
)

__all__ = ["MATCH_MODES", "MatchMetric", "RougeLMetric", "rouge_l_f1"]

MATCH_MODES = ("exact", "normalised", "contains", "numeric", "choice", "regex")


class MatchMetric(QualityMetric):
    """1.0 when the answer in the response matches the reference, else 0.0.

    Modes:
        ``exact``: the stripped texts are equal.
        ``normalised``: the final answers (``extract_final_answer``) are equal after
        ``normalise_answer`` (both in :mod:`shared_router.pipeline.answer_parsing`).
        ``contains``: the normalised reference appears as whole words in the normalised
        response.
        ``numeric``: the numbers (``extract_number``) are equal within ``tolerance``
        (relative above 1, absolute below).
        ``choice``: the multiple-choice letters (``extract_choice``) are equal.
        ``regex``: the last match of ``pattern`` in the response (its first group, if it has
        one) equals the reference after normalising.

    Args:
        mode: One of :data:`MATCH_MODES` (``normalized`` is accepted too).
        pattern: The regular expression for ``regex`` mode.
        tolerance: The numeric tolerance.
        letters: The choice letters for ``choice`` mode.
    """

    name = "match"

    def __init__(
        self,
        mode: str = "normalised",
        pattern: str | None = None,
        tolerance: float = 1e-6,
        letters: str = "ABCDEFGHIJ",
    ) -> None:
        mode = "normalised" if mode == "normalized" else mode
        if mode not in MATCH_MODES:
            raise DataError(f"match mode must be one of {', '.join(MATCH_MODES)}; got {mode!r}")
        if (mode == "regex") != (pattern is not None):
            raise DataError("match: give pattern=REGEX with mode=regex, and only with it")
        try:
            self._regex = re.compile(pattern) if pattern is not None else None
        except re.error as exc:
            raise DataError(f"match: pattern {pattern!r} is not a valid regex: {exc}") from exc
        if tolerance < 0:
            raise DataError(f"match: tolerance must be >= 0, got {tolerance}")
        self.mode = mode
        self.pattern = pattern
        self.tolerance = tolerance
        self.letters = letters

    def score_batch(self, items: Sequence[ScoreItem]) -> list[Judgement]:
        """Score each response 1.0 (match) or 0.0 (see the class docstring)."""
        return [Judgement(1.0 if self.matches(item) else 0.0) for item in items]

    def matches(self, item: ScoreItem) -> bool:
        """Whether the response's answer matches the reference."""
        reference = require_reference(item, self.name)
        response = item.response
        if self.mode == "exact":
            return response.strip() == reference.strip()
        if self.mode == "normalised":
            return normalise_answer(extract_final_answer(response)) == normalise_answer(
                extract_final_answer(reference)
            )
        if self.mode == "contains":
            wanted = normalise_answer(reference)
            return bool(wanted) and f" {wanted} " in f" {normalise_answer(response)} "
        if self.mode == "numeric":
            got, want = extract_number(response), extract_number(reference)
            if got is None or want is None:
                return False
            return abs(got - want) <= self.tolerance * max(1.0, abs(want))
        if self.mode == "choice":
            choice = extract_choice(response, self.letters)
            return choice is not None and choice == extract_choice(reference, self.letters)
        found = list(self._regex.finditer(response)) if self._regex is not None else []
        if not found:
            return False
        last = found[-1]
        value = last.group(1) if last.re.groups else last.group(0)
        return normalise_answer(value or "") == normalise_answer(reference)


_WORD = re.compile(r"[^\W_]+")


def rouge_l_f1(candidate: str, reference: str) -> float:
    """ROUGE-L F1: the F-measure of the longest common subsequence of words.

    Words are runs of letters and digits, lower-cased. Precision is LCS / candidate length,
    recall LCS / reference length; an empty side scores 0.

    Examples:
        >>> round(rouge_l_f1("the cat on the mat", "the cat sat on the mat"), 4)
        0.9091
    """
    cand, ref = _WORD.findall(candidate.lower()), _WORD.findall(reference.lower())
    if not cand or not ref:
        return 0.0
    lcs = _lcs_length(cand, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2.0 * precision * recall / (precision + recall)


def _lcs_length(first: list[str], second: list[str]) -> int:
    longer, shorter = (first, second) if len(first) >= len(second) else (second, first)
    previous = [0] * (len(shorter) + 1)
    for word in longer:
        current = [0]
        for j, other in enumerate(shorter, start=1):
            current.append(previous[j - 1] + 1 if word == other else max(previous[j], current[-1]))
        previous = current
    return previous[-1]


class RougeLMetric(QualityMetric):
    """ROUGE-L F1 of the response against the reference (:func:`rouge_l_f1`)."""

    name = "rouge"

    def score_batch(self, items: Sequence[ScoreItem]) -> list[Judgement]:
        """Score each response by ROUGE-L F1."""
        return [Judgement(rouge_l_f1(i.response, require_reference(i, self.name))) for i in items]
