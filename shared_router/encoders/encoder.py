"""Text -> embedding: the router's encoder and its on-disk embedding cache.

:class:`Encoder` turns texts into float32 sentence vectors with one of three backends:

* ``"numpy"``: :class:`~shared_router.encoders.bert_numpy.NumpyBertEncoder`, BERT-family
  sentence-transformers folders without torch (the default MiniLM runs this way);
* ``"onnx"``: :class:`~shared_router.encoders.bert_onnx.OnnxBertEncoder`, the same model and
  function run by ONNX Runtime (a base dependency), ~2x faster at ``"fp32"`` and ~4x at ``"int8"``;
* ``"torch"``: sentence-transformers (imported lazily), any model by name or path.

All clip texts longer than ``max_tokens`` word pieces the same way, keeping their start and
their end (:func:`~shared_router.encoders.clipping.clip_token_ids`), so all give the same
vectors at ``precision="fp32"``. ``precision="int8"`` (numpy and onnx only) quantises the encoder's
Linear layers to int8 (see :class:`~shared_router.encoders.bert_numpy.NumpyBertEncoder`): other
vectors (cosine ~0.99 to fp32), hence another :attr:`Encoder.identity`.

:class:`EmbeddingCache` stores vectors in SQLite (WAL journal, busy timeout), keyed by the
encoder's :attr:`Encoder.identity` and the text, and is safe to share between processes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from shared_router._internal.progress import ProgressBar
from shared_router._internal.validation import encodable_text, text_list
from shared_router.encoders.bert_folder import PRECISIONS, Precision, supports_folder
from shared_router.encoders.bert_numpy import NumpyBertEncoder
from shared_router.encoders.cache import EmbeddingCache, default_cache_path
from shared_router.encoders.folders import (
    DEFAULT_ALIASES,
    DEFAULT_ENCODER,
    folder_fingerprint,
    resolve_encoder_path,
)
from shared_router.encoders.torch_backend import TorchBackend, load_sentence_transformer
from shared_router.errors import EncoderError

if TYPE_CHECKING:
    from shared_router.encoders.bert_onnx import OnnxBertEncoder

__all__ = ["BACKENDS", "Encoder", "EncoderBackend"]

logger = logging.getLogger(__name__)

EncoderBackend = Literal["auto", "numpy", "onnx", "torch"]
BACKENDS: tuple[EncoderBackend, ...] = ("auto", "numpy", "onnx", "torch")
"""The backends an :class:`Encoder` runs on."""


class Encoder:
    """Sentence embeddings for routing, loaded lazily and safe to share between threads.

    Args:
        name_or_path: ``"default"`` (all-MiniLM-L6-v2, shipped offline), a local
            sentence-transformers folder, or a model name sentence-transformers can load.
        max_tokens: Most word pieces per text, special tokens included; longer texts keep
            their start and end. None takes the model's own ``max_seq_length``.
        backend: ``"numpy"`` (BERT folders, no torch), ``"onnx"`` (the same, run by ONNX
            Runtime), ``"torch"``
            (sentence-transformers) or ``"auto"``: for a BERT folder that numpy supports
            with ``device`` None or ``"cpu"``, onnx when onnxruntime is installed
            (and, for int8, ONNX Runtime's int8 kernel is exact on this CPU) and numpy
            otherwise; else torch.
        precision: ``"fp32"`` (the model as trained) or ``"int8"`` (int8 Linear layers;
            numpy and onnx backends only, so BERT folders only). Both backends compute the
            same int8 function; a router trained on int8 vectors must route with int8.
        cache: An :class:`EmbeddingCache`, a path for one, or None for no cache. A path
            that cannot be opened (a read-only folder, a damaged database) is warned about
            and not used.
        batch_size: Texts per forward pass.
        device: Torch device for the torch backend (None lets torch pick).
        threads: For the onnx backend, ONNX Runtime intra-op threads for one text and
            worker threads for a batch (:class:`~shared_router.encoders.bert_onnx.OnnxBertEncoder`);
            None takes min(2, CPU count).

    The onnx backend keeps the ONNX graph it builds (58-90 MB for MiniLM) in ``onnx/``
    beside the embedding cache (beside the default one when ``cache`` is None), keyed by
    the weights' sha256 and the precision, so later processes start faster; the files can
    be deleted at any time. A cached graph is checked before it is used (its recorded
    sha256, and a probe text against the numpy reference) and rebuilt when it fails.

    Caches are optional at run time: when the embedding cache fails to read or write
    (a full disk, a read-only or damaged database), a warning is logged once per encoder
    and texts are encoded without it; encoding never fails because of the cache.

    Texts with lone surrogates (``"\\ud800"``, which no tokenizer takes) are encoded as
    :func:`~shared_router._internal.validation.encodable_text` repairs them: each lone
    surrogate becomes U+FFFD, so such a text has the vector (and the cache row) of its
    repaired form, and never fails the other texts of a batch.

    Attributes:
        name: The encoder's name (``"all-MiniLM-L6-v2"`` for the default).
        name_or_path: What was given.
    """

    def __init__(
        self,
        name_or_path: str | Path = "default",
        *,
        max_tokens: int | None = None,
        backend: EncoderBackend = "auto",
        precision: Precision = "fp32",
        cache: EmbeddingCache | str | Path | None = None,
        batch_size: int = 32,
        device: str | None = None,
        threads: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise EncoderError(
                f"backend must be 'auto', 'numpy', 'onnx' or 'torch', got {backend!r}"
            )
        if precision not in PRECISIONS:
            raise EncoderError(f"precision must be 'fp32' or 'int8', got {precision!r}")
        if precision == "int8" and backend == "torch":
            raise EncoderError(
                "precision='int8' runs on the numpy and onnx backends only, got backend='torch'; "
                "use backend='auto' (or 'numpy' / 'onnx') with a BERT folder, or "
                "precision='fp32' with torch"
            )
        if threads is not None and threads < 1:
            raise EncoderError(f"threads must be >= 1 or None, got {threads}")
        if batch_size < 1:
            raise EncoderError(f"batch_size must be >= 1, got {batch_size}")
        if max_tokens is not None and max_tokens < 3:
            raise EncoderError(f"max_tokens must be >= 3 or None, got {max_tokens}")
        self.name_or_path = name_or_path
        self.name = DEFAULT_ENCODER if str(name_or_path) in DEFAULT_ALIASES else str(name_or_path)
        self.max_tokens = max_tokens
        self.backend = backend
        self.precision: Precision = precision
        self.threads = threads
        self._cache_warned: set[str] = set()
        self.cache: EmbeddingCache | None = None
        if isinstance(cache, EmbeddingCache):
            self.cache = cache
        elif cache is not None:
            try:
                self.cache = EmbeddingCache(cache)
            except EncoderError as exc:  # an unopenable path: encode without a cache
                self._warn_cache_once("open", exc)
        self.batch_size = batch_size
        self.device = device
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._model: NumpyBertEncoder | OnnxBertEncoder | TorchBackend | None = None
        self._identity: str | None = None

    @property
    def path(self) -> Path | None:
        """The local model folder, or None when the name is for sentence-transformers' hub."""
        return resolve_encoder_path(self.name_or_path)

    @property
    def dim(self) -> int:
        """Size of the vectors (loads the model)."""
        return int(self._load().dim)

    @property
    def effective_max_tokens(self) -> int:
        """The token limit in force: ``max_tokens`` or the model's own (loads the model)."""
        return int(self._load().max_tokens)

    @property
    def resolved_backend(self) -> Literal["numpy", "onnx", "torch"]:
        """The backend in use (loads the model)."""
        model = self._load()
        if isinstance(model, NumpyBertEncoder):
            return "numpy"
        return "torch" if isinstance(model, TorchBackend) else "onnx"

    @property
    def identity(self) -> str:
        """Model id, weights fingerprint, token limit and precision: what the vectors depend on.

        ``"<name>|sha256:<16 hex>|max_tokens=<n>"``, followed by ``"|int8"`` at precision
        ``"int8"``; the backend is not part of it (all backends give the same vectors).

        Nor is the ONNX graph: the onnx backend computes vectors only with a graph that
        it built from these weights or that passed the cache's checks (its recorded sha256
        and a probe vector equal to the numpy reference's, see
        :mod:`~shared_router.encoders.onnx_cache`), so its vectors are the function this
        identity names, and the numpy and onnx backends share cache rows. A graph that
        fails the checks never computes a vector, so none can stay in the embedding cache.

        For a local folder with ``max_tokens`` given (as :meth:`Router.load` gives it) this
        hashes the folder without loading the model; otherwise it loads the model.
        """
        if self._identity is None:
            folder = self.path
            if folder is not None and self.max_tokens is not None:
                # All a local folder's identity needs: the model is not loaded for it.
                fingerprint, max_tokens = folder_fingerprint(folder), self.max_tokens
            else:
                model = self._load()
                max_tokens = model.max_tokens
                if folder is not None:
                    fingerprint = folder_fingerprint(folder)
                elif isinstance(model, TorchBackend):
                    fingerprint = model.fingerprint()
                else:
                    raise EncoderError(f"numpy encoder for {self.name_or_path!r} has no folder")
            label = self.name if folder is None or self.name == DEFAULT_ENCODER else folder.name
            identity = f"{label}|sha256:{fingerprint[:16]}|max_tokens={max_tokens}"
            self._identity = identity + ("|int8" if self.precision == "int8" else "")
        return self._identity

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embed texts, reading and filling the cache when there is one.

        A text with lone surrogates is encoded as its repaired form (see the class); a cache
        that fails is skipped with a warning (see the class).

        Args:
            texts: The texts (a single ``str`` is rejected: wrap it in a list).
            progress: Show a progress bar (on stderr) over the texts to encode.

        Returns:
            float32 array of shape ``(len(texts), dim)``; same pooling and normalisation as
            sentence-transformers.

        Raises:
            EncoderError: When ``texts`` is not a sequence of str or the model cannot load.
        """
        items = [_repaired(text) for text in text_list(texts, "texts", EncoderError)]
        out = np.empty((len(items), self.dim), dtype=np.float32)
        missing = list(range(len(items)))
        stored = self._cache_get(items)
        if stored is not None:
            missing = []
            for i, vector in enumerate(stored):
                if vector is not None and vector.shape == (out.shape[1],):
                    out[i] = vector
                else:
                    missing.append(i)
        if missing:
            unique = list(dict.fromkeys(items[i] for i in missing))
            vectors = self._encode_uncached(unique, progress=progress)
            row_of = {text: row for row, text in enumerate(unique)}
            for i in missing:
                out[i] = vectors[row_of[items[i]]]
            self._cache_put(unique, vectors)
        return out

    def _cache_get(self, items: list[str]) -> list[np.ndarray | None] | None:
        """The cached vectors of ``items``; None without a cache or when it cannot be read."""
        if self.cache is None or not items:
            return None
        try:
            return self.cache.get_many(self.identity, items)
        except EncoderError as exc:
            if not _is_storage_failure(exc):
                raise
            self._warn_cache_once("read", exc)
            return None

    def _cache_put(self, texts: list[str], vectors: np.ndarray) -> None:
        """Store new vectors; a cache that cannot be written is warned about and skipped."""
        if self.cache is None:
            return
        try:
            self.cache.put_many(self.identity, texts, vectors)
        except EncoderError as exc:
            if not _is_storage_failure(exc):
                raise
            self._warn_cache_once("write", exc)

    def _warn_cache_once(self, action: str, exc: Exception) -> None:
        if action in self._cache_warned:
            return
        self._cache_warned.add(action)
        logger.warning(
            "%r: the embedding cache failed to %s (%s); encoding goes on without it (logged "
            "once per encoder). Free disk space, fix or delete the database, or pass another "
            "cache (cache=None for none)",
            self,
            action,
            exc,
        )

    def _encode_uncached(self, texts: list[str], *, progress: bool) -> np.ndarray:
        model = self._load()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), model.dim), dtype=np.float32)
        with ProgressBar(len(texts), "encoding", enabled=progress) as bar:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                with self._run_lock:
                    vectors = model.encode([texts[i] for i in chunk], batch_size=self.batch_size)
                out[chunk] = vectors
                bar.advance(len(chunk))
        return out

    def _load(self) -> NumpyBertEncoder | OnnxBertEncoder | TorchBackend:
        if self._model is not None:
            return self._model
        with self._load_lock:
            if self._model is None:
                self._model = self._build()
            return self._model

    def _build(self) -> NumpyBertEncoder | OnnxBertEncoder | TorchBackend:
        folder = self.path
        runs_bert = folder is not None and supports_folder(folder)
        backend = self.backend
        if backend == "auto":
            if runs_bert and self.device in (None, "cpu"):
                backend = "onnx" if _onnx_runs(self.precision) else "numpy"
            else:
                backend = "torch"
        if self.precision == "int8" and (backend == "torch" or not runs_bert):
            raise EncoderError(
                f"precision='int8' runs a local BERT sentence-transformers folder (modules "
                f"Transformer, Pooling and optionally Normalize; model_type 'bert') on the CPU "
                f"with the numpy or onnx backend; got {str(self.name_or_path)!r} with "
                f"backend={self.backend!r}, device={self.device!r}. Use such a folder (for "
                "example 'default') with device=None, or precision='fp32'"
            )
        if backend == "torch":
            model = load_sentence_transformer(folder or self.name_or_path, device=self.device)
            return TorchBackend(model, self.max_tokens)
        if folder is None:
            raise EncoderError(
                f"backend={backend!r} needs a local BERT sentence-transformers folder; "
                f"{str(self.name_or_path)!r} is not a folder. Give a folder path, or use "
                f"backend='torch' with precision='fp32' (pip install 'hybrid-llm[train]')"
            )
        if backend == "numpy":
            return NumpyBertEncoder.from_folder(
                folder, max_tokens=self.max_tokens, precision=self.precision
            )
        from shared_router.encoders.bert_onnx import OnnxBertEncoder

        cache_file = self.cache.path if self.cache is not None else default_cache_path()
        return OnnxBertEncoder.from_folder(
            folder,
            max_tokens=self.max_tokens,
            precision=self.precision,
            threads=self.threads,
            cache_dir=cache_file.parent / "onnx",
            cache_key=folder_fingerprint(folder),
        )

    def __repr__(self) -> str:
        return (
            f"Encoder({str(self.name_or_path)!r}, max_tokens={self.max_tokens!r}, "
            f"backend={self.backend!r}, precision={self.precision!r})"
        )


def _repaired(text: str) -> str:
    """:func:`encodable_text` (the policy), skipping its scan for ASCII text (fast in C)."""
    return text if text.isascii() else encodable_text(text)


def _is_storage_failure(exc: EncoderError) -> bool:
    """Whether a cache's error comes from its database or disk (not from a wrong argument)."""
    return isinstance(exc.__cause__, (sqlite3.Error, OSError))


def _onnx_runs(precision: Precision) -> bool:
    """Whether the onnx backend can run: onnxruntime installed, exact int8 kernel."""
    from shared_router.encoders.onnx_runtime import int8_kernel_is_exact, onnx_available

    return onnx_available() and (precision == "fp32" or int8_kernel_is_exact())
