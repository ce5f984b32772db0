"""Fine-tuning the encoder together with the head (the paper's setting), with torch.

Slow on CPU; meant for a GPU. Seeded: the same inputs and seed give the same weights on the
same device.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared_router._internal.progress import ProgressBar
from shared_router.errors import TrainingError
from shared_router.model.head import MLPHead
from shared_router.training.checks import check_hyperparameters, check_texts
from shared_router.training.torch_common import (
    EarlyStopping,
    copy_state,
    deterministic,
    head_logits,
    import_torch,
    torch_head,
)

if TYPE_CHECKING:
    from shared_router.encoders.encoder import Encoder

__all__ = ["fine_tune_encoder"]


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
    saved as a sentence-transformers folder that :class:`~shared_router.encoders.encoder.Encoder`
    can load. Slow on CPU; meant for a GPU.

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
        progress: Show a progress bar over epochs (on stderr).

    Returns:
        ``(folder of the fine-tuned encoder, trained head)``.

    Raises:
        TrainingError: On malformed inputs.
        MissingDependencyError: When torch or sentence-transformers is not installed.
    """
    from shared_router.encoders.torch_backend import load_sentence_transformer

    train, val, out = _check_inputs(texts, y, val_texts, val_y, output_dir)
    check_hyperparameters(epochs=epochs, batch_size=batch_size, patience=patience, dropout=dropout)
    torch = import_torch()
    model = load_sentence_transformer(encoder.path or encoder.name_or_path, device=device)
    dim = int(encoder.dim)
    init = MLPHead(dim, hidden_sizes, seed=seed)
    with deterministic(torch, seed):
        head = torch_head(torch, init, dropout).to(model.device)
        optimizer = torch.optim.AdamW(
            [
                {"params": list(model.parameters()), "lr": lr},
                {"params": list(head.parameters()), "lr": head_lr},
            ],
            weight_decay=weight_decay,
        )
        tuning = _Tuning(torch, model, head, encoder.effective_max_tokens, batch_size)
        generator = torch.Generator().manual_seed(seed)
        stopping = EarlyStopping(patience)
        with ProgressBar(epochs, "fine-tuning encoder", enabled=progress) as bar:
            for _ in range(epochs):
                order = torch.randperm(len(train[0]), generator=generator).tolist()
                loss = tuning.train_epoch(optimizer, *train, order)
                bar.advance()
                bar.set_status(f"loss {loss:.4f}")
                if val is None:
                    continue
                current = tuning.mean_loss(*val)
                bar.set_status(f"val loss {current:.4f}")
                if stopping.should_stop(current, lambda: (copy_state(model), copy_state(head))):
                    break
        if stopping.best_state is not None:
            model.load_state_dict(stopping.best_state[0])
            head.load_state_dict(stopping.best_state[1])
        out.mkdir(parents=True, exist_ok=True)
        model.save(str(out))
        weights = {k: v.detach().cpu().numpy().copy() for k, v in head.state_dict().items()}
    return out, MLPHead(dim, hidden_sizes, weights=weights)


def _check_inputs(
    texts: Sequence[str],
    y: np.ndarray,
    val_texts: Sequence[str] | None,
    val_y: np.ndarray | None,
    output_dir: str | Path,
) -> tuple[tuple[list[str], np.ndarray], tuple[list[str], np.ndarray] | None, Path]:
    """The checked training and validation sets, and the output folder."""
    train = check_texts(texts, y, "texts", "y")
    val = None
    if (val_texts is None) != (val_y is None):
        raise TrainingError("give val_texts and val_y together, or neither")
    if val_texts is not None and val_y is not None:
        val = check_texts(val_texts, val_y, "val_texts", "val_y")
    out = Path(output_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TrainingError(f"output_dir {str(out)!r} exists and is not an empty folder")
    return train, val, out


class _Tuning:
    """The encoder and head being tuned, with the loss of a batch of texts."""

    def __init__(self, torch: Any, model: Any, head: Any, max_tokens: int, batch_size: int) -> None:
        self.torch, self.model, self.head = torch, model, head
        self.max_tokens, self.batch_size = max_tokens, batch_size
        self.loss_fn = torch.nn.BCEWithLogitsLoss()

    def logits(self, batch: Sequence[str]) -> Any:
        from shared_router.encoders.torch_backend import tokenize_head_tail

        features = tokenize_head_tail(self.model, batch, self.max_tokens)
        return head_logits(self.torch, self.head, self.model(features)["sentence_embedding"])

    def train_epoch(
        self, optimizer: Any, texts: list[str], y: np.ndarray, order: list[int]
    ) -> float:
        """One pass in ``order``; returns the last batch's loss."""
        self.model.train()
        self.head.train()
        last = 0.0
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            target = self.torch.from_numpy(y[rows]).to(self.model.device)
            optimizer.zero_grad()
            loss = self.loss_fn(self.logits([texts[i] for i in rows]), target)
            loss.backward()
            optimizer.step()
            last = float(loss.detach())
        return last

    def mean_loss(self, texts: list[str], y: np.ndarray) -> float:
        """The mean loss over ``texts`` in eval mode, without gradients."""
        self.model.eval()
        self.head.eval()
        total = 0.0
        with self.torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = texts[start : start + self.batch_size]
                target = self.torch.from_numpy(y[start : start + self.batch_size])
                loss = self.loss_fn(self.logits(batch), target.to(self.model.device))
                total += float(loss) * len(batch)
        return total / len(texts)
