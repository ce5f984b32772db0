"""Argument validators shared by the layers; each raises the caller's error class."""

from __future__ import annotations

import difflib
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from shared_router.errors import ConfigurationError, DataError, HybridLLMError

__all__ = [
    "REPLACEMENT_CHARACTER",
    "check_keywords",
    "check_positive_int",
    "check_positive_seconds",
    "encodable_text",
    "finite_quality_pair",
    "finite_vector",
    "text_list",
]

REPLACEMENT_CHARACTER = "\ufffd"
"""What :func:`encodable_text` puts in place of a lone surrogate."""

# In a Python str every surrogate code point is unpaired (a pair is one astral code point).
_SURROGATE = re.compile("[\ud800-\udfff]")


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


def finite_quality_pair(
    small_quality: np.ndarray | Sequence[float], large_quality: np.ndarray | Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Both models' qualities as finite float64 vectors of one length.

    Raises:
        DataError: If either is not one-dimensional, holds NaN or infinity, or the two
            differ in length.
    """
    small = finite_vector(small_quality, "small_quality")
    large = finite_vector(large_quality, "large_quality")
    if small.size != large.size:
        raise DataError(
            f"small_quality and large_quality differ in length: {small.size} vs {large.size}"
        )
    return small, large


def text_list(texts: object, name: str, error: type[HybridLLMError]) -> list[str]:
    """Return ``texts`` as a list, checking that it holds ``str`` only.

    Any iterable of ``str`` is accepted and consumed once (a generator included); a single
    ``str``, ``bytes``, a mapping (whose keys would be taken for the texts) and anything that
    is not iterable are refused.

    Args:
        texts: The texts.
        name: What they are, for the error message (``"texts"``).
        error: The error class to raise.

    Raises:
        HybridLLMError: ``error``, naming what was received and how to pass texts instead.
    """
    if isinstance(texts, str):
        raise error(
            f"{name} must be a sequence of str, got one str; wrap one text in a list: [text]"
        )
    if isinstance(texts, Mapping):
        raise error(
            f"{name} must be a sequence of str, got a mapping ({type(texts).__name__}), whose "
            "keys would be scored; pass the texts as a list, for example [row['query']]"
        )
    if isinstance(texts, (bytes, bytearray)):
        raise error(f"{name} must be a sequence of str, got bytes; decode them: [data.decode()]")
    if not isinstance(texts, Iterable):
        raise error(f"{name} must be a sequence of str, got {type(texts).__name__}")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise error(
                f"{name}[{i}] must be a str (a sequence of str is expected), "
                f"got {type(text).__name__}"
            )
    return items


def encodable_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so that it encodes as UTF-8.

    The policy for unencodable text everywhere in hybrid-llm: a lone surrogate (``"\\ud800"``,
    valid in JSON and in Python strings, left by ``surrogateescape`` decoding of bytes that are
    not UTF-8) cannot be tokenized, hashed as UTF-8 or written to a UTF-8 file. It is replaced
    by the Unicode replacement character, as a UTF-8 decoder replaces an invalid byte; every
    other character is kept. A text without surrogates is returned as it is (the same object).

    Args:
        text: Any ``str``.

    Returns:
        A ``str`` that ``text.encode("utf-8")`` accepts.
    """
    return _SURROGATE.sub(REPLACEMENT_CHARACTER, text) if _SURROGATE.search(text) else text


def check_keywords(
    owner: str, given: Iterable[str], known: Iterable[str], *, stacklevel: int
) -> None:
    """Refuse a keyword that is a misspelling of a known one; warn about other unknown ones.

    An adapter takes keyword arguments it does not know (LangChain and LlamaIndex pass
    their own), but a misspelt setting (``max_qualty_drop=0.05``) would otherwise route at
    the default level without a word.

    Args:
        owner: The class, for the messages (``"ChatHybrid"``).
        given: The keywords passed.
        known: The keywords the class takes.
        stacklevel: ``warnings.warn``'s, counted from the caller of this function.

    Raises:
        ConfigurationError: For a keyword close to a known one (``difflib`` ratio >= 0.8),
            naming the one that was probably meant.
    """
    names = sorted(set(known))
    unknown = sorted(str(key) for key in given if key not in names)
    for key in unknown:
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.8)
        if close:
            raise ConfigurationError(
                f"{owner} got {key}=..., which is none of its arguments; did you mean {close[0]}?"
            )
    if unknown:
        warnings.warn(
            f"{owner} ignores {', '.join(unknown)}: set provider parameters "
            "(temperature, max_tokens, timeouts, API keys, ...) on the small and the "
            "large model",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


def check_positive_int(name: str, value: object) -> None:
    """Refuse anything but an int >= 1 (a bool is not one) for the setting ``name``.

    Raises:
        ConfigurationError: ``"{name} must be an int >= 1, got {value!r}"``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")


def check_positive_seconds(name: str, value: object) -> None:
    """Refuse anything but a finite number of seconds > 0 (a bool is not one) for ``name``.

    Raises:
        ConfigurationError: ``"{name} must be > 0 seconds, got {value!r}"``.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ConfigurationError(f"{name} must be > 0 seconds, got {value!r}")
