"""Argument validators shared by the layers; each raises the caller's error class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared_router.errors import DataError, HybridLLMError

__all__ = ["finite_vector", "text_list"]


def finite_vector(
    values: np.ndarray | Sequence[float],
    name: str,
    error: type[HybridLLMError] = DataError,
) -> np.ndarray:
    """Return ``values`` as a one-dimensional float64 array of finite numbers.

    Args:
        values: The numbers (scores, qualities, labels, ...).
        name: What they are, for the error message.
        error: The error class to raise (the caller's part of the hierarchy).

    Raises:
        HybridLLMError: ``error``, if ``values`` is not one-dimensional or holds NaN or
            infinity.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise error(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise error(f"{name} must be finite; it holds NaN or infinity")
    return array


def text_list(texts: Sequence[str], name: str, error: type[HybridLLMError]) -> list[str]:
    """Return ``texts`` as a list, checking that it is a sequence of ``str``.

    Args:
        texts: The texts.
        name: What they are, for the error message (``"texts"``).
        error: The error class to raise.

    Raises:
        HybridLLMError: ``error``, if ``texts`` is one ``str`` or holds something else.
    """
    if isinstance(texts, str):
        raise error(
            f"{name} must be a sequence of str, got one str; wrap one text in a list: [text]"
        )
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise error(
                f"{name}[{i}] must be a str (a sequence of str is expected), "
                f"got {type(text).__name__}"
            )
    return items
