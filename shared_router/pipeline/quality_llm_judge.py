"""The LLM-judge answer-quality metric: a model grades each response against a rubric."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from typing import Any

from shared_router._internal.model_threads import LoopExecutor, ModelThreads
from shared_router.errors import DataError
from shared_router.pipeline.answer_parsing import parse_judge_score
from shared_router.pipeline.quality_base import Judgement, QualityMetric, ScoreItem
from shared_router.pipeline.sources import (
    ResponseSource,
    RetryPolicy,
    SourceSpec,
    generate_with_retries,
)

__all__ = ["DEFAULT_RUBRIC", "LLMJudgeMetric"]

DEFAULT_RUBRIC = (
    "Judge how well the response answers the query: correctness first, then completeness, "
    "relevance and clarity. A correct, complete and clear answer gets the full score; a wrong, "
    "off-topic or empty answer gets 0."
)


class LLMJudgeMetric(QualityMetric):
    """An LLM grades each response against a rubric; the grade ``0..scale`` maps to [0, 1].

    The judge sees the query, the reference answer when there is one, and the response, and
    is asked for ``Score: N/scale``. Its reply is read with
    :func:`shared_router.pipeline.answer_parsing.parse_judge_score`; an unreadable reply is
    asked again, up to ``attempts`` times, then recorded as an error with no score. Requests
    are retried with backoff like collect's (:class:`RetryPolicy`), with ``timeout``; blocking
    judge calls run on the judge's own ``concurrency`` threads, as collect's do (a call still
    blocked after its timeout is abandoned and named in the error).

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
        self._threads: ModelThreads | None = None
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
            self._threads = ModelThreads(f"judge {self.model}", self.concurrency)
            self._loop = asyncio.new_event_loop()
            self._loop.set_default_executor(
                LoopExecutor(ModelThreads("judge loop", self.concurrency))
            )
        return self._loop.run_until_complete(self._judge_all(self._source, items))

    def close(self) -> None:
        """Close the judge's event loop; hung judge calls are not waited for."""
        if self._loop is not None:
            try:
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            finally:
                if self._threads is not None:
                    self._threads.shutdown(wait=False)
                    self._threads = None
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
            outcome = await generate_with_retries(
                source, prompt, self.policy, self._rng, threads=self._threads
            )
            if outcome.generation is None:
                return Judgement(None, f"judge request failed: {outcome.error}")
            reply = outcome.generation.text
            score = parse_judge_score(reply, float(self.scale))
            if score is not None:
                return Judgement(score)
        return Judgement(
            None, f"unreadable judge reply after {self.attempts} tries: {reply[-200:]!r}"
        )
