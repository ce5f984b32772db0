"""Fixtures of the ChatHybrid tests: offline stand-in models and a spy on the planted router."""

from __future__ import annotations

from typing import Any

import pytest

from tests.langchain_hybrid.stand_ins import SpyRouter, StandInChatModel

EASY = "What is 2 + 2?"
HARD = (
    "Draft a detailed legal memo analysing liability under the contract for a breach of a "
    "software licence, citing the relevant case law and recommending a litigation strategy."
)


@pytest.fixture
def small() -> StandInChatModel:
    """The small stand-in model."""
    return StandInChatModel(model="small-model")


@pytest.fixture
def large() -> StandInChatModel:
    """The large stand-in model."""
    return StandInChatModel(model="large-model")


@pytest.fixture
def spy(planted_router: Any) -> SpyRouter:
    """The planted router, recording what it routes."""
    return SpyRouter(planted_router)
