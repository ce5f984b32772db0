"""The replay simulator: logged traffic streamed through the live loop, with known qualities.

:func:`replay` shuffles a pair's rows (seeded) and streams them, one request at a time, through
the same serving code as the adapters: :class:`~shared_router.routing.serving.RoutingService`
decides at the threshold :class:`~shared_router.live.live_routing.LiveRouting` gives for
``max_quality_drop``, a :class:`~shared_router.live.shadow.ShadowEvaluator` shadows a
``shadow_rate`` share of the calls, and its judge reveals that row's known scores from the file
(:class:`KnownScoresJudge`); the store, the live calibration and retraining run as in
production. Rows that were not shadowed are used only to measure: the realised quality drop and
small share after the warm-up, the cost saved net of the shadow calls, and a learning curve (per
checkpoint: labelled rows, router version, threshold, and the current router's gap recovered on
the rest of the stream).

Each shadowed call is waited for before the next request, so a replay is deterministic.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shared_router.data import PairData
from shared_router.encoders.cache import EmbeddingCache
from shared_router.errors import ConfigurationError, DataError
from shared_router.evaluation.curves import gap_recovered_by_scores
from shared_router.live.costs import ShadowCosts
from shared_router.live.judges import PairScores, ShadowCase
from shared_router.live.live_routing import LiveRouting
from shared_router.live.recalibration import LiveCalibrator
from shared_router.live.retraining import Retrainer
from shared_router.live.shadow import ShadowEvaluator, check_shadow_rate
from shared_router.live.store import ShadowStore, open_store
from shared_router.routing.router import Router
from shared_router.routing.serving import RoutingService
from shared_router.types import ModelChoice, QualityKnobs, other_model

__all__ = ["KnownScoresJudge", "ReplayResult", "ReplaySettings", "replay"]


class KnownScoresJudge:
    """The replay's judge: the known qualities of the row a request id names."""

    def __init__(self, scores: Mapping[str, tuple[float, float]]) -> None:
        self.scores = dict(scores)

    def __call__(self, case: ShadowCase) -> PairScores:
        """The row's ``(small_quality, large_quality)`` from the file."""
        try:
            small, large = self.scores[case.request_id]
        except KeyError as exc:
            raise DataError(f"no known scores for request {case.request_id!r}") from exc
        return PairScores(small, large)


@dataclass(frozen=True)
class ReplaySettings:
    """How a replay runs.

    Attributes:
        max_quality_drop: The quality level asked for (0.05 is 5%).
        shadow_rate: Share of calls shadowed.
        seed: Seed of the shuffle and of the shadow draws.
        warmup: Rows streamed before the measurement starts.
        small_cost: Price of a small call, the large one costing 1.
        checkpoints: How many learning-curve checkpoints.
        retrain: Retrain on live rows (else only recalibrate).
        min_rows: Live rows from which the live calibration alone decides.
        retrain_min_rows: Rows before the first retraining.
        retrain_every: New rows between retrainings.
        recalibrate_every: New rows between rebuilds of the live calibration.

    Raises:
        KnobError: For a ``max_quality_drop`` outside [0, 1] (5% is 0.05).
        ConfigurationError: For a ``shadow_rate`` or a ``small_cost`` outside [0, 1], a
            negative ``warmup`` or no checkpoint.
    """

    max_quality_drop: float
    shadow_rate: float
    seed: int = 0
    warmup: int = 0
    small_cost: float = 0.1
    checkpoints: int = 20
    retrain: bool = True
    min_rows: int = 300
    retrain_min_rows: int = 200
    retrain_every: int = 200
    recalibrate_every: int = 10

    def __post_init__(self) -> None:
        QualityKnobs(max_quality_drop=self.max_quality_drop)  # in [0, 1], else a KnobError
        check_shadow_rate(self.shadow_rate)
        if isinstance(self.small_cost, bool) or not 0.0 <= self.small_cost <= 1.0:
            raise ConfigurationError(
                f"small_cost is a small call's price as a share of a large call's (0.1: a "
                f"tenth), so it lies in [0, 1]; got {self.small_cost!r}"
            )
        if self.warmup < 0 or self.checkpoints < 1:
            raise ConfigurationError(
                f"warmup must be >= 0 and checkpoints >= 1, got {self.warmup}, {self.checkpoints}"
            )


