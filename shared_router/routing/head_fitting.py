"""Fitting a :class:`~shared_router.routing.router.Router`'s head with the settings it holds.

The bridge between the router's flat, scikit-learn style hyperparameters and the trainers of
:mod:`shared_router.training`: the exact logistic head, the torch MLP head, or the encoder
fine-tuned together with the head.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared_router.encoders.encoder import Encoder
from shared_router.model.head import MLPHead
from shared_router.training.fine_tune import fine_tune_encoder
from shared_router.training.logistic import fit_logistic
from shared_router.training.torch_head import train_head

if TYPE_CHECKING:
    from shared_router.routing.router import Router

__all__ = ["fit_router_head"]


def fit_router_head(
    router: Router,
    encoder: Encoder,
    texts: list[str],
    y: np.ndarray,
    val: tuple[list[str], np.ndarray] | None,
) -> tuple[Encoder, MLPHead, float | None, np.ndarray | None]:
    """Train the head ``router``'s settings ask for on the encoder's vectors of ``texts``.

    Returns:
        The encoder to route with (a fine-tuned one after fine-tuning), the head, the
        chosen L2 strength of a logistic head (else None), and the validation texts' vectors
        from that encoder (None without validation data or after fine-tuning), so that the
        caller need not encode them again.
    """
    if router.fine_tune:
        return (*_fine_tune(router, encoder, texts, y, val), None, None)
    X = encoder.encode(texts, progress=router.progress)
    X_val = None if val is None else encoder.encode(val[0], progress=router.progress)
    y_val = None if val is None else val[1]
    if router.head_type == "logistic":
        fitted = fit_logistic(X, y, X_val=X_val, y_val=y_val, l2=router.l2)
        return encoder, fitted.head, fitted.l2, X_val
    head = train_head(
        X,
        y,
        X_val=X_val,
        y_val=y_val,
        hidden_sizes=router.hidden_sizes,
        dropout=router.dropout,
        lr=router.lr,
        weight_decay=router.weight_decay,
        epochs=router.epochs,
        batch_size=router.batch_size,
        patience=router.patience,
        seed=router.seed,
        progress=router.progress,
    )
    return encoder, head, None, X_val


def _fine_tune(
    router: Router,
    encoder: Encoder,
    texts: list[str],
    y: np.ndarray,
    val: tuple[list[str], np.ndarray] | None,
) -> tuple[Encoder, MLPHead]:
    """Fine-tune the encoder with an MLP head, into a folder that lives as long as it."""
    folder = Path(tempfile.mkdtemp(prefix="hybrid-llm-encoder-"))
    path, head = fine_tune_encoder(
        texts,
        y,
        encoder=encoder,
        output_dir=folder / "encoder",
        val_texts=None if val is None else val[0],
        val_y=None if val is None else val[1],
        hidden_sizes=router.hidden_sizes,
        dropout=router.dropout,
        lr=router.fine_tune_lr,
        head_lr=router.lr,
        epochs=router.fine_tune_epochs,
        batch_size=router.batch_size,
        patience=router.patience,
        seed=router.seed,
        device=router.device,
        progress=router.progress,
    )
    tuned = Encoder(
        path,
        max_tokens=encoder.effective_max_tokens,
        cache=encoder.cache,
        batch_size=encoder.batch_size,
        device=encoder.device,
    )
    # The folder lives as long as the encoder that reads it (save() copies it).
    weakref.finalize(tuned, shutil.rmtree, folder, ignore_errors=True)
    return tuned, head
