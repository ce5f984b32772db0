"""What the torch trainers share: the import, determinism, the torch head, early stopping.

torch comes with the ``train`` extra and is imported only when a trainer runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared_router._internal.extras import require_extra
from shared_router.model.head import MLPHead

__all__ = [
    "EarlyStopping",
    "copy_state",
    "deterministic",
    "head_logits",
    "import_torch",
    "torch_head",
]

MIN_IMPROVEMENT = 1e-7
"""How much lower a validation loss must be to count as better."""


def import_torch() -> Any:
    """Import torch, or raise :class:`~shared_router.errors.MissingDependencyError`."""
    return require_extra("torch", extra="train", purpose="training")


class EarlyStopping:
    """Keeps the best validation loss and a snapshot of its weights; says when to stop.

    Args:
        patience: Epochs without a better validation loss before stopping.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_loss = math.inf
        self.best_state: Any = None
        self._stale = 0

    def should_stop(self, loss: float, snapshot: Any) -> bool:
        """Record an epoch's validation loss; ``snapshot()`` is taken when it is the best.

        Args:
            loss: The epoch's validation loss.
            snapshot: A callable returning a copy of the current weights.

        Returns:
            True when ``patience`` epochs in a row were not better.
        """
        if loss < self.best_loss - MIN_IMPROVEMENT:
            self.best_loss, self.best_state, self._stale = loss, snapshot(), 0
            return False
        self._stale += 1
        return self._stale >= self.patience


@contextmanager
def deterministic(torch: Any, seed: int) -> Iterator[None]:
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


def torch_head(torch: Any, init: MLPHead, dropout: float) -> Any:
    """A torch module with :class:`MLPHead`'s layout (``layers.{i}``), starting at ``init``.

    Run it with :func:`head_logits`; ``dropout`` applies after each hidden layer in train
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


def head_logits(torch: Any, module: Any, x: Any) -> Any:
    """The head's logits for a batch of embeddings, shape ``(batch,)``."""
    h = x
    for layer in module.layers[:-1]:
        h = torch.nn.functional.dropout(
            torch.relu(layer(h)), p=module.dropout_p, training=module.training
        )
    return module.layers[-1](h).squeeze(-1)


def copy_state(module: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
