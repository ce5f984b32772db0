"""Synthetic live traffic with a known truth, for the live loop's tests.

Rows carry embeddings only (of the bundled router's encoder identity, so no text is encoded):
random unit vectors, where the small model is good enough exactly when the first coordinate is
positive (up to label noise) and the large model is right 90% of the time.
"""

from __future__ import annotations

import time

import numpy as np

from shared_router.live.rows import ShadowRow

DIM = 384


def planted_vectors(n: int, seed: int) -> np.ndarray:
    """``n`` random unit vectors whose first coordinate carries the pattern strongly."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, DIM))
    X[:, 0] *= 6.0
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def planted_qualities(
    X: np.ndarray, seed: int, noise: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """(small_quality, large_quality): small good iff ``X[:, 0] > 0``, flipped with ``noise``."""
    rng = np.random.default_rng(seed + 1)
    small = (X[:, 0] > 0).astype(np.float64)
    flip = rng.random(X.shape[0]) < noise
    small = np.where(flip, 1.0 - small, small)
    large = (rng.random(X.shape[0]) < 0.9).astype(np.float64)
    return small, large


def planted_rows(
    n: int, seed: int, identity: str, *, version: str = "default", start: int = 0
) -> list[ShadowRow]:
    """Shadow rows of planted traffic, embeddings only, routed large by ``version``."""
    X = planted_vectors(n, seed)
    small, large = planted_qualities(X, seed)
    now = time.time()
    return [
        ShadowRow(
            request_id=f"r{start + i}",
            created_at=now,
            judged_at=now,
            router_version=version,
            decision="large",
            small_quality=float(small[i]),
            large_quality=float(large[i]),
            embedding=X[i],
            encoder_identity=identity,
            score=0.5,
            threshold=0.6,
        )
        for i in range(n)
    ]
