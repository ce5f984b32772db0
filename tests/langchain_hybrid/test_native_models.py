"""What ChatHybrid takes from its inner models, and copies of it.

``profile`` is what both inner models can do (the smaller context window); token counts are
the inner models' own; a conversation too long for the small model's window goes large;
inner models may be wrapped chat models (``with_retry()``, ``configurable_alternatives``);
pickle, deepcopy and ``model_copy`` give an independent model over the same router.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import trim_messages
from langchain_core.runnables import ConfigurableField

from langchain_hybrid import ChatHybrid
from tests.langchain_hybrid.conftest import EASY, HARD
from tests.langchain_hybrid.stand_ins import StandInChatModel


def _words(text: str) -> list[int]:
    return list(range(len(text.split())))


def test_profile_is_what_both_inner_models_support(planted_router: Any) -> None:
    small = StandInChatModel(
        model="small-model",
        profile={"max_input_tokens": 8_000, "tool_calling": True, "image_inputs": False},
    )
    large = StandInChatModel(
        model="large-model",
        profile={"max_input_tokens": 128_000, "tool_calling": True, "image_inputs": True},
    )
    llm = ChatHybrid(small=small, large=large, router=planted_router)
    assert llm.profile == {"max_input_tokens": 8_000, "tool_calling": True, "image_inputs": False}


def test_token_counts_are_the_inner_models_own(planted_router: Any) -> None:
    small = StandInChatModel(model="small-model", custom_get_token_ids=_words)
    large = StandInChatModel(model="large-model", custom_get_token_ids=_words)
    llm = ChatHybrid(small=small, large=large, router=planted_router)
    assert llm.get_num_tokens("one two three") == 3
    history = [("human", "one two three four"), ("ai", "five six"), ("human", "seven eight")]
    trimmed = trim_messages(history, max_tokens=6, token_counter=llm, strategy="last")
    assert [m.text for m in trimmed] == ["five six", "seven eight"]


def test_a_conversation_longer_than_the_small_window_goes_large(planted_router: Any) -> None:
    small = StandInChatModel(
        model="small-model", custom_get_token_ids=_words, profile={"max_input_tokens": 50}
    )
    large = StandInChatModel(model="large-model", custom_get_token_ids=_words)
    llm = ChatHybrid(small=small, large=large, router=planted_router)
    long_history = [("human", "word " * 60), ("ai", "noted"), ("human", EASY)]
    routing = llm.invoke(long_history).response_metadata["routing"]
    assert routing["model"] == "large"
    assert "context window" in routing["reason"]
    assert llm.invoke(EASY).response_metadata["routing"]["model"] == "small"


def test_wrapped_inner_models_are_accepted(planted_router: Any) -> None:
    small = StandInChatModel(model="small-model").with_retry(stop_after_attempt=2)
    large = StandInChatModel(model="large-model").configurable_alternatives(
        ConfigurableField(id="large_model"),
        default_key="default",
        other=StandInChatModel(model="other-large"),
    )
    llm = ChatHybrid(small=small, large=large, router=planted_router)
    assert llm.invoke(EASY).text == f"small-model answers: {EASY}"
    chosen = llm.invoke(HARD, {"configurable": {"large_model": "other"}})
    assert chosen.text == f"other-large answers: {HARD}"


def test_an_inner_model_of_the_wrong_type_names_the_accepted_ones(planted_router: Any) -> None:
    with pytest.raises(ValueError, match="BaseChatModel"):
        ChatHybrid(small="gpt-4o-mini", large=StandInChatModel(), router=planted_router)


def _picklable_pair() -> dict[str, Any]:
    return {
        "small": FakeListChatModel(responses=["small answer"] * 10),
        "large": FakeListChatModel(responses=["large answer"] * 10),
    }


def test_pickle_and_deepcopy_give_an_independent_model_over_the_same_router(
    planted_folder: str,
) -> None:
    llm = ChatHybrid(**_picklable_pair(), router=planted_folder, max_quality_drop=0.02)
    llm.invoke(EASY)
    for twin in (pickle.loads(pickle.dumps(llm)), copy.deepcopy(llm)):
        assert twin.max_quality_drop == 0.02
        assert twin.stats.calls == 0
        assert twin.invoke(EASY).response_metadata["routing"]["model"] == "small"
        assert twin.stats.calls == 1
        assert twin._service.router is llm._service.router
    assert llm.stats.calls == 1


def test_model_copy_takes_the_new_level_and_has_its_own_stats(planted_router: Any) -> None:
    llm = ChatHybrid(**_picklable_pair(), router=planted_router, max_quality_drop=0.5)
    llm.invoke(EASY)
    careful = llm.model_copy(update={"max_quality_drop": 0.0})
    routing = careful.invoke(EASY).response_metadata["routing"]
    assert routing["knob"] == "max_quality_drop"
    assert "max_quality_drop=0" in routing["reason"]
    assert careful.stats.calls == 1
    assert llm.stats.calls == 1
    assert careful._service.router is llm._service.router
