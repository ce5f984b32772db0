"""Training: the scoring head on frozen embeddings, or the encoder and head together.

All of them minimise binary cross-entropy against soft labels in [0, 1] (the paper's loss for
r_det, r_prob and r_trans labels).

* :func:`train_head` and :func:`fine_tune_encoder` use AdamW, stop early on the validation
  loss and restore the best weights. They are seeded and deterministic: the same inputs and
  seed give the same weights. torch (and sentence-transformers for fine-tuning) is imported
  inside the functions.
* :func:`fit_logistic` fits an L2-regularised logistic regression exactly (Newton's method,
  numpy only) and picks the regularisation strength with the lowest validation loss. On the
  routing benchmarks (``benchmarks/router_variants.py``) it matches or beats the MLP head.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared_router.errors import TrainingError
from shared_router.model.head import MLPHead

if TYPE_CHECKING:
    from shared_router.encoders.encoder import Encoder

__all__ = ["DEFAULT_L2_GRID", "LogisticFit", "fine_tune_encoder", "fit_logistic", "train_head"]

_TRAIN_EXTRA = "pip install 'hybrid-llm[train]'"
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
    with the lowest validation BCE is kept.

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
    X_arr, y_arr = _check_xy(X, y, "X", "y")
    if (X_val is None) != (y_val is None):
        raise TrainingError("give X_val and y_val together, or neither")
    val = None
    if X_val is not None and y_val is not None:
        val = _check_xy(X_val, y_val, "X_val", "y_val")
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
        progress: Show a tqdm progress bar.

    Returns:
        The trained head, with the weights of the best validation epoch.

    Raises:
        TrainingError: On malformed inputs, labels all equal, or torch missing.
    """
    X_arr, y_arr = _check_xy(X, y, "X", "y")
    val = None
    if (X_val is None) != (y_val is None):
        raise TrainingError("give X_val and y_val together, or neither")
    if X_val is not None and y_val is not None:
        val = _check_xy(X_val, y_val, "X_val", "y_val")
        if val[0].shape[1] != X_arr.shape[1]:
            raise TrainingError(f"X has {X_arr.shape[1]} columns but X_val has {val[0].shape[1]}")
    _check_hyper(epochs=epochs, batch_size=batch_size, patience=patience, dropout=dropout)
    torch = _import_torch()
    init = MLPHead(X_arr.shape[1], hidden_sizes, seed=seed)
    with _deterministic(torch, seed):
        module = _torch_head(torch, init, dropout)
        optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        X_t, y_t = torch.from_numpy(X_arr), torch.from_numpy(y_arr)
        val_t = None if val is None else (torch.from_numpy(val[0]), torch.from_numpy(val[1]))
        generator = torch.Generator().manual_seed(seed)
        best_loss, best_state, stale = math.inf, _copy_state(module), 0
        bar = _tqdm(range(epochs), progress, "training router head")
        for _ in bar:
            module.train()
            order = torch.randperm(len(X_t), generator=generator)
            total = 0.0
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = loss_fn(_head_logits(torch, module, X_t[rows]), y_t[rows])
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(rows)
            train_loss = total / len(X_t)
            if val_t is None:
                bar.set_postfix(train_loss=f"{train_loss:.4f}")
                continue
            module.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(_head_logits(torch, module, val_t[0]), val_t[1]))
            bar.set_postfix(train_loss=f"{train_loss:.4f}", val_loss=f"{val_loss:.4f}")
            if val_loss < best_loss - _MIN_IMPROVEMENT:
                best_loss, best_state, stale = val_loss, _copy_state(module), 0
            else:
                stale += 1
                if stale >= patience:
                    break
        bar.close()
        if val_t is not None:
            module.load_state_dict(best_state)
        weights = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
    return MLPHead(X_arr.shape[1], hidden_sizes, weights=weights)


