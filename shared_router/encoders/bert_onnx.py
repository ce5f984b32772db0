"""The numpy BERT encoder's function, run by ONNX Runtime: the fast path of the encoder.

:class:`OnnxBertEncoder` computes what :class:`~shared_router.encoders.bert_numpy.NumpyBertEncoder`
computes, at either precision, from the weights that class loads (its ``"int8"`` weights
come from :func:`~shared_router.encoders.bert_folder.quantize_weight`): same word pieces and
clipping
(:meth:`NumpyBertEncoder.token_ids`), same transformer, same pooling and normalisation
(:meth:`NumpyBertEncoder.pool`). Only the transformer runs in ONNX Runtime, on a graph that
:func:`build_model` writes from the weights (:mod:`~shared_router.encoders.onnx_proto`: no onnx
package, no torch, no export, no network):

* input ``input_ids``, int64 ``[1, seq]``: one text per call, so there is no padding and no
  attention mask; output ``last_hidden_state``, float32 ``[1, seq, hidden]``;
* every Linear layer (Q, K and V as one, attention output, FFN intermediate, FFN output) is
  ``MatMul`` + ``Add`` at ``"fp32"``, and ``DynamicQuantizeLinear`` -> ``MatMulInteger`` ->
  ``Cast`` -> ``Mul(s * scale)`` -> ``Add(bias)`` at ``"int8"``, the pattern ONNX Runtime
  fuses into its int8 kernel (``DynamicQuantizeMatMul``); ``DynamicQuantizeLinear`` on one
  sequence is exactly the numpy encoder's per-sequence activation quantisation;
* embeddings, ``LayerNormalization``, attention (``MatMul``, ``Softmax``) and the exact (erf)
  GELU run in float32, as in numpy.

The two backends agree to float rounding at ``"fp32"`` (within 3e-7 on vectors). At
``"int8"`` each Linear layer is the same function to float rounding, but rounding to int8 is
discontinuous: a float rounding difference (the backends sum in different orders) that
moves one activation across a rounding boundary changes it by a whole quantum, and later
layers spread that. Measured on 400 real queries (ZeroEval CRUX + AlpacaEval, AMD EPYC with
AVX-512 VNNI): 32% of the vectors identical, cosine >= 0.994 (mean 0.9990); the bundled
router's decisions differed on 0 of 400 at ``max_quality_drop=0.01`` and 7 at 0.05, half as
many as between fp32 and int8 (3 and 14).

On x86 CPUs without VNNI, ONNX Runtime's u8 x s8 kernel can saturate; the int8 graph then
stores the same weights as uint8 shifted by 128, with 128 as their zero point, for its
u8 x u8 kernel, which sums exactly there (:func:`~shared_router.encoders.onnx_runtime.int8_weights`
probes both). On a 2-core AVX2 CPU without VNNI that graph decides a short query several times
faster than numpy's float32 products of the same integers (``benchmarks/router_speed.py``).
Where neither kernel is exact, int8 refuses to run here and ``Encoder`` uses numpy.

Importing this module does not import onnxruntime (a dependency of hybrid-llm): it is imported
when an encoder is made.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared_router.encoders import onnx_proto
from shared_router.encoders.bert_folder import LayerWeights, Precision
from shared_router.encoders.bert_numpy import NumpyBertEncoder, check_encode_args
from shared_router.encoders.onnx_cache import (
    PROBE_TEXT,
    graph_path,
    probe_problem,
    read_graph,
    warn_once,
    write_graph,
)
from shared_router.encoders.onnx_runtime import (
    IR_VERSION,
    OPSET,
    U8_ZERO_POINT,
    Int8Weights,
    import_runtime,
    int8_weights,
    session_options,
)
from shared_router.errors import EncoderError

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["OnnxBertEncoder", "build_model"]

logger = logging.getLogger(__name__)

# Bump when build_model's bytes or the cache's files change: cached graphs of older versions
# are ignored. 2: a sidecar records each graph's sha256. (Writing the bytes with onnx_proto
# instead of onnx.helper left them unchanged: tests/shared_router/test_onnx_proto.py.)
_GRAPH_VERSION = 2
_INPUT = "input_ids"
_OUTPUT = "last_hidden_state"


class _Graph:
    """Collects the nodes and initializers of one graph, with unique names."""

    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.constants: list[bytes] = []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def constant(self, stem: str, value: np.ndarray) -> str:
        name = self.name(stem)
        self.constants.append(onnx_proto.tensor(name, value))
        return name

    def node(
        self, op: str, inputs: Sequence[str], outputs: int = 1, **attrs: onnx_proto.AttributeValue
    ) -> list[str]:
        return self._add(op, inputs, outputs, attrs)

    def one(self, op: str, inputs: Sequence[str], **attrs: onnx_proto.AttributeValue) -> str:
        return self._add(op, inputs, 1, attrs)[0]

    def _add(
        self,
        op: str,
        inputs: Sequence[str],
        outputs: int,
        attributes: Mapping[str, onnx_proto.AttributeValue],
    ) -> list[str]:
        names = [self.name(op.lower()) for _ in range(outputs)]
        node = onnx_proto.node(op, inputs, names, name=self.name(op), attributes=attributes)
        self.nodes.append(node)
        return names

    def model(self, name: str, inputs: Sequence[bytes], outputs: Sequence[bytes]) -> bytes:
        """The serialised model of the collected nodes and constants, opset :data:`OPSET`."""
        body = onnx_proto.graph(name, self.nodes, inputs, outputs, self.constants)
        return onnx_proto.model(
            body, ir_version=IR_VERSION, opset=OPSET, producer_name="hybrid-llm"
        )


def _linear(
    graph: _Graph,
    x: str,
    weight: np.ndarray,
    scale: np.ndarray | None,
    bias: np.ndarray,
    int8_weights: Int8Weights,
) -> str:
    """x @ W + b on x [seq, in]; ``weight`` (out, in) and ``bias``/``scale`` (out, 1) as numpy."""
    b = graph.constant("bias", bias[:, 0].astype(np.float32))
    if scale is None:
        w = graph.constant("weight", np.ascontiguousarray(weight.T, dtype=np.float32))
        return graph.one("Add", [graph.one("MatMul", [x, w]), b])
    integers = np.ascontiguousarray(weight.T).astype(np.int8)
    if int8_weights == "u8":  # the same integers shifted into uint8, the shift as zero point
        integers = (integers.astype(np.int16) + U8_ZERO_POINT).astype(np.uint8)
    w_q = graph.constant("weight_q", integers)
    w_scale = graph.constant("weight_scale", scale[:, 0].astype(np.float32))
    x_q, x_scale, x_zero = graph.node("DynamicQuantizeLinear", [x], outputs=3)
    quantized = [x_q, w_q, x_zero]
    if int8_weights == "u8":
        zero = graph.constant("weight_zero", np.array(U8_ZERO_POINT, dtype=np.uint8))
        quantized.append(zero)
    product = graph.one("MatMulInteger", quantized)
    as_float = graph.one("Cast", [product], to=1)  # FLOAT
    multiplier = graph.one("Mul", [x_scale, w_scale])
    return graph.one("Add", [graph.one("Mul", [as_float, multiplier]), b])


def _layer_norm(graph: _Graph, x: str, gain: np.ndarray, bias: np.ndarray, eps: float) -> str:
    g = graph.constant("ln_gain", gain[:, 0].astype(np.float32))
    b = graph.constant("ln_bias", bias[:, 0].astype(np.float32))
    return graph.one("LayerNormalization", [x, g, b], axis=-1, epsilon=eps)


def _encoder_layer(
    graph: _Graph, x: str, layer: LayerWeights, heads: int, eps: float, int8_weights: Int8Weights
) -> str:
    hidden = layer.out_w.shape[0]
    head_size = hidden // heads
    qkv = _linear(graph, x, layer.qkv_w, layer.qkv_s, layer.qkv_b, int8_weights)  # Q pre-scaled
    split = graph.constant("split", np.array([hidden] * 3, dtype=np.int64))
    q, k, v = graph.node("Split", [qkv, split], outputs=3, axis=1)
    by_head = graph.constant("by_head", np.array([-1, heads, head_size], dtype=np.int64))
    q = graph.one("Transpose", [graph.one("Reshape", [q, by_head])], perm=[1, 0, 2])
    k = graph.one("Transpose", [graph.one("Reshape", [k, by_head])], perm=[1, 2, 0])
    v = graph.one("Transpose", [graph.one("Reshape", [v, by_head])], perm=[1, 0, 2])
    weights = graph.one("Softmax", [graph.one("MatMul", [q, k])], axis=-1)  # [heads, seq, seq]
    context = graph.one("Transpose", [graph.one("MatMul", [weights, v])], perm=[1, 0, 2])
    flat = graph.constant("flat", np.array([-1, hidden], dtype=np.int64))
    context = graph.one("Reshape", [context, flat])
    attended = _linear(graph, context, layer.out_w, layer.out_s, layer.out_b, int8_weights)
    x = _layer_norm(graph, graph.one("Add", [attended, x]), layer.norm1_g, layer.norm1_b, eps)
    up = _linear(graph, x, layer.up_w, layer.up_s, layer.up_b, int8_weights)
    # Exact GELU, x * (1 + erf(x / sqrt 2)) / 2 (ONNX Runtime fuses it into one op).
    root2 = graph.constant("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    one = graph.constant("one", np.array(1.0, dtype=np.float32))
    half = graph.constant("half", np.array(0.5, dtype=np.float32))
    erf = graph.one("Erf", [graph.one("Div", [up, root2])])
    gelu = graph.one("Mul", [graph.one("Mul", [up, graph.one("Add", [erf, one])]), half])
    down = _linear(graph, gelu, layer.down_w, layer.down_s, layer.down_b, int8_weights)
    return _layer_norm(graph, graph.one("Add", [down, x]), layer.norm2_g, layer.norm2_b, eps)


def build_model(encoder: NumpyBertEncoder, *, int8_weights: Int8Weights = "s8") -> bytes:
    """Write the transformer of a loaded numpy encoder as an ONNX model, at its precision.

    Args:
        encoder: The loaded model; its weights (int8 ones included) are used as they are.
        int8_weights: At ``"int8"``, how the graph stores the weights
            (:data:`~shared_router.encoders.onnx_runtime.Int8Weights`: the same function,
            for the kernel that sums exactly on this CPU, see
            :func:`~shared_router.encoders.onnx_runtime.int8_weights`).

    Returns:
        The serialised ONNX model: ``input_ids`` int64 ``[1, seq]`` -> ``last_hidden_state``
        float32 ``[1, seq, hidden]``, opset :data:`OPSET`.
    """
    graph = _Graph()
    weights = encoder.weights
    eps = float(encoder._eps)
    ids = graph.one("Squeeze", [_INPUT, graph.constant("axis0", np.array([0], dtype=np.int64))])
    words = graph.one("Gather", [graph.constant("word_embeddings", weights.word), ids], axis=0)
    length = graph.one("Shape", [_INPUT], start=1, end=2)
    positions = graph.one(
        "Slice",
        [
            # position + token type 0 embeddings, as numpy adds them
            graph.constant("position_embeddings", weights.position),
            graph.constant("start", np.array([0], dtype=np.int64)),
            length,
            graph.constant("axis0", np.array([0], dtype=np.int64)),
        ],
    )
    x = _layer_norm(graph, graph.one("Add", [words, positions]), weights.emb_g, weights.emb_b, eps)
    for layer in weights.layers:
        x = _encoder_layer(graph, x, layer, encoder._heads, eps, int8_weights)
    axis0 = graph.constant("axis0", np.array([0], dtype=np.int64))
    graph.nodes.append(onnx_proto.node("Unsqueeze", [x, axis0], [_OUTPUT], name="output"))
    hidden = int(weights.word.shape[1])
    return graph.model(
        f"bert_{encoder.precision}",
        [onnx_proto.value_info(_INPUT, onnx_proto.INT64, [1, "seq"])],
        [onnx_proto.value_info(_OUTPUT, onnx_proto.FLOAT, [1, "seq", hidden])],
    )


class OnnxBertEncoder:
    """A BERT sentence-transformers model run by ONNX Runtime; ``encode`` is thread-safe.

    The same interface as :class:`~shared_router.encoders.bert_numpy.NumpyBertEncoder` (``encode``,
    ``token_ids``, ``dim``, ``max_tokens``, ``precision``), which it wraps for word pieces,
    clipping, pooling and the weights. Each text runs alone (one ``[1, seq]`` call), so a
    text's vector never depends on the texts encoded with it. One text runs on ``threads``
    intra-op threads; the texts of a batch run side by side on ``threads`` worker threads,
    one intra-op thread each, on a second session of the same graph (the int8 products are
    compute-bound: on 2 AVX2 cores that is 1.3-1.6x the decisions per second of one text after
    another on 2 intra-op threads; ``benchmarks/router_speed.py``). That session is made in
    the background from the first batch on (about 47 MB, 0.2-0.5 s), again in a child
    process after ``fork``; batches run one text after another until it is ready.
    A vector is the same bits either way: the graph's kernels split a product over threads
    by rows and columns, never along the sum. For the agreement with the numpy encoder see
    the module docstring.

    Args:
        encoder: The loaded numpy model to run.
        threads: ONNX Runtime intra-op threads for one text, and worker threads for a batch;
            None takes min(2, CPU count).
        cache_dir: A folder to keep the built ONNX model in, keyed by the weights'
            fingerprint (``cache_key``), the precision and, at int8, how the graph stores
            the weights (``bert-int8-u8-*.onnx`` for ``"u8"``), so the next process reads
            it instead of building it; None builds it every time. A cached graph is used only if its
            bytes match the sha256 recorded when it was written and a probe text gives the
            numpy reference's vector (:mod:`~shared_router.encoders.onnx_cache`); else it
            is rebuilt and rewritten, with a warning.
        cache_key: What identifies the weights (for example a sha256 of the model folder);
            needed with ``cache_dir``.

    Attributes:
        threads: The thread count in use (see ``threads`` above).
        int8_weights: How the int8 graph stores its weights, for the kernel that sums exactly
            here (:func:`~shared_router.encoders.onnx_runtime.int8_weights`); ``"s8"`` at
            ``"fp32"``, which has none.
    """

    def __init__(
        self,
        encoder: NumpyBertEncoder,
        *,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        cache_key: str | None = None,
    ) -> None:
        if threads is not None and threads < 1:
            raise EncoderError(f"threads must be >= 1 or None, got {threads}")
        self._numpy = encoder
        self._hidden_size = encoder.hidden_size
        self.threads = threads or min(2, os.cpu_count() or 1)
        weights: Int8Weights = "s8"
        if encoder.precision == "int8":
            exact = int8_weights()
            if exact is None:
                raise EncoderError(
                    "no int8 kernel of ONNX Runtime sums exactly on this CPU (its u8 x s8 and "
                    "u8 x u8 kernels both failed the saturation probe), so it would not compute "
                    "the int8 encoder's function; use backend='numpy' (or 'auto', which picks "
                    "it) for precision='int8'"
                )
            weights = exact
        self.int8_weights: Int8Weights = weights
        variant = "int8-u8" if weights == "u8" else encoder.precision
        self._cached = graph_path(
            cache_dir, cache_key, variant, opset=OPSET, version=_GRAPH_VERSION
        )
        session = self._verified_session(self._cached)
        if session is None:  # not cached, or a cached graph that failed a check: build it
            data = build_model(encoder, int8_weights=weights)
            session = self._session_or_none(data, self.threads, raise_error=True)
            write_graph(self._cached, data)
        self._session: onnxruntime.InferenceSession = session
        # Started at the first batch of several texts, when threads > 1 (see the class).
        self._batch_lock = threading.Lock()
        self._workers: ThreadPoolExecutor | None = None
        self._batch_ready: Future[onnxruntime.InferenceSession | None] | None = None
        self._workers_pid = os.getpid()

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        *,
        max_tokens: int | None = None,
        precision: Precision = "fp32",
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        cache_key: str | None = None,
    ) -> OnnxBertEncoder:
        """Load a BERT sentence-transformers folder and build its ONNX Runtime session.

        Args:
            path: The model folder.
            max_tokens: As for :meth:`NumpyBertEncoder.from_folder`.
            precision: ``"fp32"`` or ``"int8"``.
            threads: See the class.
            cache_dir: See the class.
            cache_key: See the class.

        Raises:
            MissingDependencyError: When onnxruntime is missing.
            EncoderError: When the folder cannot be run.
        """
        import_runtime()  # fail before reading the folder
        # The weights are read only if the graph has to be built (not cached).
        numpy_encoder = NumpyBertEncoder.from_folder(
            path, max_tokens=max_tokens, precision=precision, load_weights=False
        )
        return cls(numpy_encoder, threads=threads, cache_dir=cache_dir, cache_key=cache_key)

    @property
    def path(self) -> Path:
        """The model folder."""
        return self._numpy.path

    @property
    def dim(self) -> int:
        """Size of the sentence vectors."""
        return self._numpy.dim

    @property
    def max_tokens(self) -> int:
        """Most word pieces fed to the model per text, special tokens included."""
        return self._numpy.max_tokens

    @property
    def precision(self) -> Precision:
        """``"fp32"`` or ``"int8"``."""
        return self._numpy.precision

    def token_ids(self, text: str) -> list[int]:
        """The word-piece ids the model reads for a text (:meth:`NumpyBertEncoder.token_ids`)."""
        return self._numpy.token_ids(text)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Embed texts, one ONNX Runtime call per text (a batch's on several threads).

        Args:
            texts: The texts; a single ``str`` is rejected (wrap it in a list).
            batch_size: Accepted for the numpy encoder's interface (>= 1); each text runs
                on its own, without padding (see the class for how a batch's texts share
                the threads).

        Returns:
            float32 array of shape (len(texts), dim), in the order of ``texts``.

        Raises:
            EncoderError: If ``texts`` is a ``str`` or ``batch_size`` < 1, or ONNX Runtime
                fails (its own errors are turned into this one).
        """
        check_encode_args(texts, batch_size)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        runner = None if len(texts) == 1 else self._batch_runner_if_ready()
        if runner is None:
            for row, text in enumerate(texts):
                out[row] = self._run(self._numpy.token_ids(text))
            return out
        workers, session = runner
        ids = self._numpy.token_ids_batch(texts)
        for row, vector in enumerate(workers.map(lambda seq: self._run(seq, session), ids)):
            out[row] = vector
        return out

    def _batch_runner_if_ready(
        self,
    ) -> tuple[ThreadPoolExecutor, onnxruntime.InferenceSession] | None:
        """The worker threads and the session batches run on once it is made, else None
        (run one after another).

        The first call starts the worker threads and makes the session on one of them, so
        the batch that asks first does not wait for it.
        """
        if self.threads == 1:
            return None
        if self._workers_pid != os.getpid():
            # A child after fork has none of its parent's threads (its executor would queue
            # work that no thread runs) and maybe a lock a parent's thread held: start afresh.
            self._batch_lock = threading.Lock()
            self._workers, self._batch_ready = None, None
            self._workers_pid = os.getpid()
        with self._batch_lock:
            if self._workers is None or self._batch_ready is None:
                self._workers = ThreadPoolExecutor(
                    self.threads, thread_name_prefix="hybrid-llm-onnx"
                )
                self._batch_ready = self._workers.submit(self._batch_session_or_none)
            workers, ready = self._workers, self._batch_ready
        session = ready.result() if ready.done() else None
        return None if session is None else (workers, session)

    def _batch_session_or_none(self) -> onnxruntime.InferenceSession | None:
        """:meth:`_batch_session`, or None (warned about) when it cannot be made."""
        try:
            return self._batch_session()
        except EncoderError as exc:
            logger.warning("batches of %s run one text after another: %s", self.path, exc)
            return None

    def _batch_session(self) -> onnxruntime.InferenceSession:
        """A one-intra-op-thread session on the graph the first session runs.

        The cached graph is read again (its sha256 checked) and must give the first
        session's vector of the probe text bit for bit; else the graph is built from the
        weights, as when the first session was made without a cache.
        """
        data = read_graph(self._cached)
        session = None if data is None else self._session_or_none(data, 1)
        if session is not None:
            probe = self._numpy.token_ids(PROBE_TEXT)
            try:
                same = np.array_equal(self._run(probe, session), self._run(probe))
            except EncoderError:
                same = False
            if same:
                return session
        data = build_model(self._numpy, int8_weights=self.int8_weights)
        built: onnxruntime.InferenceSession = self._session_or_none(data, 1, raise_error=True)
        return built

    def _run(
        self, seq: Sequence[int], session: onnxruntime.InferenceSession | None = None
    ) -> np.ndarray:
        """The sentence vector of one id list; any ONNX Runtime failure is an EncoderError."""
        runner = self._session if session is None else session
        try:
            (hidden,) = runner.run([_OUTPUT], {_INPUT: np.asarray(seq, dtype=np.int64)[None, :]})
            hidden = np.asarray(hidden, dtype=np.float32)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EncoderError(
                f"ONNX Runtime failed on the {self.precision} graph of {str(self.path)!r}: "
                f"{type(exc).__name__}: {exc}; use backend='numpy'"
            ) from exc
        expected = (1, len(seq), self._hidden_size)
        if hidden.shape != expected:
            raise EncoderError(
                f"the {self.precision} ONNX graph of {str(self.path)!r} returned shape "
                f"{hidden.shape}, expected {expected}; use backend='numpy'"
            )
        pooled = self._numpy.pool(hidden, np.ones((1, len(seq)), dtype=np.float32))
        return np.asarray(pooled[0])

    def _verified_session(self, cached: Path | None) -> onnxruntime.InferenceSession | None:
        """A session on the cached graph if it passes both checks (see ``onnx_cache``)."""
        data = read_graph(cached)
        if cached is None or data is None:
            return None
        session = self._session_or_none(data, self.threads)
        problem = (
            "does not load in ONNX Runtime"
            if session is None
            else probe_problem(self._numpy, lambda ids: self._run(ids, session))
        )
        if problem is not None:
            warn_once(cached, problem)
            return None
        return session

    def _session_or_none(
        self, data: bytes, threads: int, *, raise_error: bool = False
    ) -> onnxruntime.InferenceSession | None:
        """An ONNX Runtime session on serialised model bytes (None when they do not load)."""
        ort = import_runtime()
        try:
            session: onnxruntime.InferenceSession = ort.InferenceSession(
                data, session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            if not raise_error:
                return None
            raise EncoderError(
                f"ONNX Runtime could not load the {self.precision} graph of "
                f"{str(self.path)!r}: {exc}; use backend='numpy'"
            ) from exc
        return session

    def __repr__(self) -> str:
        return (
            f"OnnxBertEncoder({str(self.path)!r}, precision={self.precision!r}, "
            f"max_tokens={self.max_tokens}, threads={self.threads})"
        )
