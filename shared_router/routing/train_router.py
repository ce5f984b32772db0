"""The paper's training recipe on a model pair's data: labels, fit, calibrate, evaluate."""

from __future__ import annotations

import logging
from collections import Counter

from shared_router.data import PairData
from shared_router.errors import DataError, TrainingError
from shared_router.routing.router import Router
from shared_router.training.labels import LabelKind, make_labels
from shared_router.types import ModelPair

__all__ = ["MIN_TRAIN_ROWS", "MIN_VAL_ROWS", "train_router"]

MIN_TRAIN_ROWS = 10
"""The fewest ``train`` rows :func:`train_router` accepts."""
MIN_VAL_ROWS = 5
"""The fewest ``val`` rows :func:`train_router` accepts."""

logger = logging.getLogger(__name__)


def train_router(
    data: PairData,
    *,
    label_type: LabelKind = "trans",
    router: Router | None = None,
    quality_metric: str = "score",
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
) -> Router:
    """Train and calibrate a router on a model pair's data (the paper's recipe).

    Labels come from the ``train`` split (``t*`` for ``"trans"`` labels is chosen there and
    reused for ``val``); the head early-stops on the ``val`` split, and the calibration table
    is built from the ``val`` split's small and large qualities.

    Args:
        data: The pair's rows, with ``train`` and ``val`` splits.
        label_type: ``"det"``, ``"prob"`` or ``"trans"``.
        router: An unfitted router carrying the hyperparameters; None uses the defaults.
        quality_metric: The name of the quality the scores measure (recorded).
        confidence: Confidence of the calibration's quality-drop bound.
        n_bootstrap: Bootstrap resamples of the calibration.

    Returns:
        The trained, calibrated router, with label type, ``t*``, pair, data hash, quality
        metric and validation metrics recorded.

    Raises:
        DataError: When a split is missing or an id is on more than one row (a query in
            ``train`` that is also in ``val`` or ``test`` is logged as a warning).
        TrainingError: When training cannot run on the data.
    """
    from shared_router.evaluation.report import evaluate_scores

    _check_rows(data)
    train, val = data.split("train"), data.split("val")
    if len(train) < MIN_TRAIN_ROWS or len(val) < MIN_VAL_ROWS:
        raise TrainingError(
            f"too few rows for {data.small} vs {data.large}: {len(train)} in 'train' and "
            f"{len(val)} in 'val'; training needs at least {MIN_TRAIN_ROWS} and "
            f"{MIN_VAL_ROWS} (add rows, or check the 'split' field)"
        )
    labels = make_labels(train, label_type)
    val_labels = make_labels(
        val, label_type, t_star=labels.t_star if label_type == "trans" else None
    )
    model = router if router is not None else Router(name=f"{data.small}-vs-{data.large}")
    model.fit(train.queries, labels.y, val_texts=val.queries, val_y=val_labels.y)
    val_scores = model.score(val.queries)  # once, for the calibration and the metrics
    model.calibrate_scores(
        val_scores,
        val.small_quality,
        val.large_quality,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        seed=model.seed,
    )
    report = evaluate_scores(val_scores, val.small_quality, val.large_quality)
    val_metrics = report.metric("router").to_dict()
    val_metrics.pop("name", None)
    model.label_type_ = labels.kind
    model.t_star_ = labels.t_star
    model.pair_ = ModelPair(data.small, data.large)
    model.metadata_.update(
        quality_metric=quality_metric,
        training_data_hash=data.data_hash,
        source=data.source,
    )
    model.metadata_["metrics"] = {
        **model.metadata_.get("metrics", {}),
        "val": {
            "n": len(val),
            "small_mean": report.small_mean,
            "large_mean": report.large_mean,
            **val_metrics,
        },
    }
    return model


def _check_rows(data: PairData) -> None:
    """Refuse duplicated ids; warn when a ``val`` or ``test`` query is also in ``train``.

    Raises:
        DataError: Naming a duplicated id and how many rows hold it.
    """
    counts = Counter(data.ids)
    repeated = [row_id for row_id, n in counts.items() if n > 1]
    if repeated:
        raise DataError(
            f"{len(repeated)} id(s) are on more than one row, for example id {repeated[0]!r} "
            f"on {counts[repeated[0]]} rows; each query needs an id of its own: remove the "
            "duplicated rows (or give different queries different ids)",
            path=data.source,
        )
    train_queries = {
        q for q, split in zip(data.queries, data.splits, strict=True) if split == "train"
    }
    for name in ("val", "test"):
        held_out = [q for q, split in zip(data.queries, data.splits, strict=True) if split == name]
        shared = [q for q in held_out if q in train_queries]
        if shared:
            logger.warning(
                "%d of %d %r queries are also in 'train' (for example %.80r), so results on "
                "%r overstate the router; remove them from one of the two splits",
                len(shared),
                len(held_out),
                name,
                shared[0],
                name,
            )
