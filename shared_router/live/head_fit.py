"""Fitting a live head: its L2 strength and its label kind, both chosen by cross-validation.

:func:`fit_cross_validated` picks the logistic head's L2 strength by K-fold validation loss
and refits on all rows. :func:`fit_live_head` also picks what the head is fitted on, from
the live rows themselves: ``det`` labels ``1[q_small >= q_large]`` or ``diff`` labels
``(1 + q_small - q_large) / 2`` (:func:`~shared_router.training.labels.diff_labels`). Which
one routes better depends on the pair: on binary qualities with few rows ``det`` does, on
continuous ones (a judge's graded scores) ``diff`` does, by a wide margin
(``benchmarks/live_replay.py``). ``"auto"`` compares them by the gap recovered of their
out-of-fold scores, the measure the :class:`~shared_router.live.retraining.Retrainer` swaps
on. The chosen head's out-of-fold scores come back with it: scores of rows that no head
which made them was fitted on, so the live calibration can stand on the fitting rows too
(cross-fitting) instead of on the held-out rows alone. :func:`refit_live_head` fits a chosen
recipe (label kind and L2 strength) again on more rows, with their out-of-fold scores: the
``Retrainer`` compares a head fitted on part of the rows and then serves one fitted on all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np

from shared_router.errors import ConfigurationError, TrainingError
from shared_router.evaluation.curves import gap_recovered_by_scores
from shared_router.model.head import MLPHead
from shared_router.training.labels import det_labels, diff_labels
from shared_router.training.logistic import LogisticFit, fit_logistic

__all__ = [
    "LIVE_LABELS",
    "LiveHeadFit",
    "LiveLabels",
    "checked_live_labels",
    "fit_cross_validated",
    "fit_live_head",
    "refit_live_head",
]

LiveLabels = Literal["det", "diff", "auto"]
LIVE_LABELS: tuple[str, ...] = ("det", "diff", "auto")
"""What a live head can be fitted on: one label kind, or ``"auto"`` to choose."""


def checked_live_labels(labels: object) -> LiveLabels:
    """``labels`` as a live head's label kind.

    Raises:
        ConfigurationError: For anything but one of :data:`LIVE_LABELS`.
    """
    if isinstance(labels, str) and labels in LIVE_LABELS:
        return cast("LiveLabels", labels)
    raise ConfigurationError(f"labels must be one of {LIVE_LABELS}, got {labels!r}")


_LABEL_KINDS = {"det": det_labels, "diff": diff_labels}


def fit_cross_validated(
    X: np.ndarray, y: np.ndarray, *, l2: Sequence[float], folds: int, seed: int
) -> LogisticFit:
    """The logistic head with its L2 strength chosen by K-fold cross-validation, then refitted.

    Each of ``folds`` random folds is held out once while the others fit every strength; the
    strength with the lowest validation BCE summed over the folds is refitted on all rows, so
    every row both helps choose the regularisation and fits the head (a single split would
    leave a fifth of the few live rows out of the fit). Folds whose other rows have one label
    only are skipped.

    Args:
        X: Embeddings, shape ``(n, dim)``.
        y: Labels in [0, 1].
        l2: The strengths to choose from.
        folds: How many folds (at least 2).
        seed: Seed of the fold assignment.

    Returns:
        The head refitted on all rows, the chosen ``l2`` (the stronger one on a tie) and each
        strength's validation BCE per held-out row over the folds.

    Raises:
        ConfigurationError: For fewer than 2 folds.
        TrainingError: When no fold can be fitted (labels all equal) or the inputs are bad.
    """
    if folds < 2:
        raise ConfigurationError(f"folds must be >= 2, got {folds!r}")
    grid = tuple(sorted({float(v) for v in l2}))
    assignment = _folds(len(y), folds, seed)
    losses = dict.fromkeys(grid, 0.0)
    counted = 0
    for fold in range(folds):
        held = assignment == fold
        if not held.any() or np.unique(y[~held]).size < 2:
            continue
        fitted = fit_logistic(X[~held], y[~held], X_val=X[held], y_val=y[held], l2=grid)
        for strength, loss in fitted.val_losses.items():
            losses[strength] += loss * int(held.sum())
        counted += int(held.sum())
    if not counted:
        raise TrainingError(
            f"no fold of {len(y)} rows has two label values to fit; collect more varied rows"
        )
    chosen = min(grid, key=lambda strength: (losses[strength], -strength))
    head = fit_logistic(X, y, l2=chosen).head
    return LogisticFit(head, chosen, {k: v / counted for k, v in losses.items()})


@dataclass(frozen=True, eq=False)
class LiveHeadFit:
    """A live head and how it was chosen.

    Attributes:
        head: The logistic head, fitted on all the rows.
        labels: The label kind it was fitted on (``"det"`` or ``"diff"``).
        l2: Its L2 strength.
        label_gaps: For ``"auto"``, each kind's out-of-fold gap recovered on the rows
            (empty when one kind was asked for).
        out_of_fold: The chosen kind's out-of-fold scores of the rows, in their order: each
            fold scored by a head fitted on the other folds at ``l2``. None when a fold's
            other rows have one label only.
    """

    head: MLPHead
    labels: str
    l2: float
    label_gaps: dict[str, float]
    out_of_fold: np.ndarray | None


def fit_live_head(
    X: np.ndarray,
    small: np.ndarray,
    large: np.ndarray,
    *,
    labels: LiveLabels = "auto",
    l2: Sequence[float],
    folds: int,
    seed: int,
) -> LiveHeadFit:
    """Fit a live head on rows with both qualities, choosing its labels when asked.

    Each kind asked for is fitted as :func:`fit_cross_validated` does; then, at the L2
    strength it chose, each of ``folds`` folds is scored by a head fitted on the other folds.
    With ``labels="auto"`` the kind whose out-of-fold scores recover more of the gap on the
    rows is kept (``det`` on a tie, or when the gap is undefined).

    Args:
        X: Embeddings, shape ``(n, dim)``.
        small: The small model's quality per row, in [0, 1].
        large: The large model's quality per row, in [0, 1].
        labels: ``"det"``, ``"diff"`` or ``"auto"``.
        l2: The L2 strengths to choose from.
        folds: Folds of both cross-validations (at least 2).
        seed: Seed of the fold assignments.

    Returns:
        The head, its label kind and L2 strength, the kinds' out-of-fold gaps and the chosen
        kind's out-of-fold scores.

    Raises:
        ConfigurationError: For an unknown label kind or fewer than 2 folds.
        TrainingError: When no head can be fitted (the labels of every kind all equal).
    """
    labels = checked_live_labels(labels)
    targets = {kind: label(small, large) for kind, label in _LABEL_KINDS.items()}
    if labels != "auto":
        y = targets[labels]
        fitted = fit_cross_validated(X, y, l2=l2, folds=folds, seed=seed)
        scores = _out_of_fold_scores(X, y, fitted.l2, folds, seed)
        return LiveHeadFit(fitted.head, labels, fitted.l2, {}, scores)
    fits: dict[str, LogisticFit] = {}
    out_of_fold: dict[str, np.ndarray | None] = {}
    gaps: dict[str, float] = {}
    for kind, y in targets.items():
        try:
            fits[kind] = fit_cross_validated(X, y, l2=l2, folds=folds, seed=seed)
        except TrainingError:
            continue
        scores = out_of_fold[kind] = _out_of_fold_scores(X, y, fits[kind].l2, folds, seed)
        gaps[kind] = (
            float("nan") if scores is None else gap_recovered_by_scores(scores, small, large)
        )
    if not fits:
        raise TrainingError(
            f"no label kind of {len(small)} rows has two values to fit; collect more varied rows"
        )
    best = max(gaps, key=lambda kind: (np.nan_to_num(gaps[kind], nan=-np.inf), kind == "det"))
    return LiveHeadFit(fits[best].head, best, fits[best].l2, gaps, out_of_fold[best])


def refit_live_head(
    X: np.ndarray,
    small: np.ndarray,
    large: np.ndarray,
    *,
    recipe: LiveHeadFit,
    folds: int,
    seed: int,
) -> LiveHeadFit:
    """Fit ``recipe``'s label kind at its L2 strength on these rows, with their out-of-fold scores.

    Nothing is chosen again: the head and each fold's head are fitted at ``recipe.l2`` on
    ``recipe.labels`` labels, so a recipe chosen and compared on part of the rows can serve
    fitted on all of them.

    Args:
        X: Embeddings, shape ``(n, dim)``.
        small: The small model's quality per row, in [0, 1].
        large: The large model's quality per row, in [0, 1].
        recipe: The fit whose label kind and L2 strength to use (from :func:`fit_live_head`).
        folds: Folds of the out-of-fold scores (at least 2).
        seed: Seed of the fold assignment.

    Returns:
        The head fitted on all the rows, with ``recipe``'s kind, strength and label gaps, and
        the rows' out-of-fold scores.

    Raises:
        ConfigurationError: For fewer than 2 folds.
        TrainingError: When the rows' labels all equal.
    """
    if folds < 2:
        raise ConfigurationError(f"folds must be >= 2, got {folds!r}")
    y = _LABEL_KINDS[recipe.labels](small, large)
    head = fit_logistic(X, y, l2=recipe.l2).head
    scores = _out_of_fold_scores(X, y, recipe.l2, folds, seed)
    return LiveHeadFit(head, recipe.labels, recipe.l2, recipe.label_gaps, scores)


def _folds(n: int, folds: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n) % folds


def _out_of_fold_scores(
    X: np.ndarray, y: np.ndarray, l2: float, folds: int, seed: int
) -> np.ndarray | None:
    """Each fold scored by a head fitted on the other folds (None when one cannot be fitted)."""
    assignment = _folds(len(y), folds, seed + 1)
    scores = np.zeros(len(y))
    for fold in range(folds):
        held = assignment == fold
        if not held.any():
            continue
        if np.unique(y[~held]).size < 2:
            return None
        scores[held] = fit_logistic(X[~held], y[~held], l2=l2).head.predict_proba(X[held])
    return scores
