"""ChatHybrid under LangChain's LLM cache (``set_llm_cache(InMemoryCache())``).

Each answer is cached once, by the model that produced it; a repeated call is routed again
(so its record is fresh and it counts in ``stats``), hits the chosen model's entry, and says
``cached=True``; the key does not change when the router loads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache

from langchain_hybrid import ChatHybrid
from tests.langchain_hybrid.conftest import EASY, HARD
from tests.langchain_hybrid.stand_ins import StandInChatModel


@pytest.fixture
def cache() -> Iterator[InMemoryCache]:
    """A global in-memory LLM cache, removed afterwards."""
    cache = InMemoryCache()
    set_llm_cache(cache)
    yield cache
    set_llm_cache(None)


def test_a_repeated_call_hits_the_cache_from_its_first_call_on(
    cache: InMemoryCache, small: StandInChatModel, large: StandInChatModel, planted_folder: str
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_folder)
    first = llm.invoke(EASY)
    second = llm.invoke(EASY)
    assert second.text == first.text
    assert first.response_metadata["routing"]["cached"] is False
    assert second.response_metadata["routing"]["cached"] is True
    assert len(small.calls) == 1
    assert (llm.stats.calls, llm.stats.small) == (2, 2)


def test_each_answer_is_cached_once(
    cache: InMemoryCache, small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router)
    llm.invoke(EASY)
    llm.invoke(HARD)
    assert len(cache._cache) == 2


def test_a_cache_hit_gets_a_fresh_record(
    cache: InMemoryCache, large: StandInChatModel, planted_router: Any
) -> None:
    broken = StandInChatModel(model="small-model", error=TimeoutError("down"))
    llm = ChatHybrid(small=broken, large=large, router=planted_router)
    fell_back = llm.invoke(EASY).response_metadata["routing"]
    assert fell_back["fallback"] is True
    recovered = llm.model_copy(update={"small": StandInChatModel(model="small-model")})
    routing = recovered.invoke(EASY).response_metadata["routing"]
    assert (routing["model"], routing["fallback"], routing["cached"]) == ("small", False, False)
    again = recovered.invoke(EASY).response_metadata["routing"]
    assert (again["model"], again["fallback"], again["cached"]) == ("small", False, True)
    assert again["router_ms"] < 1_000


def test_a_folder_router_keys_the_same_before_and_after_it_loads(planted_folder: str) -> None:
    pair = {"small": StandInChatModel(), "large": StandInChatModel()}
    before = ChatHybrid(**pair, router=planted_folder)
    key_before = before._get_llm_string()
    before.invoke(EASY)
    assert before._get_llm_string() == key_before
    assert str(Path(planted_folder).resolve()) in key_before


def test_chat_hybrid_takes_no_cache_of_its_own() -> None:
    with pytest.raises(ValueError, match="no cache of its own"):
        ChatHybrid(small=StandInChatModel(), large=StandInChatModel(), cache=InMemoryCache())
