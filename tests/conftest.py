"""Fixtures shared by every test folder."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from shared_router.encoders.cache import EmbeddingCache
    from shared_router.routing.router import Router

ROUTING_RECORD_KEYS = {
    "model",
    "model_name",
    "score",
    "threshold",
    "knob",
    "router",
    "router_ms",
    "fallback",
    "reason",
    "router_queue_ms",
    "router_compute_ms",
    "cached",
}
"""The documented keys of the routing record both adapters attach to every response."""

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

INTEGRATION_FIXTURES = frozenset({"shared_data"})
"""Fixtures that need what a unit test must not: here ``../shared/data``."""

TORCH_FIXTURES = frozenset({"planted_router", "tiny_bart", "built", "embed_model"})
"""Fixtures that need torch (a head trained with it, a tiny BART, a built pair router, the
LlamaIndex MiniLM embedding: sentence-transformers)."""


def _torch_imports() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``integration`` the tests that use an integration fixture or need torch.

    A test that is marked ``torch`` or uses a fixture of :data:`TORCH_FIXTURES` needs torch;
    it skips, with the extra to install, where torch is not importable.
    """
    torch_skip = pytest.mark.skip(reason="needs torch: pip install 'hybrid-llm[train]'")
    has_torch = None
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        needs_torch = item.get_closest_marker("torch") is not None or bool(
            TORCH_FIXTURES & fixtures
        )
        if needs_torch or INTEGRATION_FIXTURES & fixtures:
            item.add_marker(pytest.mark.integration)
        if needs_torch:
            has_torch = _torch_imports() if has_torch is None else has_torch
            if not has_torch:
                item.add_marker(torch_skip)


EASY_QUERIES = [
    f"What is {a} + {b}?" for a, b in itertools.product((2, 7, 13, 21, 40), (3, 5, 9, 11))
] + [
    "What is the capital of France?",
    "How many days are in a week?",
    "What colour is the sky on a clear day?",
    "Name the largest planet in the solar system.",
]
HARD_QUERIES = [
    f"Draft a detailed legal memo analysing {issue} under {law}, citing the relevant case law, "
    "weighing the counterarguments, and recommending a litigation strategy."
    for issue, law in itertools.product(
        (
            "liability for a breach of a software licence",
            "wrongful termination of a senior employee",
            "a data-protection breach affecting patients",
            "a disputed merger clause",
            "negligent misstatement by an auditor",
        ),
        ("English contract law", "the GDPR", "Delaware corporate law", "the UCC"),
    )
] + [
    "Write a differential diagnosis for a patient with fever, joint pain and a rash after travel, "
    "explaining which tests you would order and why.",
    "Analyse the pharmacokinetic interactions between warfarin and common antibiotics and "
    "propose a monitoring protocol for an elderly patient with renal impairment.",
]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real routing data beside the repository (skips where it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real routing data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def planted_router(tmp_path_factory: pytest.TempPathFactory) -> Router:
    """A calibrated real router (real MiniLM encoder) with a planted pattern.

    Short arithmetic and trivia questions get a high score (small model); long legal and
    medical analysis requests get a low score (large model).
    """
    pytest.importorskip("torch", reason="its MLP head trains with torch (hybrid-llm[train])")
    import numpy as np

    from shared_router.encoders.cache import EmbeddingCache
    from shared_router.encoders.encoder import Encoder
    from shared_router.routing.router import Router

    cache = EmbeddingCache(tmp_path_factory.mktemp("embeddings") / "cache.sqlite")
    texts = EASY_QUERIES + HARD_QUERIES
    labels = np.array([1.0] * len(EASY_QUERIES) + [0.0] * len(HARD_QUERIES))
    router = Router(
        Encoder("default", cache=cache),
        hidden_sizes=(),
        epochs=300,
        lr=0.05,
        progress=False,
        name="planted-test-router",
    )
    router.fit(texts, labels)
    large_quality = np.ones(len(texts))
    # A plain bootstrap bound (no unseen-losses term): on these few planted rows the default
    # term alone is over 10% of quality, which would send everything large at the levels the
    # tests and recipes ask for.
    router.calibrate(texts, labels, large_quality, unseen_losses=0)
    return router


@pytest.fixture(scope="session")
def tmp_cache(tmp_path_factory: pytest.TempPathFactory) -> EmbeddingCache:
    """One embedding cache for the whole test session, so texts are encoded once."""
    from shared_router.encoders.cache import EmbeddingCache

    return EmbeddingCache(tmp_path_factory.mktemp("session-cache") / "embeddings.sqlite")


@pytest.fixture(scope="session")
def planted_queries() -> tuple[list[str], list[str]]:
    """The (easy, hard) queries ``planted_router`` was trained on."""
    return list(EASY_QUERIES), list(HARD_QUERIES)
