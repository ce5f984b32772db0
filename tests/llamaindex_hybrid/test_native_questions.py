"""Question routing where LlamaIndex, or a Workflow, formats the prompt by hand (issue 14).

Why bullet 4 ("question routing is lost where prompts are formatted by hand").
"""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Document, PromptTemplate, QueryBundle, VectorStoreIndex
from llama_index.core.bridge.pydantic import BaseModel
from llama_index.core.query_engine import RouterQueryEngine
from llama_index.core.tools import QueryEngineTool
from llama_index.core.workflow import StartEvent, StopEvent, Workflow, step

from llamaindex_hybrid import HybridLLM, RoutingEvent, routing_question
from shared_router.routing.text import routing_text
from tests.llamaindex_hybrid.stand_ins import EASY, HARD, EventLog, StandInLLM

DOCS = [
    "The Acme services agreement sets a notice period of 30 days for termination by either party.",
    "Two plus three is five.",
]
CONTEXT = " ".join(
    f"Clause {n}. The Supplier shall indemnify the Customer against all losses arising from any "
    f"breach of warranty, negligent act or wilful default, within the cap of Schedule {n}."
    for n in range(1, 40)
)


class Answer(BaseModel):
    """An answer with its one-word gist."""

    answer: str


@pytest.fixture(scope="module")
def index(embed_model: Any) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(
        [Document(text=text) for text in DOCS], embed_model=embed_model
    )


def routed(events: EventLog) -> list[RoutingEvent]:
    return events.of(RoutingEvent)


def score(router: Any, text: str) -> float:
    return float(router.score(text)[0])


@pytest.mark.parametrize("chat_mode", ["condense_plus_context", "best"])
async def test_the_condense_step_routes_on_the_follow_up_question(
    index: VectorStoreIndex, planted_router: Any, events: EventLog, chat_mode: str
) -> None:
    def answer(text: str) -> str:
        return EASY if "Follow Up Input" in text else "[answered]"

    small = StandInLLM(name="small", answer=answer, function_calling=False)
    large = StandInLLM(name="large", answer=answer, function_calling=False)
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    chat = index.as_chat_engine(chat_mode=chat_mode, llm=llm)
    chat.chat(HARD)
    events.events.clear()
    await chat.achat("And the easy one?")

    condense = routed(events)[0]
    condense_prompt = next(t for t in small.texts + large.texts if "Follow Up Input" in t)
    # Before: routed on the whole condense prompt (the history with the hard memo request).
    assert condense.score == pytest.approx(score(planted_router, "And the easy one?"))
    whole = score(planted_router, routing_text([("user", condense_prompt)]))
    assert abs(whole - condense.score) > 0.05


@pytest.mark.parametrize("function_calling", [True, False], ids=["function-calling", "text"])
def test_output_cls_engines_route_on_the_question(
    index: VectorStoreIndex, planted_router: Any, events: EventLog, function_calling: bool
) -> None:
    small = StandInLLM(
        name="small",
        function_calling=function_calling,
        tool_kwargs={"answer": "five"},
        answer=lambda text: '{"answer": "five"}',
    )
    large = small.model_copy(update={"name": "large"})
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    engine = index.as_query_engine(llm=llm, output_cls=Answer, similarity_top_k=2)

    response = engine.query(EASY)

    assert response.response == Answer(answer="five")
    (decision,) = routed(events)
    # Before: routed on "Context information is below..." (the retrieved context).
    assert decision.score == pytest.approx(score(planted_router, EASY))


def test_the_pydantic_selector_routes_on_the_question(
    index: VectorStoreIndex, planted_router: Any, events: EventLog
) -> None:
    small = StandInLLM(name="small", tool_kwargs={"index": 2, "reason": "arithmetic"})
    large = StandInLLM(name="large", tool_kwargs={"index": 2, "reason": "arithmetic"})
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    tools = [
        QueryEngineTool.from_defaults(index.as_query_engine(llm=llm), description=d)
        for d in ("Questions about the Acme contract.", "Arithmetic questions.")
    ]
    RouterQueryEngine.from_defaults(tools, llm=llm).query(EASY)

    selector = routed(events)[0]
    assert "Arithmetic questions." in small.texts[0]  # the selector's own prompt
    # Before: routed on the selector prompt with its list of choices.
    assert selector.score == pytest.approx(score(planted_router, EASY))


class AnswerFlow(Workflow):
    """A Workflow step that formats its prompt by hand, as Workflow authors do."""

    prompt = PromptTemplate("Context:\n{context_str}\n\nAnswer the question: {query_str}\n")

    def __init__(self, llm: HybridLLM, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llm = llm

    @step
    async def answer(self, ev: StartEvent) -> StopEvent:
        query = QueryBundle(ev.query)
        with routing_question(query):
            text = self.prompt.format(context_str=CONTEXT, query_str=query.query_str)
            response = await self.llm.acomplete(text)
        return StopEvent(result=response)


async def test_a_workflow_says_what_the_question_is(
    small: StandInLLM, large: StandInLLM, planted_router: Any
) -> None:
    llm = HybridLLM(small, large, router=planted_router, threshold=0.5)
    easy = await AnswerFlow(llm, timeout=60).run(query=EASY)
    hard = await AnswerFlow(llm, timeout=60).run(query=HARD)

    assert (
        easy.additional_kwargs["routing"]["model"],
        hard.additional_kwargs["routing"]["model"],
    ) == (
        "small",
        "large",
    )
    assert easy.additional_kwargs["routing"]["score"] == pytest.approx(score(planted_router, EASY))
    assert CONTEXT in small.texts[0]  # the model still gets the whole prompt
    # Outside the block, the same prompt is routed on its text.
    outside = llm.complete(AnswerFlow.prompt.format(context_str=CONTEXT, query_str=EASY))
    assert outside.additional_kwargs["routing"]["score"] != pytest.approx(
        score(planted_router, EASY)
    )