@dataclass(frozen=True)
class ReplayResult:
    """What a replay measured.

    Attributes:
        summary: The JSON summary (``n``, ``shadowed``, ``retrains``, ``requested_drop``,
            ``realised_drop``, ``small_share``, ``q_always_large``, ``q_routed``,
            ``cost_saved_net``, ``learning_curve``, ...).
        decisions: One dict per streamed row, in stream order (``id``, ``model``,
            ``shadowed``, ``score``, ``threshold``, ...).
    """

    summary: dict[str, Any]
    decisions: list[dict[str, Any]] = field(repr=False)


def _gap(scores: np.ndarray, small: np.ndarray, large: np.ndarray) -> float:
    if scores.size < 2:
        return math.nan
    return gap_recovered_by_scores(scores, small, large)


def _share_drop(model: Sequence[str], small: np.ndarray, large: np.ndarray) -> tuple[float, float]:
    """(small share, realised relative drop) of decisions on rows."""
    if not len(model):
        return math.nan, math.nan
    went_small = np.array([m == "small" for m in model])
    routed = np.where(went_small, small, large)
    total = float(large.sum())
    drop = (total - float(routed.sum())) / total if total > 0 else math.nan
    return float(went_small.mean()), drop


def replay(
    data: PairData,
    settings: ReplaySettings,
    *,
    router: str | Path | Router = "default",
    cache: EmbeddingCache | None = None,
    store_url: str | None = None,
) -> ReplayResult:
    """Stream a pair's rows through the live loop and measure what a user would have got.

    Args:
        data: The pair's rows (both qualities known).
        settings: Quality level, shadow rate, seed, warm-up, prices.
        router: The starting router: ``"default"``, a router folder, or a router.
        cache: The embedding cache (the texts are batch-encoded into it first).
        store_url: The live store (default: a new SQLite file in a temporary folder).

    Returns:
        The summary and the per-row decisions. The retrained versions' ``path`` in
        ``retrain_history`` is None without ``store_url``: their folders are removed with the
        temporary store.

    Raises:
        DataError: When the data has fewer than 2 rows.
    """
    if len(data) < 2:
        raise DataError(f"a replay needs at least 2 rows, got {len(data)}")
    started = time.perf_counter()
    start_router = router if isinstance(router, Router) else Router.load(router, cache=cache)
    order = np.random.default_rng(settings.seed).permutation(len(data))
    rows = data.take(order)
    texts = list(rows.queries)
    X = start_router.encoder_.encode(texts)
    encoded_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="hybrid-llm-replay-") as folder:
        store = open_store(store_url or str(Path(folder) / "live.sqlite"))
        name = router.name if isinstance(router, Router) else str(router)
        result = _stream(rows, X, settings, start_router, store, name, cache)
        store.close()
    if store_url is None:  # the versions went with the temporary folder
        for version in result.summary["retrain_history"]:
            version["path"] = None
    result.summary["seconds"] = {
        "encode": round(encoded_s, 3),
        "total": round(time.perf_counter() - started, 3),
    }
    return result


