"""Quality metrics: how good one response is, as a number in [0, 1].

Every metric takes :class:`ScoreItem` values (query, response, reference) in batches and
returns one :class:`Judgement` each: a score in [0, 1], or no score and an error (only the
LLM judge and user callables fail per item). :class:`MetricSpec` names a metric and its
arguments in a picklable form, so Ray workers can build their own copy.

========== ================================================================ ==============
name       what it measures                                                 reference
========== ================================================================ ==============
bartscore  BARTScore (the paper's metric): exp of the mean token            no (``source=
           log-likelihood of the response under BART, given the query       reference``:
           (``source=query``, the default) or the reference                 yes)
match      1 if the extracted answer equals the reference, else 0; modes   yes
           exact, normalised, contains, numeric, choice (A-J), regex
rouge      ROUGE-L F1 of the response against the reference                 yes
embedding  cosine similarity of the response and reference embeddings,     yes
           clipped to [0, 1]
judge      an LLM grades the response with a rubric, 0..scale -> [0, 1]     optional
module:fn  ``fn(query, response, reference) -> float`` in [0, 1]           optional
========== ================================================================ ==============

BARTScore is an average log-likelihood ``(1/m) sum_t log p(y_t | y_<t, x)`` (at most 0);
``exp`` of it is the geometric mean of the token probabilities, which lies in (0, 1] and keeps
BARTScore's ordering.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from shared_router.errors import DataError
from shared_router.pipeline.answer_parsing import (
    extract_choice,
    extract_final_answer,
    extract_number,
    normalise_answer,
    parse_judge_score,
)
from shared_router.pipeline.sources import (
    ResponseSource,
    RetryPolicy,
    SourceSpec,
    generate_with_retries,
    import_object,
)

__all__ = [
    "MATCH_MODES",
    "METRICS",
    "BartScoreMetric",
    "CallableMetric",
    "EmbeddingMetric",
    "Judgement",
    "LLMJudgeMetric",
    "MatchMetric",
    "MetricSpec",
    "QualityMetric",
    "RougeLMetric",
    "ScoreItem",
    "rouge_l_f1",
]


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


def _reference(item: ScoreItem, metric: str) -> str:
    if item.reference is None:
        raise DataError(f"metric {metric!r} needs a reference answer for every response")
    return item.reference


# --------------------------------------------------------------------------- match

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
        reference = _reference(item, self.name)
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


# --------------------------------------------------------------------------- rouge

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
        return [Judgement(rouge_l_f1(i.response, _reference(i, self.name))) for i in items]


# --------------------------------------------------------------------------- embedding


class EmbeddingMetric(QualityMetric):
    """Cosine similarity of response and reference embeddings, clipped to [0, 1].

    Negative similarities (rare with sentence encoders) count as 0.

    Args:
        encoder: An encoder name or folder for :class:`shared_router.encoders.encoder.Encoder`
            (``"default"`` is the bundled all-MiniLM-L6-v2).
        batch_size: Texts per forward pass.
    """

    name = "embedding"

    def __init__(self, encoder: str = "default", batch_size: int = 32) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self._encoder: Any = None

    def score_batch(self, items: Sequence[ScoreItem]) -> list[Judgement]:
        """Score each response by its embedding's cosine similarity to the reference's."""
        if not items:
            return []
        if self._encoder is None:
            from shared_router.encoders.encoder import Encoder

            self._encoder = Encoder(self.encoder, batch_size=self.batch_size)
        references = [_reference(i, self.name) for i in items]
        vectors = np.asarray(
            self._encoder.encode([i.response for i in items] + references), dtype=np.float64
        )
        responses, refs = vectors[: len(items)], vectors[len(items) :]
        norms = np.linalg.norm(responses, axis=1) * np.linalg.norm(refs, axis=1)
        dots = np.einsum("ij,ij->i", responses, refs)
        cosine = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
        return [Judgement(float(np.clip(c, 0.0, 1.0))) for c in cosine]


# --------------------------------------------------------------------------- bartscore


class BartScoreMetric(QualityMetric):
    """BARTScore mapped to [0, 1]: ``exp(mean_t log p(y_t | y_<t, x))`` under BART.

    ``y`` is the response; ``x`` is the query (``source="query"``, reference-free, as the
    Hybrid LLM paper scores responses) or the reference answer (``source="reference"``).
    Texts are truncated to the model's length limit.

    Args:
        model: A sequence-to-sequence checkpoint name or local folder (BARTScore uses
            ``facebook/bart-large-cnn``).
        source: ``"query"`` or ``"reference"``.
        batch_size: Pairs per forward pass.
        device: A torch device; None picks CUDA when available, else CPU.
        max_length: Most tokens per text (also capped by the model's positions).
    """

    name = "bartscore"

    def __init__(
        self,
        model: str = "facebook/bart-large-cnn",
        source: str = "query",
        batch_size: int = 4,
        device: str | None = None,
        max_length: int = 1024,
    ) -> None:
        if source not in ("query", "reference"):
            raise DataError(f"bartscore: source must be 'query' or 'reference', got {source!r}")
        if batch_size < 1 or max_length < 2:
            raise DataError(
                f"bartscore: batch_size must be >= 1 and max_length >= 2, got {batch_size}, "
                f"{max_length}"
            )
        self.model = model
        self.source = source
        self.batch_size = batch_size
        self.device = device
        self.max_length = max_length
        self._loaded: tuple[Any, Any, str, int] | None = None

    @property
    def needs_reference(self) -> bool:
        """Whether the reference is the conditioning text (``source="reference"``)."""
        return self.source == "reference"

    def score_batch(self, items: Sequence[ScoreItem]) -> list[Judgement]:
        """Score each response by its BARTScore, mapped to (0, 1]."""
        import torch

        tokenizer, model, device, max_length = self._load()
        out: list[Judgement] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            sources = [
                i.query if self.source == "query" else _reference(i, self.name) for i in chunk
            ]
            options: dict[str, Any] = {
                "max_length": max_length,
                "truncation": True,
                "padding": True,
                "return_tensors": "pt",
            }
            encoded = tokenizer(sources, **options)
            targets = tokenizer([i.response for i in chunk], **options)
            labels = targets["input_ids"].to(device)
            mask = targets["attention_mask"].to(device).to(torch.float64)
            with torch.no_grad():
                logits = model(
                    input_ids=encoded["input_ids"].to(device),
                    attention_mask=encoded["attention_mask"].to(device),
                    labels=labels,
                ).logits
            log_probs = torch.log_softmax(logits.to(torch.float64), dim=-1)
            token_log_probs = log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
            mean = (token_log_probs * mask).sum(dim=1) / mask.sum(dim=1)
            out.extend(Judgement(float(math.exp(v))) for v in mean.tolist())
        return out

    def _load(self) -> tuple[Any, Any, str, int]:
        if self._loaded is None:
            import torch
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            try:
                tokenizer = AutoTokenizer.from_pretrained(self.model)
                model = AutoModelForSeq2SeqLM.from_pretrained(self.model).to(device).eval()
            except (OSError, ValueError) as exc:
                raise DataError(
                    f"bartscore: cannot load model {self.model!r} ({exc}); pass a local "
                    "checkpoint folder with --metric-arg model=PATH"
                ) from exc
            positions = getattr(model.config, "max_position_embeddings", None) or self.max_length
            self._loaded = (tokenizer, model, device, min(self.max_length, int(positions)))
        return self._loaded


# --------------------------------------------------------------------------- LLM judge

DEFAULT_RUBRIC = (
    "Judge how well the response answers the query: correctness first, then completeness, "
    "relevance and clarity. A correct, complete and clear answer gets the full score; a wrong, "
    "off-topic or empty answer gets 0."
)


class LLMJudgeMetric(QualityMetric):
    """An LLM grades each response against a rubric; the grade ``0..scale`` maps to [0, 1].

    The judge sees the query, the reference answer when there is one, and the response, and
    is asked for ``Score: N/scale``. Its reply is read with
    :func:`shared_router.pipeline.answer_parsing.parse_judge_score`; an unreadable reply is asked again, up
    to ``attempts`` times, then recorded as an error with no score. Requests use the collect
    engine's retries and timeout.

    Args:
        model: The judge's SPEC (``provider:model`` or ``module:callable``).
        rubric: What a good response is; defaults to :data:`DEFAULT_RUBRIC`.
        scale: The top score.
        attempts: Tries per response when the reply cannot be read.
        concurrency: Judge requests in flight at once.
        timeout: Seconds per request.
        settings: Keyword arguments for the judge model (temperature, ...).
    """

    name = "judge"

    def __init__(
        self,
        model: str,
        rubric: str = DEFAULT_RUBRIC,
        scale: int = 10,
        attempts: int = 3,
        concurrency: int = 8,
        timeout: float = 120.0,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        if scale < 1 or attempts < 1 or concurrency < 1:
            raise DataError(
                f"judge: scale, attempts and concurrency must be >= 1, got {scale}, {attempts}, "
                f"{concurrency}"
            )
        self.model = model
        self.rubric = rubric
        self.scale = scale
        self.attempts = attempts
        self.concurrency = concurrency
        self.policy = RetryPolicy(timeout=timeout)
        self.settings = dict(settings or {})
        self._source: ResponseSource | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rng = random.Random()

    @property
    def needs_reference(self) -> bool:
        """The judge uses a reference where there is one but needs none."""
        return False

    def prompt(self, item: ScoreItem) -> str:
        """The prompt the judge sees for one response."""
        reference = (
            f"Reference answer:\n<<<\n{item.reference}\n>>>\n\n"
            if item.reference is not None
            else ""
        )
        return (
            "You are grading the quality of an AI assistant's response to a user's query.\n"
            f"{self.rubric}\n\n"
            f"Query:\n<<<\n{item.query}\n>>>\n\n{reference}"
            f"Response to grade:\n<<<\n{item.response}\n>>>\n\n"
            f'Reply with the score on its last line as "Score: N/{self.scale}", where N is a '
            f"whole number from 0 to {self.scale}."
        )

    def score_batch(self, items: Sequence[ScoreItem]) -> list[Judgement]:
        """Ask the judge about each response (concurrently); unreadable replies are errors."""
        if self._source is None:
            self._source = SourceSpec(self.model, self.settings).resolve()
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(self._judge_all(self._source, items))

    def close(self) -> None:
        """Close the judge's event loop."""
        if self._loop is not None:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
            self._loop = None

    async def _judge_all(
        self, source: ResponseSource, items: Sequence[ScoreItem]
    ) -> list[Judgement]:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(item: ScoreItem) -> Judgement:
            async with gate:
                return await self._judge(source, item)

        return list(await asyncio.gather(*(one(item) for item in items)))

    async def _judge(self, source: ResponseSource, item: ScoreItem) -> Judgement:
        prompt = self.prompt(item)
        reply = ""
        for _ in range(self.attempts):
            outcome = await generate_with_retries(source, prompt, self.policy, self._rng)
            if outcome.generation is None:
                return Judgement(None, f"judge request failed: {outcome.error}")
            reply = outcome.generation.text
            score = parse_judge_score(reply, float(self.scale))
            if score is not None:
                return Judgement(score)
        return Judgement(
            None, f"unreadable judge reply after {self.attempts} tries: {reply[-200:]!r}"
        )


# --------------------------------------------------------------------------- callable


class CallableMetric(QualityMetric):
    """A user's function ``fn(query, response, reference) -> float`` in [0, 1].

    ``reference`` is None where the row has none. A bool counts as 1.0 / 0.0. An exception or
    a value outside [0, 1] becomes an error for that response, not for the run.

    Args:
        target: ``module:function``.
    """

    name = "callable"

    def __init__(self, target: str) -> None:
        function = import_object(target, what="metric")
        if not callable(function):
            raise DataError(f"metric {target!r} is not callable")
        self.target = target
        self._function: Callable[[str, str, str | None], Any] = function

    @property
    def needs_reference(self) -> bool:
        """The function gets None where there is no reference."""
        return False

    def score_batch(self, items: Sequence[ScoreItem]) -> list[Judgement]:
        """Call the function on each response."""
        return [self._score(item) for item in items]

    def _score(self, item: ScoreItem) -> Judgement:
        try:
            value = self._function(item.query, item.response, item.reference)
        except Exception as exc:
            return Judgement(None, f"{self.target} raised {type(exc).__name__}: {exc}")
        if not isinstance(value, (int, float, np.floating, np.integer)):
            return Judgement(None, f"{self.target} returned {type(value).__name__}, not a number")
        number = float(value)
        if not (math.isfinite(number) and 0.0 <= number <= 1.0):
            return Judgement(None, f"{self.target} returned {value!r}, outside [0, 1]")
        return Judgement(number)


# --------------------------------------------------------------------------- registry

METRICS: dict[str, type[QualityMetric]] = {
    metric.name: metric
    for metric in (BartScoreMetric, MatchMetric, RougeLMetric, EmbeddingMetric, LLMJudgeMetric)
}


@dataclass(frozen=True)
class MetricSpec:
    """A metric by name with its arguments: a picklable recipe for a :class:`QualityMetric`.

    Attributes:
        name: A name in :data:`METRICS` or ``module:function`` for :class:`CallableMetric`.
        args: Keyword arguments of the metric's class.
    """

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> str:
        """The name and arguments as canonical JSON: scores are cached under it."""
        return json.dumps([self.name, dict(self.args)], sort_keys=True, default=str)

    def build(self) -> QualityMetric:
        """Make the metric.

        Raises:
            DataError: If the name is unknown (the message lists the names) or an argument
                is not one the metric takes (the message lists those).
        """
        if self.name in METRICS:
            cls = METRICS[self.name]
            accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
            unknown = sorted(set(self.args) - set(accepted))
            if unknown:
                takes = ", ".join(accepted) or "no arguments"
                raise DataError(f"metric {self.name!r} does not take {unknown}; it takes: {takes}")
            try:
                return cls(**self.args)
            except TypeError as exc:
                raise DataError(f"metric {self.name!r}: {exc}") from exc
        if ":" in self.name:
            if self.args:
                raise DataError(f"metric {self.name!r} (a function) takes no arguments")
            return CallableMetric(self.name)
        raise DataError(
            f"unknown metric {self.name!r}; use one of {', '.join(METRICS)} or module:function"
        )
