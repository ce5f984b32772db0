"""The trainable scoring head: embedding -> p(small model is good enough).

The head is a small multi-layer perceptron (ReLU between layers, one logit out, sigmoid on
top). ``hidden_sizes=()`` makes it a logistic regression. Inference is plain numpy, so a
trained router scores without torch; :mod:`~shared_router.training.torch_head` trains it with torch
and hands the weights back through :meth:`MLPHead.from_state_dict`.

Weights use torch's ``nn.Linear`` layout: ``layers.{i}.weight`` has shape ``(out, in)`` and
``layers.{i}.bias`` shape ``(out,)``, all float32, so a state dict goes straight into
safetensors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from shared_router.errors import ArtifactError, ConfigurationError, RoutingError

__all__ = ["MLPHead"]

_KEY = re.compile(r"^layers\.(\d+)\.(weight|bias)$")


class MLPHead:
    """A ReLU multi-layer perceptron with one sigmoid output, evaluated in numpy.

    Args:
        input_dim: Size of the embeddings it reads.
        hidden_sizes: Widths of the hidden layers; ``()`` is a logistic regression.
        weights: A state dict (see :meth:`state_dict`) to use. When None, the weights are
            initialised like torch's ``nn.Linear`` (uniform in ``+-1/sqrt(fan_in)``) from
            ``seed``, so initialisation does not depend on torch's random state.
        seed: Seed of the initialisation when ``weights`` is None.

    Raises:
        ArtifactError: When ``weights`` does not fit ``input_dim`` and ``hidden_sizes``.
        ConfigurationError: When ``input_dim`` or a hidden size is not a positive integer.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_sizes: Sequence[int] = (),
        *,
        weights: Mapping[str, np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        sizes = (int(input_dim), *(int(h) for h in hidden_sizes))
        if any(s <= 0 for s in sizes):
            raise ConfigurationError(
                f"input_dim and hidden_sizes must be positive integers, got "
                f"input_dim={input_dim!r}, hidden_sizes={tuple(hidden_sizes)!r}"
            )
        self.input_dim: int = sizes[0]
        self.hidden_sizes: tuple[int, ...] = sizes[1:]
        shapes = list(zip((*sizes[1:], 1), sizes, strict=True))
        if weights is None:
            rng = np.random.default_rng(seed)
            self._weights = []
            self._biases = []
            for out_dim, in_dim in shapes:
                bound = 1.0 / math.sqrt(in_dim)
                w = rng.uniform(-bound, bound, size=(out_dim, in_dim))
                b = rng.uniform(-bound, bound, size=(out_dim,))
                self._weights.append(w.astype(np.float32))
                self._biases.append(b.astype(np.float32))
        else:
            self._weights, self._biases = _check_weights(weights, shapes)

    @property
    def n_layers(self) -> int:
        """Number of linear layers (hidden layers + the output layer)."""
        return len(self._weights)

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Return the raw output (log-odds that the small model is good enough).

        Args:
            X: Embeddings, shape ``(n, input_dim)``.

        Returns:
            float64 array of shape ``(n,)``.

        Raises:
            RoutingError: When ``X`` is not 2-D with ``input_dim`` columns.
        """
        h = np.asarray(X, dtype=np.float64)
        if h.ndim != 2 or h.shape[1] != self.input_dim:
            raise RoutingError(
                f"the head expects embeddings of shape (n, {self.input_dim}), got "
                f"{h.shape}; the encoder and the head do not match (was the router trained "
                "with another encoder?)"
            )
        last = self.n_layers - 1
        for i, (w, b) in enumerate(zip(self._weights, self._biases, strict=True)):
            h = h @ w.T.astype(np.float64) + b.astype(np.float64)
            if i < last:
                np.maximum(h, 0.0, out=h)
        out: np.ndarray = h[:, 0]
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return p(small model is good enough) for each row of ``X``.

        Args:
            X: Embeddings, shape ``(n, input_dim)``.

        Returns:
            float64 array of shape ``(n,)`` with values in [0, 1].
        """
        z = self.logits(X)
        # Stable sigmoid: exp only of non-positive numbers.
        e = np.exp(-np.abs(z))
        p: np.ndarray = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return p

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return the weights as named float32 arrays (copies), ready for safetensors."""
        out: dict[str, np.ndarray] = {}
        for i, (w, b) in enumerate(zip(self._weights, self._biases, strict=True)):
            out[f"layers.{i}.weight"] = w.copy()
            out[f"layers.{i}.bias"] = b.copy()
        return out

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray]) -> MLPHead:
        """Rebuild a head from :meth:`state_dict` output, inferring its sizes.

        Args:
            state: Named arrays ``layers.{i}.weight`` / ``layers.{i}.bias``.

        Returns:
            The head.

        Raises:
            ArtifactError: When keys are missing or unexpected, or shapes do not chain.
        """
        weight_keys = sorted(
            (int(m.group(1)) for k in state if (m := _KEY.match(k)) and m.group(2) == "weight"),
        )
        if not weight_keys:
            raise ArtifactError(
                f"head state dict has no 'layers.<i>.weight' arrays; keys: {sorted(state)}"
            )
        first = np.asarray(state["layers.0.weight"]) if "layers.0.weight" in state else None
        if first is None or first.ndim != 2:
            raise ArtifactError(
                f"head state dict must start with a 2-D 'layers.0.weight'; keys: {sorted(state)}"
            )
        hidden: list[int] = []
        for i in range(len(weight_keys) - 1):
            w = np.asarray(state.get(f"layers.{i}.weight"))
            if w.ndim != 2:
                raise ArtifactError(f"head state dict: 'layers.{i}.weight' is missing or not 2-D")
            hidden.append(int(w.shape[0]))
        return cls(int(first.shape[1]), tuple(hidden), weights=state)

    def __repr__(self) -> str:
        return f"MLPHead(input_dim={self.input_dim}, hidden_sizes={self.hidden_sizes})"


def _check_weights(
    weights: Mapping[str, np.ndarray], shapes: list[tuple[int, int]]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Validate a state dict against the expected layer shapes and return float32 copies."""
    expected = {f"layers.{i}.{kind}" for i in range(len(shapes)) for kind in ("weight", "bias")}
    missing = sorted(expected - set(weights))
    extra = sorted(set(weights) - expected)
    if missing or extra:
        raise ArtifactError(
            f"head weights do not match the head layout: missing {missing}, unexpected {extra}"
        )
    ws: list[np.ndarray] = []
    bs: list[np.ndarray] = []
    for i, (out_dim, in_dim) in enumerate(shapes):
        w = np.asarray(weights[f"layers.{i}.weight"])
        b = np.asarray(weights[f"layers.{i}.bias"])
        if w.shape != (out_dim, in_dim) or b.shape != (out_dim,):
            raise ArtifactError(
                f"head layer {i} has weight shape {w.shape} and bias shape {b.shape}; "
                f"expected {(out_dim, in_dim)} and {(out_dim,)}"
            )
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ArtifactError(f"head layer {i} holds NaN or infinite weights")
        ws.append(w.astype(np.float32, copy=True))
        bs.append(b.astype(np.float32, copy=True))
    return ws, bs
