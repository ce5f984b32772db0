"""The ONNX graph cache of the onnx backend: graphs on disk, checked before they are used.

:class:`~shared_router.encoders.bert_onnx.OnnxBertEncoder` keeps the graph it builds in a
folder (``onnx/`` beside the embedding cache) as ``bert-<precision>-<key>.onnx``, the key a
hash of the weights' fingerprint, the precision, the opset and the graph version. Beside
each graph a sidecar ``<graph>.json`` records the sha256 and size of its bytes; both are
written atomically, the graph first.

A cached graph is trusted only after two checks, because a file that loads is not
necessarily the model:

1. :func:`read_graph`: the bytes match the sha256 in the sidecar (a torn, truncated or
   replaced file, or one without a sidecar, is not used);
2. the encoder runs a probe text through the loaded graph and compares the vector with the
   numpy reference computed from the weights
   (:meth:`~shared_router.encoders.bert_onnx.OnnxBertEncoder`): this catches a valid graph
   of other weights even when its sidecar was rewritten to match.

A graph that fails either check is rebuilt from the weights and rewritten, never used, and a
warning is logged once per file. The cache is optional: a folder that cannot be read or
written costs a build per process (with a warning once), never an encoding failure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from shared_router._internal.atomic import write_bytes_atomic, write_text_atomic
from shared_router.encoders.bert_numpy import NumpyBertEncoder
from shared_router.errors import EncoderError

__all__ = [
    "PROBE_FP32_ATOL",
    "PROBE_INT8_MIN_COSINE",
    "PROBE_TEXT",
    "graph_path",
    "probe_problem",
    "read_graph",
    "sidecar_path",
    "warn_once",
    "write_graph",
]

PROBE_TEXT = "Is this cached graph the model? A probe: 2 + 2 = 4, naïve café."
"""The text a cached graph must encode as the numpy reference does before it is used."""

PROBE_FP32_ATOL = 1e-5
"""Largest difference allowed on the probe at ``"fp32"`` (the backends agree within 3e-7)."""

PROBE_INT8_MIN_COSINE = 0.99
"""Least cosine to the numpy reference allowed on the probe at ``"int8"`` (int8 noise)."""

logger = logging.getLogger(__name__)

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def graph_path(
    cache_dir: str | Path | None,
    cache_key: str | None,
    precision: str,
    *,
    opset: int,
    version: int,
) -> Path | None:
    """Where the graph of these weights and precision is kept (None: no cache).

    Args:
        cache_dir: The cache folder, or None.
        cache_key: What identifies the weights (a sha256 of the model folder), or None.
        precision: ``"fp32"`` or ``"int8"``.
        opset: The graph's ONNX opset.
        version: The version of the graph builder.
    """
    if cache_dir is None or cache_key is None:
        return None
    key = f"{cache_key}|{precision}|opset={opset}|graph={version}"
    name = hashlib.sha256(key.encode()).hexdigest()[:32]
    return Path(cache_dir).expanduser() / f"bert-{precision}-{name}.onnx"


def sidecar_path(path: Path) -> Path:
    """The sidecar of a cached graph: ``<graph file name>.json``."""
    return path.with_name(path.name + ".json")


def read_graph(path: Path | None) -> bytes | None:
    """Return a cached graph's bytes when they match the sha256 its sidecar records.

    Args:
        path: The graph file (see :func:`graph_path`), or None.

    Returns:
        The bytes; None when there is no cached graph, it cannot be read, or it does not
        match its sidecar (a warning is logged once per file for a mismatch).
    """
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None  # not cached yet, or an unreadable folder: build it
    try:
        recorded = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        warn_once(path, "has no readable sidecar (.json) recording its sha256")
        return None
    digest = hashlib.sha256(data).hexdigest()
    if not isinstance(recorded, dict) or recorded.get("sha256") != digest:
        warn_once(path, "does not match the sha256 recorded in its sidecar (.json)")
        return None
    return data


def write_graph(path: Path | None, data: bytes) -> None:
    """Keep a built graph and its sidecar; a failure only skips the cache (warned once).

    Args:
        path: The graph file (see :func:`graph_path`), or None for no cache.
        data: The serialised graph.
    """
    if path is None:
        return
    record = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    try:
        write_bytes_atomic(path, data)
        write_text_atomic(sidecar_path(path), json.dumps(record, indent=1) + "\n")
    except OSError as exc:
        key = (str(path), "write")
        with _warned_lock:
            if key in _warned:
                return
            _warned.add(key)
        logger.warning(
            "could not keep the ONNX graph in %s (%s); each process builds it again (about a "
            "second). Make the folder writable, or move it with $HYBRID_LLM_CACHE",
            path.parent,
            exc,
        )


def warn_once(path: Path, problem: str) -> None:
    """Log, once per file and problem, that a cached graph is not used and is rebuilt."""
    key = (str(path), problem)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(
        "cached ONNX graph %s %s; it is not used: the graph is rebuilt from the weights and "
        "written again. If this repeats, delete the folder %s",
        path,
        problem,
        path.parent,
    )


def probe_problem(
    encoder: NumpyBertEncoder, run: Callable[[Sequence[int]], np.ndarray]
) -> str | None:
    """What is wrong with a loaded graph's vector of :data:`PROBE_TEXT` (None: nothing).

    Args:
        encoder: The numpy encoder of the weights the graph should compute; the reference.
            Its weights are read for the probe and, when it had not read them, not kept.
        run: Runs the graph on one id list and returns the pooled vector; raises
            :class:`~shared_router.errors.EncoderError` when the graph fails.

    Returns:
        None when the vector is the reference's within :data:`PROBE_FP32_ATOL` (``"fp32"``)
        or :data:`PROBE_INT8_MIN_COSINE` (``"int8"``); else what is wrong, for a warning.
    """
    try:
        got = run(encoder.token_ids(PROBE_TEXT))
    except EncoderError as exc:
        return f"fails on a probe text ({exc})"
    if not np.all(np.isfinite(got)):
        return "gives a vector that is not finite on a probe text"
    # A copy reads the weights for the probe and is dropped, so a cached graph keeps sparing them.
    reference = encoder if encoder.weights_loaded else encoder.unloaded_copy()
    expected = reference.encode([PROBE_TEXT])[0]
    if encoder.precision == "fp32":
        error = float(np.max(np.abs(got - expected)))
        if error > PROBE_FP32_ATOL:
            return (
                f"is not the model's: on a probe text its vector differs from the numpy "
                f"reference by {error:.3g} (at most {PROBE_FP32_ATOL} is allowed)"
            )
        return None
    norms = float(np.linalg.norm(got) * np.linalg.norm(expected))
    cosine = float(got @ expected) / max(norms, 1e-12)
    if cosine < PROBE_INT8_MIN_COSINE:
        return (
            f"is not the model's: on a probe text its vector has cosine {cosine:.4f} to the "
            f"numpy reference (at least {PROBE_INT8_MIN_COSINE} is required)"
        )
    return None
