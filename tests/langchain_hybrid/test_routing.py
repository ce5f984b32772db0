"""ChatHybrid routes each call, reports why, and honours the quality level of each layer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import ValidationError

from langchain_hybrid import ChatHybrid
from shared_router.errors import ConfigurationError, KnobError
from shared_router.routing.accounting import ModelPrices
from shared_router.routing.text import DEFAULT_MAX_CHARS
from tests.conftest import ROUTING_RECORD_KEYS
from tests.langchain_hybrid.conftest import EASY, HARD
from tests.langchain_hybrid.run_recorder import RunRecorder
from tests.langchain_hybrid.stand_ins import SpyRouter, StandInChatModel


def test_easy_question_goes_small_and_hard_goes_large(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5)

    easy = llm.invoke(EASY)
    hard = llm.invoke(HARD)

    assert easy.content == f"small-model answers: {EASY}"
    assert hard.content == f"large-model answers: {HARD}"
    assert len(small.calls) == 1 and len(large.calls) == 1
    routing = easy.response_metadata["routing"]
    assert set(routing) == ROUTING_RECORD_KEYS
    assert routing["model"] == "small"
    assert routing["model_name"] == "small-model"
    assert routing["score"] >= 0.5 > hard.response_metadata["routing"]["score"]
    assert routing["threshold"] == 0.5
    assert routing["knob"] == "threshold"
    assert routing["router"] == "planted-test-router"
    assert routing["router_ms"] >= 0.0
    assert routing["fallback"] is False
    assert "small model is predicted good enough" in routing["reason"]
    assert hard.response_metadata["routing"]["model"] == "large"


def test_the_record_names_an_inner_model_by_its_name_when_it_has_no_model_name(
    planted_router: Any,
) -> None:
    from langchain_core.language_models import FakeListChatModel

    small = FakeListChatModel(responses=["4"], name="named-small")
    large = FakeListChatModel(responses=["four"])
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5)
    assert llm.invoke(EASY).response_metadata["routing"]["model_name"] == "named-small"
    assert llm.invoke(HARD).response_metadata["routing"]["model_name"] == "fake-list-chat-model"


def test_inner_usage_and_response_metadata_pass_through(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.0)

    routed = llm.invoke(EASY)
    direct = small.invoke(EASY)

    assert routed.usage_metadata == direct.usage_metadata
    assert routed.response_metadata["model_name"] == "small-model"
    assert routed.response_metadata["finish_reason"] == "stop"


def test_no_knob_uses_the_routers_default_level(
    small: StandInChatModel, large: StandInChatModel, spy: SpyRouter
) -> None:
    llm = ChatHybrid(small=small, large=large, router=spy)

    routing = llm.invoke(EASY).response_metadata["routing"]

    assert spy.routed == [(EASY, spy.default_knobs.set_knobs())]
    assert [routing["knob"]] == list(spy.default_knobs.set_knobs())


def test_a_per_call_knob_replaces_the_models_own(
    small: StandInChatModel, large: StandInChatModel, spy: SpyRouter
) -> None:
    llm = ChatHybrid(small=small, large=large, router=spy, threshold=0.0)

    llm.invoke(EASY)
    per_call = llm.invoke(EASY, large_share=0.3).response_metadata["routing"]
    bound = llm.bind(threshold=1.0).invoke(EASY).response_metadata["routing"]

    assert [knobs for _, knobs in spy.routed] == [
        {"threshold": 0.0},
        {"large_share": 0.3},
        {"threshold": 1.0},
    ]
    assert per_call["knob"] == "large_share"
    assert bound["model"] == "large"


def test_an_assigned_setting_is_checked_and_routes_from_the_next_call(
    small: StandInChatModel, large: StandInChatModel, spy: SpyRouter
) -> None:
    llm = ChatHybrid(small=small, large=large, router=spy, threshold=0.0)
    llm.invoke(EASY)
    llm.threshold = 1.0  # it used to be kept on the field only: routing stayed at 0.0
    assert llm.invoke(EASY).response_metadata["routing"]["model"] == "large"
    assert llm.stats.calls == 2  # a new level keeps the stats
    llm.model_copy().invoke(EASY)  # copies route on it too
    assert [knobs for _, knobs in spy.routed] == [
        {"threshold": 0.0},
        {"threshold": 1.0},
        {"threshold": 1.0},
    ]
    for name, value, message in (
        ("threshold", 7.0, "must be in"),
        ("max_quality_drop", 0.05, "at most one"),  # a second level beside threshold
        ("threshold", "0.5", "must be a number, got '0.5'"),
    ):
        with pytest.raises(KnobError, match=message):
            setattr(llm, name, value)
    assert llm.threshold == 1.0
    with pytest.raises(ConfigurationError, match="router must be"):
        llm.router = 42
    llm.sticky = True
    assert llm._service.sticky and llm.stats.calls == 0  # a new service, as model_copy makes
    llm.fallback_to_large = False
    assert not llm._policy.enabled


@pytest.mark.parametrize("value", ["0.05", True])
def test_a_level_that_is_not_a_number_is_refused_as_per_call(
    small: StandInChatModel, large: StandInChatModel, value: object
) -> None:
    with pytest.raises(ValidationError, match=f"must be a number, got {value!r}"):
        ChatHybrid(small=small, large=large, max_quality_drop=value)  # 0.05 and 1.0 before


def test_two_knobs_in_one_layer_are_refused(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    with pytest.raises(ValidationError, match="at most one"):
        ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5, large_share=0.2)
    llm = ChatHybrid(small=small, large=large, router=planted_router)
    with pytest.raises(KnobError, match="at most one"):
        llm.invoke(EASY, threshold=0.5, max_quality_drop=0.01)
    with pytest.raises(KnobError, match="must be in"):
        llm.invoke(EASY, threshold=1.5)


def test_with_config_sets_the_level_of_one_chain_only(
    small: StandInChatModel, large: StandInChatModel, spy: SpyRouter
) -> None:
    llm = ChatHybrid(small=small, large=large, router=spy, threshold=0.0)
    careful = llm.with_config(configurable={"threshold": 1.0})
    thrifty = llm.with_config(configurable={"large_share": 0.0})

    assert careful.invoke(EASY).response_metadata["routing"]["model"] == "large"
    assert thrifty.invoke(EASY).response_metadata["routing"]["knob"] == "large_share"
    assert llm.invoke(EASY).response_metadata["routing"]["model"] == "small"
    assert [knobs for _, knobs in spy.routed] == [
        {"threshold": 1.0},
        {"large_share": 0.0},
        {"threshold": 0.0},
    ]
    per_call_wins = careful.invoke(EASY, threshold=0.0).response_metadata["routing"]
    assert per_call_wins["model"] == "small"
    by_share = ChatHybrid(small=small, large=large, router=spy, large_share=0.5)
    by_threshold = by_share.with_config(configurable={"threshold": 1.0}).invoke(EASY)
    assert by_threshold.response_metadata["routing"]["knob"] == "threshold"
    assert spy.routed[-1] == (EASY, {"threshold": 1.0})
    assert {spec.id for spec in llm.config_specs} >= {
        "max_quality_drop",
        "large_share",
        "threshold",
    }


def test_the_router_is_loaded_on_first_use(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any, tmp_path: Any
) -> None:
    folder = planted_router.save(tmp_path / "router")
    with pytest.raises(ValueError, match="no such folder"):
        ChatHybrid(small=small, large=large, router=tmp_path / "missing")
    llm = ChatHybrid(small=small, large=large, router=folder, threshold=0.5)

    assert llm.asdict()["router"] == str(folder)
    routing = llm.invoke(EASY).response_metadata["routing"]
    assert routing["router"] == "planted-test-router"
    assert routing["model"] == "small"


def test_a_failing_router_sends_the_call_to_the_large_model(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    broken = SpyRouter(planted_router, error=RuntimeError("encoder crashed"))
    llm = ChatHybrid(small=small, large=large, router=broken, threshold=0.0)

    recorder = RunRecorder()
    answer = llm.invoke(EASY, config={"callbacks": [recorder]})

    routing = answer.response_metadata["routing"]
    assert answer.content == f"large-model answers: {EASY}"
    # a router failure is known when the run starts: its metadata says so
    (run,) = recorder.named("ChatHybrid")
    assert (run.metadata["hybrid_model"], run.metadata["hybrid_fallback"]) == ("large", True)
    assert (routing["model"], routing["fallback"], routing["score"]) == ("large", True, None)
    assert routing["reason"] == "router failed: RuntimeError: encoder crashed"
    assert (llm.stats.router_errors, llm.stats.fallbacks) == (1, 1)


def test_a_failing_small_model_falls_back_to_the_large_one(
    large: StandInChatModel, planted_router: Any
) -> None:
    small = StandInChatModel(model="small-model", error=TimeoutError("read timed out"))
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.0)
    strict = ChatHybrid(
        small=small, large=large, router=planted_router, threshold=0.0, fallback_to_large=False
    )

    recorder = RunRecorder()
    answer = llm.invoke(EASY, config={"callbacks": [recorder]})

    routing = answer.response_metadata["routing"]
    assert answer.content == f"large-model answers: {EASY}"
    # the run's metadata is the decision, fixed at its start; the large model's run says more
    (run,) = recorder.named("ChatHybrid")
    assert (run.metadata["hybrid_model"], run.metadata["hybrid_fallback"]) == ("small", False)
    assert [r.tags for r in recorder.runs if r.kind == "chat_model"] == [
        ["hybrid:small"],
        ["hybrid:large", "hybrid:fallback"],
    ]
    assert (routing["model"], routing["model_name"], routing["fallback"]) == (
        "large",
        "large-model",
        True,
    )
    assert routing["reason"].startswith("small model failed (TimeoutError: read timed out)")
    assert routing["score"] is not None
    assert (llm.stats.small, llm.stats.large, llm.stats.fallbacks) == (0, 1, 1)
    with pytest.raises(TimeoutError, match="read timed out"):
        strict.invoke(EASY)


def test_errors_of_the_large_model_surface_unchanged(planted_router: Any) -> None:
    down = ValueError("large model is down")
    failed = ConnectionError("small failed")
    small = StandInChatModel(model="small-model", error=failed)
    large = StandInChatModel(model="large-model", error=down)
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.0)

    for call in (llm.invoke, lambda text: asyncio.run(llm.ainvoke(text))):
        down.__context__ = None
        with pytest.raises(ValueError) as raised:
            call(EASY)
        assert raised.value is down
        assert raised.value.__context__ is failed  # the small model's error, kept (it was lost)
    assert llm.stats.calls == 0


def test_messages_without_text_are_routed_on_what_text_there_is(
    small: StandInChatModel, large: StandInChatModel, spy: SpyRouter
) -> None:
    llm = ChatHybrid(small=small, large=large, router=spy, threshold=0.0)
    image_only = HumanMessage(
        content=[{"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"}]
    )
    tool_only = [ToolMessage(content='{"result": 3}', tool_call_id="call_1")]

    image_routing = llm.invoke([image_only]).response_metadata["routing"]
    llm.invoke(tool_only)

    assert (image_routing["model"], image_routing["score"]) == ("large", None)
    assert "empty text" in image_routing["reason"]
    assert [text for text, _ in spy.routed] == ["", 'tool: {"result": 3}']


def test_a_huge_conversation_is_routed_on_a_bounded_text(
    small: StandInChatModel, large: StandInChatModel, spy: SpyRouter
) -> None:
    history = [HumanMessage(f"turn {i} " * 50) if i % 2 else AIMessage("ok") for i in range(2000)]
    huge = [*history, HumanMessage("x" * 200_000 + " What is 2 + 2?")]
    llm = ChatHybrid(small=small, large=large, router=spy, threshold=0.0)
    whole = ChatHybrid(
        small=small, large=large, router=spy, threshold=0.0, routed_text="conversation"
    )

    llm.invoke(huge)
    whole.invoke(huge)

    last_user, conversation = (text for text, _ in spy.routed)
    assert len(last_user) <= DEFAULT_MAX_CHARS and last_user.endswith("What is 2 + 2?")
    assert len(conversation) <= DEFAULT_MAX_CHARS and conversation.startswith(
        "assistant: ok\nuser: turn 1"
    )


def test_conversation_mode_routes_every_turn(
    small: StandInChatModel, large: StandInChatModel, spy: SpyRouter
) -> None:
    llm = ChatHybrid(
        small=small, large=large, router=spy, threshold=0.0, routed_text="conversation"
    )
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("Hi"),
        AIMessage("Hello!"),
        HumanMessage(EASY),
    ]

    llm.invoke(messages)

    assert spy.routed[0][0] == f"system: Be brief.\nuser: Hi\nassistant: Hello!\nuser: {EASY}"


def test_sticky_conversations_stay_on_the_large_model(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    sticky = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5, sticky=True)
    free = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5)
    first = [HumanMessage(HARD)]
    second = [*first, AIMessage("Here is the memo."), HumanMessage(EASY)]
    other = [HumanMessage("A different opening"), AIMessage("Sure."), HumanMessage(EASY)]

    def routed(llm: ChatHybrid, messages: Any, conversation: str) -> dict[str, Any]:
        routing: dict[str, Any] = llm.invoke(
            messages, conversation_id=conversation
        ).response_metadata["routing"]
        return routing

    assert routed(sticky, first, "a")["model"] == "large"
    later = routed(sticky, second, "a")
    assert (later["model"], later["score"]) == ("large", None)
    assert later["reason"].startswith("sticky")
    assert routed(sticky, other, "b")["model"] == "small"
    assert routed(sticky, second, "c")["model"] == "small"
    assert routed(free, second, "a")["model"] == "small"


def test_sticky_conversations_can_be_named_by_thread_id(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5, sticky=True)
    thread = {"configurable": {"thread_id": "thread-7"}}

    llm.invoke(HARD, config=thread)
    in_thread = llm.invoke(EASY, config=thread).response_metadata["routing"]
    elsewhere = llm.invoke(EASY, config={"configurable": {"thread_id": "thread-8"}})

    assert in_thread["model"] == "large" and in_thread["reason"].startswith("sticky")
    assert elsewhere.response_metadata["routing"]["model"] == "small"


def test_stats_count_calls_and_estimate_the_savings(
    small: StandInChatModel, large: StandInChatModel, planted_router: Any
) -> None:
    prices = {
        "small": ModelPrices(1.0, 2.0),
        "large": {"input_per_million": 10.0, "output_per_million": 20.0},
    }
    llm = ChatHybrid(small=small, large=large, router=planted_router, threshold=0.5, prices=prices)

    llm.invoke(EASY)
    llm.invoke("Hi, " + HARD)

    stats = llm.stats
    # EASY: 5 prompt words; "small-model answers: What is 2 + 2?" is 7 words.
    small_cost = (5 * 1.0 + 7 * 2.0) / 1e6
    small_as_large = (5 * 10.0 + 7 * 20.0) / 1e6
    hard_in = len(("Hi, " + HARD).split())
    hard_cost = (hard_in * 10.0 + (hard_in + 2) * 20.0) / 1e6
    assert (stats.calls, stats.small, stats.large, stats.fallbacks) == (2, 1, 1, 0)
    assert stats.input_tokens == {"small": 5, "large": hard_in}
    assert stats.output_tokens == {"small": 7, "large": hard_in + 2}
    assert stats.cost == pytest.approx(small_cost + hard_cost)
    assert stats.cost_saved == pytest.approx(small_as_large - small_cost)
    assert stats.small_share == 0.5
    assert ChatHybrid(small=small, large=large, router=planted_router).stats.cost_saved is None


def test_the_configuration_is_json_ready_and_keys_the_cache(
    small: StandInChatModel, large: StandInChatModel, planted_folder: str
) -> None:
    folder = str(Path(planted_folder).resolve())
    llm = ChatHybrid(small=small, large=large, router=planted_folder, large_share=0.2)
    other = ChatHybrid(small=small, large=large, router=planted_folder, large_share=0.3)

    config = json.loads(json.dumps(llm.asdict()))

    assert config == {
        "_type": "hybrid-chat",
        "small": {"model": "small-model", "_type": "stand-in-chat"},
        "large": {"model": "large-model", "_type": "stand-in-chat"},
        "router": folder,
        "large_share": 0.2,
        "fallback_to_large": True,
        "routed_text": "last_user",
        "sticky": False,
    }
    assert llm._get_llm_string() != other._get_llm_string()
    assert llm._get_ls_params() == {
        "ls_provider": "hybrid",
        "ls_model_name": "hybrid(small=small-model, large=large-model)",
        "ls_model_type": "chat",
    }


def test_construction_checks_its_arguments(
    small: StandInChatModel, large: StandInChatModel
) -> None:
    with pytest.warns(UserWarning, match="ChatHybrid ignores temperature") as warned:
        ChatHybrid(small=small, large=large, temperature=0.0)
    assert warned[0].filename == __file__  # it points at the line that built the model
    for misspelt, meant in (
        ("max_qualty_drop", "max_quality_drop"),
        ("large_shares", "large_share"),
    ):
        with pytest.raises(ValidationError, match=f"got {misspelt}=.*did you mean {meant}\\?"):
            ChatHybrid(small=small, large=large, **{misspelt: 0.05})
    with pytest.raises(ValidationError, match="router must be"):
        ChatHybrid(small=small, large=large, router=42)
    with pytest.raises(ValidationError, match="'small' and 'large'"):
        ChatHybrid(small=small, large=large, prices={"small": ModelPrices(1.0, 1.0)})


def test_paced_large_share_is_held_on_live_traffic(planted_router: Any) -> None:
    llm = ChatHybrid(
        small=StandInChatModel(model="small-model"),
        large=StandInChatModel(model="large-model"),
        router=planted_router,
        large_share=1.0,
        pace_large_share=True,
    )
    routing = llm.invoke(EASY[0]).response_metadata["routing"]
    assert routing["model"] == "large" and routing["knob"] == "large_share (paced)"
