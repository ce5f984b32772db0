"""HybridLLM in real LlamaIndex RAG pipelines (real index, real local embedding)."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.prompts import PromptTemplate
from llama_index.core.query_engine import RouterQueryEngine
from llama_index.core.tools import QueryEngineTool

from llamaindex_hybrid import HybridLLM, RoutingEvent
from shared_router.routing.text import routing_text
from tests.llamaindex_hybrid.stand_ins import EASY, HARD, EventLog, StandInLLM

CONTRACT_DOCS = [
    "The Acme services agreement sets a notice period of 30 days for termination by either party.",
    "Under the Acme agreement the warranty lasts 12 months from delivery of the software.",
    "Acme's liability under the agreement is capped at the fees paid in the previous 12 months.",
]
ARITHMETIC_DOCS = ["Two plus three is five.", "Six times seven is forty-two."]
CLAUSE = (
    "Clause {n}. The Supplier shall indemnify the Customer against all losses, damages, costs "
    "and expenses arising from any breach of warranty, negligent act or wilful default of the "
    "Supplier, its employees or subcontractors, save that the Supplier's aggregate liability "
    "under this Clause {n} shall not exceed the limitation set out in Schedule {n}. "
)
LONG_CONTRACT = "".join(CLAUSE.format(n=n) for n in range(1, 60))


@pytest.fixture(scope="module")
def contracts(embed_model: Any) -> VectorStoreIndex:
    docs = [Document(text=text) for text in CONTRACT_DOCS]
    return VectorStoreIndex.from_documents(docs, embed_model=embed_model)


@pytest.fixture(scope="module")
def arithmetic(embed_model: Any) -> VectorStoreIndex:
    docs = [Document(text=text) for text in ARITHMETIC_DOCS]
    return VectorStoreIndex.from_documents(docs, embed_model=embed_model)


@pytest.fixture(scope="module")
def long_contract(embed_model: Any) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents([Document(text=LONG_CONTRACT)], embed_model=embed_model)


def records(events: EventLog) -> list[dict[str, Any]]:
    """The routing decisions of the HybridLLM answers seen by LlamaIndex instrumentation."""
    return [event.model_dump() for event in events.of(RoutingEvent)]


def pair(**kwargs: Any) -> tuple[StandInLLM, StandInLLM]:
    return StandInLLM(name="small", **kwargs), StandInLLM(name="large", **kwargs)


@pytest.mark.parametrize("chat_model", [True, False], ids=["chat-models", "completion-models"])
async def test_query_engine_sync_async_and_streaming(
    contracts: VectorStoreIndex, planted_router: Any, events: EventLog, chat_model: bool
) -> None:
    small, large = pair(chat_model=chat_model)
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    engine = contracts.as_query_engine(llm=llm, similarity_top_k=2)

    assert str(engine.query(EASY)) == "[small] answered"
    assert str(await engine.aquery(HARD)) == "[large] answered"
    streaming = contracts.as_query_engine(llm=llm, similarity_top_k=2, streaming=True)
    assert "".join(streaming.query(EASY).response_gen) == "[small] answered"

    assert len(small.calls) == 2 and len(large.calls) == 1
    for received, question in zip(small.texts + large.texts, [EASY, EASY, HARD], strict=True):
        assert question in received
        assert "Acme" in received  # the retrieved context reached the model
    routed = records(events)
    assert [r["model"] for r in routed] == ["small", "large", "small"]
    for record, question in zip(routed, [EASY, HARD, EASY], strict=True):
        assert record["score"] == pytest.approx(planted_router.score(question)[0])
    assert (llm.stats.calls, llm.stats.small, llm.stats.large) == (3, 2, 1)


@pytest.mark.parametrize("chat_model", [True, False], ids=["chat-models", "completion-models"])
def test_routing_follows_the_question_not_the_long_context(
    long_contract: VectorStoreIndex, planted_router: Any, events: EventLog, chat_model: bool
) -> None:
    small, large = pair(chat_model=chat_model)
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    engine = long_contract.as_query_engine(llm=llm, similarity_top_k=3)

    assert str(engine.query(EASY)) == "[small] answered"
    assert str(engine.query(HARD)) == "[large] answered"
    easy_prompt = small.texts[0]
    assert len(easy_prompt) > 3 * len(CLAUSE) and "Clause" in easy_prompt
    easy, hard = records(events)
    assert easy["score"] == pytest.approx(planted_router.score(EASY)[0])
    assert hard["score"] == pytest.approx(planted_router.score(HARD)[0])
    # Routed as plain text, the long prompt would have been scored differently.
    whole = planted_router.score(routing_text([("user", easy_prompt)]))[0]
    assert abs(whole - easy["score"]) > 0.05


def test_custom_templates_name_their_question_variable(
    small: StandInLLM, large: StandInLLM, planted_router: Any, events: EventLog
) -> None:
    template = PromptTemplate("Contract:\n{contract}\nAsk: {ask}\nAnswer:")
    default = HybridLLM(small, large, router=planted_router, threshold=0.5)
    named = HybridLLM(
        small, large, router=planted_router, threshold=0.5, question_variables=("ask",)
    )
    default.predict(template, contract=LONG_CONTRACT, ask=EASY)
    named.predict(template, contract=LONG_CONTRACT, ask=EASY)
    named.predict(template.partial_format(ask=EASY), contract=LONG_CONTRACT)

    prompt = template.format(contract=LONG_CONTRACT, ask=EASY)
    unnamed, by_name, partial = records(events)
    assert unnamed["score"] == pytest.approx(
        planted_router.score(routing_text([("user", prompt)]))[0]
    )
    assert by_name["score"] == partial["score"] == pytest.approx(planted_router.score(EASY)[0])


def test_a_remembered_question_applies_only_to_its_own_prompt(
    small: StandInLLM, large: StandInLLM, planted_router: Any, events: EventLog
) -> None:
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    llm.predict(
        PromptTemplate("{context_str}\nQuery: {query_str}"), context_str="x", query_str=EASY
    )
    llm.complete(HARD)
    first, second = records(events)
    assert (first["model"], second["model"]) == ("small", "large")
    assert second["score"] == pytest.approx(planted_router.score(HARD)[0])


def test_per_engine_quality_and_per_block_quality(
    contracts: VectorStoreIndex, small: StandInLLM, large: StandInLLM, planted_router: Any
) -> None:
    question = "What is the capital of Italy?"
    strict_level, lax_level = 0.0, 0.5
    strict_model = planted_router.route(question, max_quality_drop=strict_level).model
    lax_model = planted_router.route(question, max_quality_drop=lax_level).model
    assert (strict_model, lax_model) == ("large", "small")  # the two levels disagree here

    strict = HybridLLM(small, large, router=planted_router, max_quality_drop=strict_level)
    lax = HybridLLM(small, large, router=planted_router, max_quality_drop=lax_level)
    strict_engine = contracts.as_query_engine(llm=strict)
    assert str(strict_engine.query(question)) == "[large] answered"
    assert str(contracts.as_query_engine(llm=lax).query(question)) == "[small] answered"
    with strict.quality(max_quality_drop=lax_level):
        assert str(strict_engine.query(question)) == "[small] answered"
    assert str(strict_engine.query(question)) == "[large] answered"


def test_context_chat_engine_routes_each_turn_on_the_user_message(
    contracts: VectorStoreIndex, planted_router: Any, events: EventLog
) -> None:
    small, large = pair()
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    chat = contracts.as_chat_engine(chat_mode="context", llm=llm)
    assert str(chat.chat(EASY)) == "[small] answered"
    assert str(chat.chat(HARD)) == "[large] answered"
    assert str(chat.chat(EASY)) == "[small] answered"
    assert [r["score"] for r in records(events)] == pytest.approx(
        [planted_router.score(q)[0] for q in (EASY, HARD, EASY)]
    )

    sticky = HybridLLM(small, large, router=planted_router, threshold=0.5, sticky=True)
    chat = contracts.as_chat_engine(chat_mode="context", llm=sticky)
    replies = [str(chat.chat(q)) for q in (EASY, HARD, EASY)]
    assert replies == ["[small] answered", "[large] answered", "[large] answered"]


def test_condense_question_chat_engine_routes_condense_and_answer_on_questions(
    contracts: VectorStoreIndex, planted_router: Any, events: EventLog
) -> None:
    def answer(text: str) -> str:
        return EASY if "Follow Up" in text else "[answered]"

    small, large = pair(answer=answer)
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    chat = contracts.as_chat_engine(chat_mode="condense_question", llm=llm)
    chat.chat(HARD)
    chat.chat("And the easy one?")

    hard_answer, condense, easy_answer = records(events)
    assert (hard_answer["model"], easy_answer["model"]) == ("large", "small")
    assert condense["score"] == pytest.approx(planted_router.score("And the easy one?")[0])
    assert easy_answer["score"] == pytest.approx(planted_router.score(EASY)[0])


@pytest.mark.parametrize("function_calling", [False, True], ids=["llm-selector", "pydantic"])
def test_router_query_engine_with_hybrid_llm_as_selector(
    contracts: VectorStoreIndex,
    arithmetic: VectorStoreIndex,
    planted_router: Any,
    events: EventLog,
    function_calling: bool,
) -> None:
    def answer(text: str) -> str:
        selecting = "choices" in text
        return '[{"choice": 2, "reason": "arithmetic"}]' if selecting else "[answered]"

    small, large = pair(
        answer=answer,
        function_calling=function_calling,
        tool_kwargs={"index": 2, "reason": "arithmetic"} if function_calling else None,
    )
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    tools = [
        QueryEngineTool.from_defaults(
            contracts.as_query_engine(llm=llm), description="Questions about the Acme contract."
        ),
        QueryEngineTool.from_defaults(
            arithmetic.as_query_engine(llm=llm), description="Arithmetic questions."
        ),
    ]
    engine = RouterQueryEngine.from_defaults(tools, llm=llm)
    assert str(engine.query(EASY)) == "[answered]"

    assert "Arithmetic questions." in small.texts[0]  # the selector's prompt
    assert "Two plus three is five." in small.texts[-1]  # answered from the chosen engine
    assert "Acme" not in small.texts[-1]
    selector, answering = records(events)
    assert (selector["model"], answering["model"]) == ("small", "small")
    if not function_calling:  # the LLM selector formats a template: routed on query_str
        assert selector["score"] == pytest.approx(planted_router.score(EASY)[0])


def test_settings_llm(contracts: VectorStoreIndex, planted_router: Any) -> None:
    small, large = pair()
    previous = Settings._llm
    Settings.llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    try:
        assert str(contracts.as_query_engine().query(HARD)) == "[large] answered"
    finally:
        Settings._llm = previous
    assert small.calls == [] and len(large.calls) == 1
