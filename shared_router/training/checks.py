"""Checks of training inputs shared by the numpy and torch trainers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared_router._internal.validation import text_list
from shared_router.errors import TrainingError

__all__ = ["check_hyperparameters", "check_labels", "check_texts", "check_xy"]


def check_labels(y: np.ndarray, n: int, y_name: str) -> np.ndarray:
    y_arr = np.asarray(y, dtype=np.float64)
    if y_arr.shape != (n,):
        raise TrainingError(f"{y_name} must have shape ({n},), got {y_arr.shape}")
    if not np.all(np.isfinite(y_arr)) or y_arr.min() < 0.0 or y_arr.max() > 1.0:
        raise TrainingError(f"{y_name} must hold labels in [0, 1] (soft labels allowed)")
    return y_arr.astype(np.float32)


def check_xy(
    X: np.ndarray, y: np.ndarray, x_name: str, y_name: str
) -> tuple[np.ndarray, np.ndarray]:
    X_arr = np.asarray(X, dtype=np.float32)
    if X_arr.ndim != 2 or X_arr.shape[0] < 2:
        raise TrainingError(f"{x_name} must be 2-D with at least 2 rows, got shape {X_arr.shape}")
    if not np.all(np.isfinite(X_arr)):
        raise TrainingError(f"{x_name} holds NaN or infinite values")
    y_arr = check_labels(y, X_arr.shape[0], y_name)
    if x_name == "X" and float(y_arr.max() - y_arr.min()) == 0.0:
        raise TrainingError(
            f"all {len(y_arr)} labels equal {float(y_arr[0]):.6g}; a router cannot learn to tell "
            "queries apart; use more data or another label type"
        )
    return np.ascontiguousarray(X_arr), y_arr


def check_texts(
    texts: Sequence[str], y: np.ndarray, t_name: str, y_name: str
) -> tuple[list[str], np.ndarray]:
    items = text_list(texts, t_name, TrainingError)
    if len(items) < 2:
        raise TrainingError(f"{t_name} must hold at least 2 texts, got {len(items)}")
    y_arr = check_labels(y, len(items), y_name)
    if t_name == "texts" and float(y_arr.max() - y_arr.min()) == 0.0:
        raise TrainingError(
            f"all {len(y_arr)} labels equal {float(y_arr[0]):.6g}; a router cannot learn to tell "
            "queries apart; use more data or another label type"
        )
    return items, y_arr


def check_hyperparameters(*, epochs: int, batch_size: int, patience: int, dropout: float) -> None:
    if epochs < 1 or batch_size < 1 or patience < 1:
        raise TrainingError(
            f"epochs, batch_size and patience must be >= 1, got epochs={epochs}, "
            f"batch_size={batch_size}, patience={patience}"
        )
    if not 0.0 <= dropout < 1.0:
        raise TrainingError(f"dropout must be in [0, 1), got {dropout}")
