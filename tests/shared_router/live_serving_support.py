"""What the live-loop serving tests of the core and both adapters share: settings, scored rows."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from shared_router.live.judges import CallableJudge
from shared_router.live.rows import ShadowRow
from shared_router.live.settings import LiveSettings
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
