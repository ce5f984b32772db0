"""A response's token log-probabilities, read from what a model's reply carries.

Models report the log-probability of each token they generated in a few shapes; the
adapters' collect-time sources hand the metadata of a reply (LangChain's
``response_metadata``, a LlamaIndex response's ``raw``) to :func:`token_logprobs`, which
reads the shapes below and gives one float per generated token:

- OpenAI's chat format (``ChatOpenAI(logprobs=True)``, llama.cpp's chat completions):
  ``{"logprobs": {"content": [{"token": "Hi", "logprob": -0.1, ...}, ...]}}``;
- the completion format (OpenAI completions, llama.cpp ``create_completion``):
  ``{"logprobs": {"tokens": [...], "token_logprobs": [-0.1, ...]}}``;
- a bare list of either entry kind under ``"logprobs"`` (``[{"logprob": -0.1}, ...]`` or
  ``[-0.1, ...]``).

``hybrid-llm collect`` records them per sample in the data file (``token_logprobs`` of each
model, beside ``responses``), where answer-aware signals (a mean token log-probability as
"how sure the small model was") can be computed from them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["token_logprobs"]


def token_logprobs(metadata: Mapping[str, Any] | None) -> tuple[float, ...] | None:
    """The generated tokens' log-probabilities in a reply's metadata, or None.

    Tokens whose value is missing or not finite (``-inf``, which some servers report for a
    token outside the top candidates) are left out: a JSON data file cannot hold them.

    Args:
        metadata: The reply's metadata, with the log-probabilities under ``"logprobs"``
            in one of the shapes of the module docstring.

    Returns:
        One log-probability per token, in order; None when the metadata has none (no
        ``"logprobs"`` key, ``None``, or a shape not listed above).
    """
    if not isinstance(metadata, Mapping):
        return None
    found = metadata.get("logprobs")
    if isinstance(found, Mapping):
        if isinstance(found.get("content"), Sequence):
            return _values(found["content"])
        if isinstance(found.get("token_logprobs"), Sequence):
            return _values(found["token_logprobs"])
        return None
    if isinstance(found, Sequence) and not isinstance(found, str | bytes):
        return _values(found)
    return None


def _values(entries: Sequence[Any]) -> tuple[float, ...]:
    values = []
    for entry in entries:
        value = entry.get("logprob") if isinstance(entry, Mapping) else entry
        if (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(float(value))
        ):
            values.append(float(value))
    return tuple(values)
