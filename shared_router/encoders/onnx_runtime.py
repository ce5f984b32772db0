"""ONNX Runtime for the ONNX backend: importing it, and whether its int8 kernel is exact here.

onnxruntime is a dependency of hybrid-llm (the graphs are written without the onnx package, by
:mod:`~shared_router.encoders.onnx_proto`); where it is missing the ``"auto"`` backend runs
numpy instead. On x86 CPUs without VNNI, ONNX Runtime's u8 x s8 kernel can
saturate; its u8 x u8 kernel does not, so :func:`int8_weights` decides which weight type the
int8 graph stores here (or that no exact int8 kernel runs, and numpy does).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import numpy as np

from shared_router._internal.extras import require_extra
from shared_router.encoders import onnx_proto
from shared_router.errors import MissingDependencyError

__all__ = [
    "IR_VERSION",
    "OPSET",
    "U8_ZERO_POINT",
    "Int8Weights",
    "import_runtime",
    "int8_kernel_is_exact",
    "int8_weights",
    "onnx_available",
    "session_options",
]

_REQUIREMENTS = ("onnxruntime>=1.20",)
_PURPOSE = "the ONNX backend (or backend='numpy': the same vectors, slower)"
_UINT8_MAX = 255

OPSET = 17
"""The ONNX opset of the graphs (17: the first with ``LayerNormalization``)."""

IR_VERSION = 8
"""The ONNX IR version of opset 17."""

Int8Weights = Literal["s8", "u8"]
"""How an int8 graph stores its weights: ``"s8"`` as int8 (ONNX Runtime's u8 x s8 kernel, VNNI's
``vpdpbusd``) or ``"u8"`` as uint8 shifted by 128 with zero point 128 (its u8 x u8 kernel); both
give the same integer sums, where the kernel sums exactly."""

U8_ZERO_POINT = 128
"""The zero point of ``"u8"`` weights: each int8 weight ``w`` is stored as ``w + 128``."""


def onnx_available() -> bool:
    """Tell whether the ONNX backend can run: onnxruntime imports."""
    try:
        import_runtime()
    except MissingDependencyError:
        return False
    return True


@functools.cache
def int8_weights() -> Int8Weights | None:
    """The weight type of the int8 graph whose ONNX Runtime kernel sums exactly on this CPU.

    The ``"int8"`` function sums products of uint8 activations (0..255) and int8 weights
    (-127..127) exactly, as the numpy encoder does. ONNX Runtime documents that on x86 CPUs
    without VNNI its u8 x s8 kernel can saturate pairs of products to 16 bits, which would
    silently compute another function; its u8 x u8 kernel widens to 16 bits first and does
    not. For each weight type this runs one tiny graph built to saturate (all activations 255,
    all weights +127, then all -127) through the same fused kernel and checks the sums; the
    answer is kept for the process.

    Returns:
        ``"s8"`` where its kernel is exact (VNNI: the faster one), else ``"u8"`` where that
        one is, else None (the int8 function cannot run in ONNX Runtime here).

    Raises:
        MissingDependencyError: When onnxruntime is missing.
    """
    kinds: tuple[Int8Weights, ...] = ("s8", "u8")
    for kind in kinds:
        if _kernel_is_exact(kind):
            return kind
    return None


def _kernel_is_exact(kind: Int8Weights) -> bool:
    """Whether the kernel of ``kind`` weights sums exactly at both signs of the weights."""
    return all(_sums_exactly(kind, sign) for sign in (1, -1))


def int8_kernel_is_exact() -> bool:
    """Tell whether an exact int8 kernel runs here (:func:`int8_weights` is not None).

    Raises:
        MissingDependencyError: When onnxruntime is missing.
    """
    return int8_weights() is not None


def _sums_exactly(kind: Int8Weights, sign: int) -> bool:
    """Whether the fused int8 kernel sums 255 x (``sign`` x 127) exactly, stored as ``kind``."""
    ort, k, n = import_runtime(), 64, 16
    # The weights and inputs as bert_onnx._linear writes them for this kind.
    weights = np.full((k, n), sign * 127, dtype=np.int16)
    quantized = ["x_q", "w", "x_zp"]
    constants = []
    if kind == "u8":
        weights += U8_ZERO_POINT
        quantized.append("w_zp")
        constants.append(onnx_proto.tensor("w_zp", np.array(U8_ZERO_POINT, dtype=np.uint8)))
    nodes = [
        onnx_proto.node("DynamicQuantizeLinear", ["x"], ["x_q", "x_s", "x_zp"]),
        onnx_proto.node("MatMulInteger", quantized, ["acc"]),
        onnx_proto.node("Cast", ["acc"], ["acc_f"], attributes={"to": onnx_proto.FLOAT}),
        onnx_proto.node("Mul", ["x_s", "w_s"], ["m"]),
        onnx_proto.node("Mul", ["acc_f", "m"], ["y0"]),
        onnx_proto.node("Add", ["y0", "b"], ["y"]),
    ]
    constants += [
        onnx_proto.tensor("w", weights.astype(np.int8 if kind == "s8" else np.uint8)),
        onnx_proto.tensor("w_s", np.ones(n, dtype=np.float32)),
        onnx_proto.tensor("b", np.zeros(n, dtype=np.float32)),
    ]
    graph = onnx_proto.graph(
        "int8_probe",
        nodes,
        [onnx_proto.value_info("x", onnx_proto.FLOAT, ["m", k])],
        [onnx_proto.value_info("y", onnx_proto.FLOAT, ["m", n])],
        constants,
    )
    model = onnx_proto.model(graph, ir_version=IR_VERSION, opset=OPSET)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    scale = np.float32(1.0) / np.float32(_UINT8_MAX)  # what DynamicQuantizeLinear finds for x = 1
    expected = np.float32(sign * k * _UINT8_MAX * 127) * scale
    for rows in (1, 24):  # one-row and multi-row kernels
        (y,) = session.run(["y"], {"x": np.ones((rows, k), dtype=np.float32)})
        if not np.allclose(y, expected, rtol=1e-6):
            return False
    return True


def session_options(threads: int) -> Any:
    """The ONNX Runtime session options the encoder's sessions run with.

    Args:
        threads: Intra-op threads.

    Raises:
        MissingDependencyError: When onnxruntime is missing.
    """
    ort = import_runtime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No spin-waiting between calls: a router sits in an application that does other
    # work between decisions. Measured with 5 ms between calls: spinning cost 9.8-10.3 ms
    # of CPU per decision against 2.8 ms, for 0.2-0.4 ms less latency.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return options


def import_runtime() -> Any:
    return require_extra("onnxruntime", extra=None, purpose=_PURPOSE, requirements=_REQUIREMENTS)
