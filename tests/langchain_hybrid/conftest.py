"""Fixtures of the ChatHybrid tests: offline stand-in models and a spy on the planted router."""

from __future__ import annotations

from pathlib import Path
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


@pytest.fixture(scope="session")
def planted_folder(planted_router: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The planted router saved as a router folder (ChatHybrid loads it on first use)."""
    folder: Path = planted_router.save(tmp_path_factory.mktemp("routers") / "planted")
    return str(folder)
