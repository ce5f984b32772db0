"""What the live-loop serving tests of the core and both adapters share: settings, scored rows."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shared_router.live.judges import CallableJudge
from shared_router.live.rows import ShadowRow
from shared_router.live.serving_loop import live_loop
from shared_router.live.settings import LiveSettings
from shared_router.live.store import open_store
from tests.fixed_router import FixedRouter

JUDGE = CallableJudge(lambda case: (1.0, 1.0))


def planted_rows(n: int, version: str = FixedRouter.name, seed: int = 0) -> list[ShadowRow]:
    """Rows where the small model is right exactly when the score is at least 0.5.

    Scored by ``version`` (by default the stand-in ``FixedRouter``, whose scores a loop
    starting on it reuses).
    """
    rng = np.random.default_rng(seed)
    now = time.time()
    return [
        ShadowRow(
            request_id=f"r{i}",
            created_at=now,
            judged_at=now,
            router_version=version,
            decision="small",
            small_quality=float(score >= 0.5),
            large_quality=1.0,
            text=f"question {i}",
            score=float(score),
        )
        for i, score in enumerate(rng.random(n))
    ]


def settings_for(tmp_path: Path, **changes: object) -> LiveSettings:
    values: dict[str, object] = {
        "store": tmp_path / "live.sqlite",
        "judge": JUDGE,
        "shadow_rate": 1.0,
        "seed": 0,
        "retrain": False,
        "min_live_rows": 50,
        "shadow_timeout": 60.0,
    }
    values.update(changes)
    return LiveSettings(**values)  # type: ignore[arg-type]


def check_pickled_tasks_share_one_loop(
    model: Any, answer: Callable[[Any], str], expected: str
) -> None:
    """Unpickle ``model`` as a pool's tasks do, in this process: all share its live loop.

    Args:
        model: An adapter with ``live`` settings that has answered one call.
        answer: Calls a model once and returns its answer's text.
        expected: That text.
    """
    settings = model.live
    blob = pickle.dumps(model)  # what a pool's worker process receives with every task
    first = pickle.loads(blob)
    assert answer(first) == expected
    loops = _live_loop_threads()
    tasks = [pickle.loads(blob) for _ in range(4)]
    for task in tasks:
        assert answer(task) == expected
    assert _live_loop_threads() == loops  # no loop (thread, queue, evaluator) per task
    assert first.live is not settings and first.live.store == settings.store
    assert all(live_loop(task.live) is live_loop(settings) for task in (first, *tasks))
    assert live_loop(settings).drain(timeout=30)
    assert model.stats.live.rows_written == tasks[-1].stats.live.rows_written == 6
    assert len(open_store(settings.store).rows()) == 6
    assert open_store(settings.store).traffic().calls == 6


def _live_loop_threads() -> int:
    return sum(thread.name == "hybrid-llm live loop" for thread in threading.enumerate())
