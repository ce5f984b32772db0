"""The MLP head trained with torch (AdamW, early stopping) on frozen embeddings.

Seeded and deterministic: the same inputs and seed give the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shared_router._internal.progress import ProgressBar
from shared_router.errors import TrainingError
from shared_router.model.head import MLPHead
from shared_router.training.checks import check_hyperparameters, check_xy
from shared_router.training.torch_common import (
    EarlyStopping,
    copy_state,
    deterministic,
    head_logits,
    import_torch,
    torch_head,
)

__all__ = ["train_head"]


def train_head(
    X: np.ndarray,
    y: np.ndarray,
    *,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    hidden_sizes: Sequence[int] = (256,),
    dropout: float = 0.1,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    epochs: int = 100,
    batch_size: int = 64,
    patience: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> MLPHead:
    """Train an :class:`~shared_router.model.head.MLPHead` on fixed embeddings.

    Args:
        X: Embeddings, shape ``(n, dim)``.
        y: Soft labels in [0, 1], shape ``(n,)`` (1 = the small model is good enough).
        X_val: Validation embeddings for early stopping; None trains all ``epochs``.
        y_val: Validation labels, given together with ``X_val``.
        hidden_sizes: Hidden layer widths; ``()`` is a logistic regression.
        dropout: Dropout after each hidden layer while training.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        epochs: Most passes over the data.
        batch_size: Rows per step.
        patience: Epochs without a better validation loss before stopping.
        seed: Seeds initialisation, shuffling and dropout.
        progress: Show a progress bar over epochs (on stderr).

    Returns:
        The trained head, with the weights of the best validation epoch.

    Raises:
        TrainingError: On malformed inputs or labels all equal.
        MissingDependencyError: When torch is not installed.
    """
    X_arr, y_arr = check_xy(X, y, "X", "y")
    val = None
    if (X_val is None) != (y_val is None):
        raise TrainingError("give X_val and y_val together, or neither")
    if X_val is not None and y_val is not None:
        val = check_xy(X_val, y_val, "X_val", "y_val")
        if val[0].shape[1] != X_arr.shape[1]:
            raise TrainingError(f"X has {X_arr.shape[1]} columns but X_val has {val[0].shape[1]}")
    check_hyperparameters(epochs=epochs, batch_size=batch_size, patience=patience, dropout=dropout)
    torch = import_torch()
    init = MLPHead(X_arr.shape[1], hidden_sizes, seed=seed)
    with deterministic(torch, seed):
        module = torch_head(torch, init, dropout)
        optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        X_t, y_t = torch.from_numpy(X_arr), torch.from_numpy(y_arr)
        val_t = None if val is None else (torch.from_numpy(val[0]), torch.from_numpy(val[1]))
        generator = torch.Generator().manual_seed(seed)
        stopping = EarlyStopping(patience)
        with ProgressBar(epochs, "training router head", enabled=progress) as bar:
            for _ in range(epochs):
                order = torch.randperm(len(X_t), generator=generator)
                train_loss = _train_epoch(
                    torch, module, optimizer, loss_fn, X_t, y_t, order, batch_size
                )
                bar.advance()
                if val_t is None:
                    bar.set_status(f"train loss {train_loss:.4f}")
                    continue
                module.eval()
                with torch.no_grad():
                    val_loss = float(loss_fn(head_logits(torch, module, val_t[0]), val_t[1]))
                bar.set_status(f"train loss {train_loss:.4f}, val loss {val_loss:.4f}")
                if stopping.should_stop(val_loss, lambda: copy_state(module)):
                    break
        if val_t is not None and stopping.best_state is not None:
            module.load_state_dict(stopping.best_state)
        weights = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
    return MLPHead(X_arr.shape[1], hidden_sizes, weights=weights)


def _train_epoch(
    torch: Any,
    module: Any,
    optimizer: Any,
    loss_fn: Any,
    X_t: Any,
    y_t: Any,
    order: Any,
    batch_size: int,
) -> float:
    """One pass over the rows in ``order``; returns the mean training loss."""
    module.train()
    total = 0.0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        optimizer.zero_grad()
        loss = loss_fn(head_logits(torch, module, X_t[rows]), y_t[rows])
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(rows)
    return total / len(X_t)
