"""The exact L2-regularised logistic head: Newton's method in numpy, no torch.

:func:`fit_logistic` fits an L2-regularised logistic regression on soft labels exactly and
picks the regularisation strength with the lowest validation loss. On the routing
benchmarks (``benchmarks/router_variants.py``) it matches or beats the MLP head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared_router._internal.blas_threads import one_blas_thread
from shared_router.errors import TrainingError
from shared_router.model.head import MLPHead
from shared_router.training.checks import check_xy

__all__ = ["DEFAULT_L2_GRID", "LogisticFit", "fit_logistic"]

_MIN_IMPROVEMENT = 1e-7

DEFAULT_L2_GRID: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
"""The L2 strengths :func:`fit_logistic` tries by default (penalty ``l2 / 2 * |w|^2`` on the
mean loss; the bias is not penalised)."""

_NEWTON_TOL = 1e-10

_RIDGE = 1e-10  # keeps the Hessian invertible when every p(1 - p) underflows


@dataclass(frozen=True, eq=False)
class LogisticFit:
    """The outcome of :func:`fit_logistic`.

    Attributes:
        head: The fitted logistic head (``hidden_sizes=()``), for the chosen ``l2``.
        l2: The chosen L2 strength.
        val_losses: Validation BCE per tried ``l2`` (empty without validation data).
    """

    head: MLPHead
    l2: float
    val_losses: dict[float, float]


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    *,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    l2: float | Sequence[float] = DEFAULT_L2_GRID,
    max_iter: int = 100,
) -> LogisticFit:
    """Fit an L2-regularised logistic regression on soft labels exactly, in numpy.

    Minimises ``mean(BCE(sigmoid(X w + b), y)) + l2 / 2 * |w|^2`` with Newton's method and a
    backtracking line search (the problem is strictly convex, so the optimum is unique and
    does not depend on a seed, a learning rate or an epoch count). With several ``l2`` values
    each is fitted (strongest first, each warm-started from the previous one) and the one
    with the lowest validation BCE is kept. BLAS runs on one thread meanwhile
    (:func:`~shared_router._internal.blas_threads.one_blas_thread`).

    Args:
        X: Embeddings, shape ``(n, dim)``.
        y: Soft labels in [0, 1], shape ``(n,)``.
        X_val: Validation embeddings; required when ``l2`` holds several values.
        y_val: Validation labels, given together with ``X_val``.
        l2: One L2 strength (> 0) or several to choose from on validation data.
        max_iter: Most Newton steps per ``l2``.

    Returns:
        The fitted head, the chosen ``l2`` and the validation loss of every ``l2`` tried.

    Raises:
        TrainingError: On malformed inputs, labels all equal, an ``l2`` that is not a positive
            finite number, or several ``l2`` values without validation data.
    """
    X_arr, y_arr = check_xy(X, y, "X", "y")
    if (X_val is None) != (y_val is None):
        raise TrainingError("give X_val and y_val together, or neither")
    val = None
    if X_val is not None and y_val is not None:
        val = check_xy(X_val, y_val, "X_val", "y_val")
        if val[0].shape[1] != X_arr.shape[1]:
            raise TrainingError(f"X has {X_arr.shape[1]} columns but X_val has {val[0].shape[1]}")
    grid = sorted({float(v) for v in ([l2] if isinstance(l2, (int, float)) else l2)}, reverse=True)
    if not grid or not all(math.isfinite(v) and v > 0.0 for v in grid):
        raise TrainingError(f"l2 must be positive finite numbers, got {l2!r}")
    if len(grid) > 1 and val is None:
        raise TrainingError(
            f"choosing l2 among {len(grid)} values needs validation data (X_val, y_val); "
            "give them, or pass a single l2"
        )
    if max_iter < 1:
        raise TrainingError(f"max_iter must be >= 1, got {max_iter}")
    design = np.column_stack([X_arr.astype(np.float64), np.ones(len(X_arr))])
    targets = y_arr.astype(np.float64)
    coef = np.zeros(design.shape[1])
    fits: dict[float, np.ndarray] = {}
    with one_blas_thread():  # small solves: BLAS threads only wait for each other
        for strength in grid:
            coef = _newton_logistic(design, targets, strength, coef, max_iter)
            fits[strength] = coef
    losses: dict[float, float] = {}
    chosen = grid[0]
    if val is not None:
        X_check, y_check = val[0].astype(np.float64), val[1].astype(np.float64)
        for strength, fitted in fits.items():
            z = X_check @ fitted[:-1] + fitted[-1]
            losses[strength] = float(np.mean(np.logaddexp(0.0, z) - y_check * z))
            if losses[strength] < losses[chosen] - _MIN_IMPROVEMENT:
                chosen = strength
    weights = fits[chosen]
    head = MLPHead(
        X_arr.shape[1],
        (),
        weights={
            "layers.0.weight": weights[None, :-1].astype(np.float32),
            "layers.0.bias": weights[-1:].astype(np.float32),
        },
    )
    return LogisticFit(head=head, l2=chosen, val_losses=losses)


def _newton_logistic(
    design: np.ndarray, y: np.ndarray, l2: float, start: np.ndarray, max_iter: int
) -> np.ndarray:
    """Minimise the penalised mean BCE from ``start`` (last column of ``design`` is the bias)."""
    n, size = design.shape
    penalty = np.full(size, l2)
    penalty[-1] = 0.0

    def objective(coef: np.ndarray) -> float:
        z = design @ coef
        return float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * coef**2))

    coef = start.copy()
    current = objective(coef)
    for _ in range(max_iter):
        p = _sigmoid(design @ coef)
        gradient = design.T @ (p - y) / n + penalty * coef
        hessian = (design.T * (p * (1.0 - p))) @ design / n
        hessian[np.diag_indices(size)] += penalty + _RIDGE
        step = np.linalg.solve(hessian, gradient)
        decrease = float(gradient @ step)
        if decrease <= _NEWTON_TOL:
            break
        scale = 1.0
        while True:
            candidate = coef - scale * step
            value = objective(candidate)
            if value <= current - 1e-4 * scale * decrease or scale < 1e-10:
                break
            scale *= 0.5
        coef, current = candidate, value
    return coef


def _sigmoid(z: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(z))
    out: np.ndarray = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out
