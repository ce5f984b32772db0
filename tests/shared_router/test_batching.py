"""Micro-batched scoring: concurrent decisions share encoder passes, each gets its own score."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared_router.errors import UsageError
from shared_router.routing.batching import ScoreBatcher, batcher_for
from shared_router.routing.registry import shared_router
from shared_router.routing.router import Router
from shared_router.routing.serving import RoutingService
from shared_router.types import QualityKnobs, RouteDecision
from tests.conftest import EASY_QUERIES, HARD_QUERIES
from tests.forked import FORK_ONLY, in_forked_child


class SlowScorer:
    """Scores a text as its length / 100, taking ``delay`` seconds a batch; records batches."""

    def __init__(self, delay: float = 0.02, fail_on: str | None = None) -> None:
        self.delay = delay
        self.fail_on = fail_on
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()

    def __call__(self, texts: list[str]) -> Sequence[float]:
        self.batches.append(list(texts))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if self.fail_on in texts:
            raise ValueError(f"cannot score {self.fail_on!r}")
        return [len(text) / 100 for text in texts]


def test_an_idle_batcher_scores_a_text_at_once_alone() -> None:
    scorer = SlowScorer(delay=0.0)
    batcher = ScoreBatcher(scorer, name="t", max_wait_s=0.5)
    for text in ("a", "bb", "ccc"):
        scored = batcher.score(text)
        assert scored.score == len(text) / 100 and scored.batch_size == 1
        assert scored.queue_ms < 400  # a lone text never waits for the window
    assert scorer.batches == [["a"], ["bb"], ["ccc"]]
    assert scorer.threads == {"hybrid-llm router t"}


def test_concurrent_threads_are_scored_in_shared_batches() -> None:
    scorer = SlowScorer()
    batcher = ScoreBatcher(scorer, name="t", max_batch=8)
    texts = [f"text number {i}" + "!" * i for i in range(40)]
    with ThreadPoolExecutor(40) as pool:
        results = list(pool.map(batcher.score, texts))
    assert [r.score for r in results] == [len(t) / 100 for t in texts]
    assert len(scorer.batches) < 20 and max(map(len, scorer.batches)) == 8
    assert sorted(t for batch in scorer.batches for t in batch) == sorted(texts)


async def test_async_callers_are_batched_without_the_loops_executor() -> None:
    scorer = SlowScorer()
    batcher = ScoreBatcher(scorer, name="t")
    texts = [f"question {i}" for i in range(30)] * 2  # repeated texts are scored once a batch
    results = await asyncio.gather(*(batcher.ascore(text) for text in texts))
    assert [r.score for r in results] == [len(t) / 100 for t in texts]
    assert len(scorer.batches) <= 3
    assert all(len(batch) == len(set(batch)) for batch in scorer.batches)
    assert max(r.batch_size for r in results) > 1
    assert all(r.compute_ms >= 19 for r in results)


async def test_a_failing_text_fails_only_its_own_caller() -> None:
    scorer = SlowScorer(delay=0.005, fail_on="poison")
    batcher = ScoreBatcher(scorer, name="t")
    texts = ["fine", "also fine", "poison", "good too"]
    results = await asyncio.gather(*(batcher.ascore(t) for t in texts), return_exceptions=True)
    assert isinstance(results[2], ValueError) and "poison" in str(results[2])
    assert [r.score for i, r in enumerate(results) if i != 2] == [0.04, 0.09, 0.08]  # type: ignore[union-attr]


async def test_a_cancelled_wait_leaves_the_others_alone() -> None:
    batcher = ScoreBatcher(SlowScorer(delay=0.05), name="t")
    first = asyncio.ensure_future(batcher.ascore("first"))
    waiting = [asyncio.ensure_future(batcher.ascore(f"t{i}")) for i in range(5)]
    await asyncio.sleep(0.01)
    waiting[0].cancel()
    done = await asyncio.gather(first, *waiting[1:])
    assert [r.score for r in done] == [0.05, 0.02, 0.02, 0.02, 0.02]


def test_the_thread_ends_when_idle_and_comes_back() -> None:
    scorer = SlowScorer(delay=0.0)
    batcher = ScoreBatcher(scorer, name="t", idle_exit_s=0.05)
    batcher.score("a")
    deadline = time.monotonic() + 5
    while batcher._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batcher._thread is None
    assert batcher.score("bb").score == 0.02


def test_bad_settings_are_refused() -> None:
    with pytest.raises(UsageError, match="max_batch must be >= 1"):
        ScoreBatcher(SlowScorer(), name="t", max_batch=0)


def test_one_batcher_per_router() -> None:
    router = shared_router("default")
    assert batcher_for(router) is batcher_for(router)
    assert RoutingService("default")._batcher_of(router) is batcher_for(router)
    assert batcher_for(Router.load("default")) is not batcher_for(router)


def _texts() -> list[str]:
    return [*EASY_QUERIES, *HARD_QUERIES, " ", "What is \ud800 2 + 2?"]


async def test_concurrent_decisions_equal_one_by_one_decisions() -> None:
    knobs = QualityKnobs(max_quality_drop=0.02)
    service = RoutingService("default", knobs=knobs)
    texts = _texts()
    alone = [service.router.route(t, **knobs.set_knobs()) for t in texts]
    together = await asyncio.gather(*(service.adecide(t) for t in texts))
    with ThreadPoolExecutor(16) as pool:
        threaded = list(pool.map(service.decide, texts))
    assert [r.decision for r in together] == alone
    assert [r.decision for r in threaded] == alone
    assert all(not r.router_failed for r in together + threaded)


def _decide_in_child(service: RoutingService, texts: list[str]) -> list[RouteDecision]:
    """In a forked child: one decision, then concurrent ones (a batch on the encoder)."""
    first = service.decide(texts[0])
    with ThreadPoolExecutor(8) as pool:
        rest = list(pool.map(service.decide, texts[1:]))
    return [first.decision, *(r.decision for r in rest)]


@FORK_ONLY
def test_a_child_process_after_fork_decides_as_its_parent() -> None:
    """A pre-forking server (gunicorn --preload): the router, its batcher and its encoder's
    threads were started in the parent; the child has none of them and must not wait."""
    service = RoutingService("default", knobs=QualityKnobs(max_quality_drop=0.02))
    for run in range(2):  # the batcher, then (once its session is made) the encoder's workers
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(service.decide, [f"{text} (parent {run})" for text in _texts()[:8]]))
        time.sleep(1.0)  # the onnx backend makes its batch session in the background
    texts = [f"{text} (child {time.time()})" for text in _texts()[:9]]  # not in any cache
    in_child = in_forked_child(_decide_in_child, service, texts, doing="its first decisions")
    assert in_child == [service.router.route(text, max_quality_drop=0.02) for text in texts]