def _stream(
    rows: PairData,
    X: np.ndarray,
    settings: ReplaySettings,
    start_router: Router,
    store: ShadowStore,
    router_name: str,
    cache: EmbeddingCache | None,
) -> ReplayResult:
    n = len(rows)
    small_q, large_q = rows.small_quality, rows.large_quality
    ids = [f"{i}:{row_id}" for i, row_id in enumerate(rows.ids)]
    judge = KnownScoresJudge(
        {rid: (float(s), float(q)) for rid, s, q in zip(ids, small_q, large_q, strict=True)}
    )
    retrainer = (
        Retrainer(
            store,
            min_rows=settings.retrain_min_rows,
            every=settings.retrain_every,
            seed=settings.seed,
        )
        if settings.retrain
        else None
    )
    live = LiveRouting(
        store,
        start_router,
        version=start_router.name,
        retrainer=retrainer,
        make_calibrator=lambda r: LiveCalibrator(
            r.calibration_, min_rows=settings.min_rows, seed=settings.seed
        ),
        recalibrate_every=settings.recalibrate_every,
        cache=cache,
    )
    costs = ShadowCosts(small=settings.small_cost, large=1.0)
    evaluator = ShadowEvaluator(
        store,
        judge,
        shadow_rate=settings.shadow_rate,
        seed=settings.seed,
        queue_size=max(16, n),
        workers=1,
        costs=costs,
        router_version=lambda: live.version,
    )
    service = RoutingService(live.router)
    decisions: list[dict[str, Any]] = []
    curve: list[dict[str, Any]] = []
    every = max(1, math.ceil(n / settings.checkpoints))
    answer_cost = np.zeros(n)
    shadow_cost = np.zeros(n)
    try:
        for i in range(n):
            if service.router is not live.router:
                service = RoutingService(live.router)
            routed, threshold = live.decide(service, rows.queries[i], settings.max_quality_drop)
            model = routed.model
            shadowed = evaluator.maybe_shadow(
                ids[i],
                rows.queries[i],
                routed,
                model,
                answer=f"{model} answer to {ids[i]}",
                call_other=_other_answer(model, ids[i]),
                calibration=threshold,
            )
            answer_cost[i] = costs.call(model)
            if shadowed:
                evaluator.drain()
                shadow_cost[i] = costs.call(other_model(model))
                live.refresh()
            decisions.append(
                {
                    "id": rows.ids[i],
                    "model": model,
                    "shadowed": shadowed,
                    "score": routed.decision.score,
                    "threshold": threshold.threshold,
                    "calibration": threshold.source,
                    "calibration_rows": threshold.n_rows,
                    "drop_bound": threshold.bound,
                    "router_version": live.version,
                    "small_quality": float(small_q[i]),
                    "large_quality": float(large_q[i]),
                }
            )
            if (i + 1) % every == 0 or i + 1 == n:
                curve.append(_checkpoint(i + 1, decisions, live, X, rows, settings))
        stats = evaluator.stats
    finally:
        evaluator.close()
    measured = slice(min(settings.warmup, n - 1), n)
    models = [d["model"] for d in decisions[measured]]
    share, drop = _share_drop(models, small_q[measured], large_q[measured])
    large_total = float(n - measured.start)
    went_small = np.array([m == "small" for m in models])
    summary: dict[str, Any] = {
        "n": n,
        "small": rows.small,
        "large": rows.large,
        "router": router_name,
        "seed": settings.seed,
        "shadow_rate": settings.shadow_rate,
        "warmup": measured.start,
        "shadowed": stats.shadowed,
        "labelled": stats.labelled,
        "dropped": stats.dropped,
        "retrains": len(live.history),
        "swaps": sum(outcome.swapped for outcome in live.history),
        "requested_drop": settings.max_quality_drop,
        "realised_drop": drop,
        "small_share": share,
        "q_always_large": float(large_q[measured].mean()),
        "q_routed": float(np.where(went_small, small_q[measured], large_q[measured]).mean()),
        "small_cost": settings.small_cost,
        "cost_saved": float(large_total - answer_cost[measured].sum()) / large_total,
        "cost_saved_net": float(
            large_total - answer_cost[measured].sum() - shadow_cost[measured].sum()
        )
        / large_total,
        "final_version": live.version,
        "retrain_history": [outcome.record.as_dict() for outcome in live.history],
        "learning_curve": curve,
    }
    return ReplayResult(summary, decisions)


def _other_answer(answered_by: ModelChoice, request_id: str) -> Callable[[], str]:
    """The replay's stand-in for the other model: its answer is only a label."""
    return lambda: f"{other_model(answered_by)} answer to {request_id}"


def _checkpoint(
    seen: int,
    decisions: list[dict[str, Any]],
    live: LiveRouting,
    X: np.ndarray,
    rows: PairData,
    settings: ReplaySettings,
) -> dict[str, Any]:
    """One learning-curve row: labels so far, the current threshold, gap on the rest."""
    start = max(0, seen - math.ceil(len(rows) / settings.checkpoints))
    window = decisions[start:seen]
    share, drop = _share_drop(
        [d["model"] for d in window], rows.small_quality[start:seen], rows.large_quality[start:seen]
    )
    rest = slice(seen, len(rows))
    scores = live.router.head_.predict_proba(X[rest]) if seen < len(rows) else np.zeros(0)
    threshold = live.threshold_for(settings.max_quality_drop)
    return {
        "rows": seen,
        "labelled": sum(d["shadowed"] for d in decisions),
        "router_version": live.version,
        "threshold": threshold.threshold,
        "calibration": threshold.source,
        "calibration_rows": threshold.n_rows,
        "drop_bound": threshold.bound,
        "window_small_share": share,
        "window_drop": drop,
        "gap_recovered_rest": _gap(scores, rows.small_quality[rest], rows.large_quality[rest]),
    }
