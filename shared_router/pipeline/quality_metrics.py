"""The answer-quality metrics by name: how good one response is, as a number in [0, 1].

Every metric takes :class:`~shared_router.pipeline.quality_base.ScoreItem` values (query,
response, reference) in batches and returns one
:class:`~shared_router.pipeline.quality_base.Judgement` each: a score in [0, 1], or no score
and an error (only the LLM judge and user callables fail per item). :class:`MetricSpec`
names a metric and its arguments in a picklable form, so Ray workers can build their own
copy; :data:`METRICS` maps the names to the classes.

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
module:fn  ``fn(query, response, reference) -> float`` in [0, 1], with a    optional
           ``timeout`` per call (argument ``timeout``, 120 s by default)
========== ================================================================ ==============

``match`` and ``rouge`` are in :mod:`shared_router.pipeline.quality_lexical`, ``bartscore``
and ``embedding`` in :mod:`shared_router.pipeline.quality_model_based`, ``judge`` in
:mod:`shared_router.pipeline.quality_llm_judge`; ``module:fn`` is :class:`CallableMetric`.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared_router._internal.model_threads import ModelThreads
from shared_router.errors import DataError, UsageError
from shared_router.pipeline.quality_base import Judgement, QualityMetric, ScoreItem
from shared_router.pipeline.quality_lexical import MatchMetric, RougeLMetric
from shared_router.pipeline.quality_llm_judge import LLMJudgeMetric
from shared_router.pipeline.quality_model_based import BartScoreMetric, EmbeddingMetric
from shared_router.pipeline.sources import import_object

__all__ = ["METRICS", "CallableMetric", "MetricSpec"]


class CallableMetric(QualityMetric):
    """A user's function ``fn(query, response, reference) -> float`` in [0, 1].

    ``reference`` is None where the row has none. A bool counts as 1.0 / 0.0. An exception, a
    value outside [0, 1] or a call that takes longer than ``timeout`` becomes an error for
    that response, not for the run. The function runs on a thread of the metric's own (one
    call at a time); a call still blocked after its timeout is abandoned (its thread is
    written off as hung and named in the error, never waited for) and the next one gets a
    fresh thread, so the abandoned call may still be running beside it.

    Args:
        target: ``module:function``.
        timeout: Seconds one call may take.

    Raises:
        DataError: If the target is not callable or ``timeout`` is not a finite number > 0.
    """

    name = "callable"

    def __init__(self, target: str, timeout: float = 120.0) -> None:
        function = import_object(target, what="metric")
        if not callable(function):
            raise DataError(f"metric {target!r} is not callable")
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise DataError(
                f"metric {target!r}: timeout must be a finite number > 0 seconds, got {timeout!r}"
            )
        self.target = target
        self.timeout = float(timeout)
        self._function: Callable[[str, str, str | None], Any] = function
        self._threads: ModelThreads | None = None

    @property
    def needs_reference(self) -> bool:
        """The function gets None where there is no reference."""
        return False

    def score_batch(self, items: Sequence[ScoreItem]) -> list[Judgement]:
        """Call the function on each response."""
        if self._threads is None:
            self._threads = ModelThreads(f"metric {self.target}", 1)
        return [self._score(self._threads, item) for item in items]

    def close(self) -> None:
        """Stop the metric's thread; a hung call is not waited for."""
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._threads = None

    def _score(self, threads: ModelThreads, item: ScoreItem) -> Judgement:
        try:
            future = threads.submit(self._function, item.query, item.response, item.reference)
        except UsageError as exc:  # too many calls hung: the function is not answering
            return Judgement(None, f"{self.target}: {exc}")
        try:
            value = future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            hung = threads.abandon(future)
            if hung is not None or not future.done() or future.cancelled():
                blocked = f"; the call is still blocked in thread {hung!r} (hung)" if hung else ""
                return Judgement(
                    None, f"{self.target} gave no score within {self.timeout:g} s{blocked}"
                )
            return self._score_done(future)
        except Exception as exc:
            return Judgement(None, f"{self.target} raised {type(exc).__name__}: {exc}")
        return self._judge_value(value)

    def _score_done(self, future: concurrent.futures.Future[Any]) -> Judgement:
        """The judgement of a call that finished just as its timeout passed."""
        try:
            value = future.result(timeout=0)
        except Exception as exc:
            return Judgement(None, f"{self.target} raised {type(exc).__name__}: {exc}")
        return self._judge_value(value)

    def _judge_value(self, value: Any) -> Judgement:
        if not isinstance(value, (int, float, np.floating, np.integer)):
            return Judgement(None, f"{self.target} returned {type(value).__name__}, not a number")
        number = float(value)
        if not (math.isfinite(number) and 0.0 <= number <= 1.0):
            return Judgement(None, f"{self.target} returned {value!r}, outside [0, 1]")
        return Judgement(number)


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

    def check(self) -> None:
        """Check the name and the argument names, without making the metric.

        Making it may load a model; this is cheap, so a pipeline refuses a misspelt metric
        before it calls any model.

        Raises:
            DataError: If the name is unknown (the message lists the names) or an argument
                is not one the metric takes (the message lists those).
        """
        if self.name in METRICS:
            accepted = [
                p for p in inspect.signature(METRICS[self.name].__init__).parameters if p != "self"
            ]
            unknown = sorted(set(self.args) - set(accepted))
            if unknown:
                takes = ", ".join(accepted) or "no arguments"
                raise DataError(f"metric {self.name!r} does not take {unknown}; it takes: {takes}")
            return
        if ":" in self.name:
            unknown = sorted(set(self.args) - {"timeout"})
            if unknown:
                raise DataError(
                    f"metric {self.name!r} (a function) takes no arguments but timeout; "
                    f"got {unknown}"
                )
            return
        raise DataError(
            f"unknown metric {self.name!r}; use one of {', '.join(METRICS)} or module:function"
        )

    def build(self) -> QualityMetric:
        """Make the metric.

        Raises:
            DataError: As :meth:`check` does, or when the metric refuses an argument's value.
        """
        self.check()
        if self.name not in METRICS:
            return CallableMetric(self.name, **self.args)
        try:
            return METRICS[self.name](**self.args)
        except TypeError as exc:
            raise DataError(f"metric {self.name!r}: {exc}") from exc