def fine_tune_encoder(
    texts: Sequence[str],
    y: np.ndarray,
    *,
    encoder: Encoder,
    output_dir: str | Path,
    val_texts: Sequence[str] | None = None,
    val_y: np.ndarray | None = None,
    hidden_sizes: Sequence[int] = (256,),
    dropout: float = 0.1,
    lr: float = 2e-5,
    head_lr: float = 1e-3,
    weight_decay: float = 0.01,
    epochs: int = 3,
    batch_size: int = 16,
    patience: int = 1,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> tuple[Path, MLPHead]:
    """Fine-tune the whole encoder together with a head (the paper's setting).

    The sentence-transformers model behind ``encoder`` is trained end to end with the head on
    BCE against soft labels, with head+tail clipping of long texts as at inference. The best
    weights (by validation loss when validation data is given, else the last epoch's) are
    saved as a sentence-transformers folder that :class:`~shared_router.encoders.encoder.Encoder` can
    load. Slow on CPU; meant for a GPU.

    Args:
        texts: Training texts.
        y: Soft labels in [0, 1], one per text.
        encoder: The starting encoder (its model and ``max_tokens`` are used).
        output_dir: Folder the fine-tuned encoder is saved into (created; may exist empty).
        val_texts: Validation texts for early stopping.
        val_y: Validation labels.
        hidden_sizes: Head hidden layer widths.
        dropout: Head dropout while training (the encoder keeps its own dropout).
        lr: AdamW learning rate of the encoder.
        head_lr: AdamW learning rate of the head.
        weight_decay: AdamW weight decay.
        epochs: Most passes over the data.
        batch_size: Texts per step.
        patience: Epochs without a better validation loss before stopping.
        seed: Seeds the head initialisation, shuffling and dropout.
        device: Torch device (None lets torch pick).
        progress: Show a tqdm progress bar.

    Returns:
        ``(folder of the fine-tuned encoder, trained head)``.

    Raises:
        TrainingError: On malformed inputs or missing torch / sentence-transformers.
    """
    from shared_router.encoders.encoder import load_sentence_transformer, tokenize_head_tail

    text_list, y_arr = _check_texts(texts, y, "texts", "y")
    val = None
    if (val_texts is None) != (val_y is None):
        raise TrainingError("give val_texts and val_y together, or neither")
    if val_texts is not None and val_y is not None:
        val = _check_texts(val_texts, val_y, "val_texts", "val_y")
    _check_hyper(epochs=epochs, batch_size=batch_size, patience=patience, dropout=dropout)
    out = Path(output_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TrainingError(f"output_dir {str(out)!r} exists and is not an empty folder")
    torch = _import_torch()
    max_tokens = encoder.effective_max_tokens
    model = load_sentence_transformer(encoder.path or encoder.name_or_path, device=device)
    dim = int(encoder.dim)
    init = MLPHead(dim, hidden_sizes, seed=seed)
    with _deterministic(torch, seed):
        head = _torch_head(torch, init, dropout).to(model.device)
        optimizer = torch.optim.AdamW(
            [
                {"params": list(model.parameters()), "lr": lr},
                {"params": list(head.parameters()), "lr": head_lr},
            ],
            weight_decay=weight_decay,
        )
        loss_fn = torch.nn.BCEWithLogitsLoss()

        def logits(batch: Sequence[str]) -> Any:
            features = tokenize_head_tail(model, batch, max_tokens)
            return _head_logits(torch, head, model(features)["sentence_embedding"])

        def mean_loss(eval_texts: list[str], eval_y: np.ndarray) -> float:
            model.eval()
            head.eval()
            total = 0.0
            with torch.no_grad():
                for start in range(0, len(eval_texts), batch_size):
                    batch = eval_texts[start : start + batch_size]
                    target = torch.from_numpy(eval_y[start : start + batch_size]).to(model.device)
                    total += float(loss_fn(logits(batch), target)) * len(batch)
            return total / len(eval_texts)

        generator = torch.Generator().manual_seed(seed)
        best_loss, best, stale = math.inf, None, 0
        bar = _tqdm(range(epochs), progress, "fine-tuning encoder")
        for _ in bar:
            model.train()
            head.train()
            order = torch.randperm(len(text_list), generator=generator).tolist()
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                target = torch.from_numpy(y_arr[rows]).to(model.device)
                optimizer.zero_grad()
                loss = loss_fn(logits([text_list[i] for i in rows]), target)
                loss.backward()
                optimizer.step()
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            if val is None:
                continue
            current = mean_loss(*val)
            bar.set_postfix(val_loss=f"{current:.4f}")
            if current < best_loss - _MIN_IMPROVEMENT:
                best_loss, best, stale = current, (_copy_state(model), _copy_state(head)), 0
            else:
                stale += 1
                if stale >= patience:
                    break
        bar.close()
        if best is not None:
            model.load_state_dict(best[0])
            head.load_state_dict(best[1])
        out.mkdir(parents=True, exist_ok=True)
        model.save(str(out))
        weights = {k: v.detach().cpu().numpy().copy() for k, v in head.state_dict().items()}
    return out, MLPHead(dim, hidden_sizes, weights=weights)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise TrainingError(f"training needs torch: {_TRAIN_EXTRA}") from exc
    return torch


@contextmanager
def _deterministic(torch: Any, seed: int) -> Iterator[None]:
    """Seed torch and ask for deterministic kernels, restoring the caller's state after."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)


def _torch_head(torch: Any, init: MLPHead, dropout: float) -> Any:
    """A torch module with :class:`MLPHead`'s layout (``layers.{i}``), starting at ``init``.

    Run it with :func:`_head_logits`; ``dropout`` applies after each hidden layer in train
    mode.
    """
    sizes = (init.input_dim, *init.hidden_sizes, 1)
    module = torch.nn.Module()
    module.layers = torch.nn.ModuleList(
        torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    )
    module.dropout_p = dropout
    module.load_state_dict({k: torch.from_numpy(v) for k, v in init.state_dict().items()})
    return module


def _head_logits(torch: Any, module: Any, x: Any) -> Any:
    """The head's logits for a batch of embeddings, shape ``(batch,)``."""
    h = x
    for layer in module.layers[:-1]:
        h = torch.nn.functional.dropout(
            torch.relu(layer(h)), p=module.dropout_p, training=module.training
        )
    return module.layers[-1](h).squeeze(-1)


def _copy_state(module: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _tqdm(iterable: range, enabled: bool, desc: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if enabled:
            raise TrainingError(f"progress=True needs tqdm: {_TRAIN_EXTRA}") from None
        return _Silent(iterable)
    return tqdm(iterable, desc=desc, disable=not enabled, unit="epoch")


class _Silent:
    """What training needs of a tqdm bar, doing nothing."""

    def __init__(self, iterable: range) -> None:
        self._iterable = iterable

    def __iter__(self) -> Iterator[int]:
        return iter(self._iterable)

    def set_postfix(self, **kwargs: Any) -> None:
        """Ignore the postfix."""

    def close(self) -> None:
        """Nothing to close."""


def _check_labels(y: np.ndarray, n: int, y_name: str) -> np.ndarray:
    y_arr = np.asarray(y, dtype=np.float64)
    if y_arr.shape != (n,):
        raise TrainingError(f"{y_name} must have shape ({n},), got {y_arr.shape}")
    if not np.all(np.isfinite(y_arr)) or y_arr.min() < 0.0 or y_arr.max() > 1.0:
        raise TrainingError(f"{y_name} must hold labels in [0, 1] (soft labels allowed)")
    return y_arr.astype(np.float32)


def _check_xy(
    X: np.ndarray, y: np.ndarray, x_name: str, y_name: str
) -> tuple[np.ndarray, np.ndarray]:
    X_arr = np.asarray(X, dtype=np.float32)
    if X_arr.ndim != 2 or X_arr.shape[0] < 2:
        raise TrainingError(f"{x_name} must be 2-D with at least 2 rows, got shape {X_arr.shape}")
    if not np.all(np.isfinite(X_arr)):
        raise TrainingError(f"{x_name} holds NaN or infinite values")
    y_arr = _check_labels(y, X_arr.shape[0], y_name)
    if x_name == "X" and float(y_arr.max() - y_arr.min()) == 0.0:
        raise TrainingError(
            f"all {len(y_arr)} labels equal {float(y_arr[0]):.6g}; a router cannot learn to tell "
            "queries apart; use more data or another label type"
        )
    return np.ascontiguousarray(X_arr), y_arr


def _check_texts(
    texts: Sequence[str], y: np.ndarray, t_name: str, y_name: str
) -> tuple[list[str], np.ndarray]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TrainingError(f"{t_name} must be a sequence of str")
    items = list(texts)
    if len(items) < 2:
        raise TrainingError(f"{t_name} must hold at least 2 texts, got {len(items)}")
    y_arr = _check_labels(y, len(items), y_name)
    if t_name == "texts" and float(y_arr.max() - y_arr.min()) == 0.0:
        raise TrainingError(
            f"all {len(y_arr)} labels equal {float(y_arr[0]):.6g}; a router cannot learn to tell "
            "queries apart; use more data or another label type"
        )
    return items, y_arr


def _check_hyper(*, epochs: int, batch_size: int, patience: int, dropout: float) -> None:
    if epochs < 1 or batch_size < 1 or patience < 1:
        raise TrainingError(
            f"epochs, batch_size and patience must be >= 1, got epochs={epochs}, "
            f"batch_size={batch_size}, patience={patience}"
        )
    if not 0.0 <= dropout < 1.0:
        raise TrainingError(f"dropout must be in [0, 1), got {dropout}")
