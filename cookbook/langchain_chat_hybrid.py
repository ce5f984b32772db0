"""Recipe: route every LangChain call between a small and a large model with ``ChatHybrid``.

Runs offline: the two chat models below are STAND-INS (canned answers, no network), so the
recipe shows the routing, not the answers. Switching to real providers is one line each,
shown next to the stand-ins. The router is real: ``"default"`` is the router bundled with
hybrid-llm; ``--router`` takes any router folder (for example one you trained with
``hybrid-llm train``).

Covered: an LCEL chain, a per-chain quality level, streaming, a tool-calling agent loop, the
routing metadata of each answer, and the savings estimate.

Run: ``python cookbook/langchain_chat_hybrid.py [--router default]``
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_hybrid import ChatHybrid
from shared_router.routing.accounting import ModelPrices, StatsSnapshot

EASY = "What is 2 + 2?"
HARD = (
    "Draft a detailed legal memo analysing liability under the contract for a breach of a "
    "software licence, citing the relevant case law and recommending a litigation strategy."
)


# ---------------------------------------------------------------------------------------
# STAND-IN MODELS: offline placeholders for hosted chat models. Replace the two lines in
# `make_models` with real providers and nothing else in this recipe changes:
#
#   from langchain_openai import ChatOpenAI            # pip install langchain-openai
#   small, large = ChatOpenAI(model="gpt-4o-mini"), ChatOpenAI(model="gpt-4o")
#
#   from langchain_anthropic import ChatAnthropic      # pip install langchain-anthropic
#   small = ChatAnthropic(model="claude-3-5-haiku-latest")
#   large = ChatAnthropic(model="claude-sonnet-4-5")
#
#   from langchain_ollama import ChatOllama            # pip install langchain-ollama
#   small, large = ChatOllama(model="llama3.2:1b"), ChatOllama(model="qwen2.5:14b")
# ---------------------------------------------------------------------------------------
class StandInChatModel(BaseChatModel):
    """STAND-IN for a hosted chat model: canned answers, word streaming, simple tool calls."""

    model: str
    """The name the stand-in reports, like a provider's model name."""

    @property
    def _llm_type(self) -> str:
        return "stand-in"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        question = next(m.text for m in reversed(messages) if isinstance(m, HumanMessage))
        usage = {"input_tokens": sum(len(m.text.split()) for m in messages)}
        tools = kwargs.get("tools")
        if tools and isinstance(messages[-1], HumanMessage):  # call the first tool
            numbers = [int(n) for n in re.findall(r"\d+", question)]
            function = tools[0]["function"]
            args = dict(zip(function["parameters"]["properties"], numbers, strict=False))
            call = {"name": function["name"], "args": args, "id": "call_1", "type": "tool_call"}
            message = AIMessage(content="", tool_calls=[call])
        elif isinstance(messages[-1], HumanMessage):
            message = AIMessage(content=f"[{self.model}] (canned answer to: {question})")
        else:
            message = AIMessage(content=f"[{self.model}] The tool says {messages[-1].text}.")
        message.usage_metadata = {
            **usage,
            "output_tokens": len(message.text.split()) + 1,
            "total_tokens": usage["input_tokens"] + len(message.text.split()) + 1,
        }
        message.response_metadata = {"model_name": self.model}
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        answer = self._generate(messages, stop, **kwargs).generations[0].message
        for word in re.findall(r"\S+\s*", answer.text):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))
        last = AIMessageChunk(content="", response_metadata=answer.response_metadata)
        last.usage_metadata = getattr(answer, "usage_metadata", None)
        yield ChatGenerationChunk(message=last)


def make_models() -> tuple[BaseChatModel, BaseChatModel]:
    """The small and the large model (STAND-INS; see the comment above the class)."""
    return StandInChatModel(model="small-stand-in"), StandInChatModel(model="large-stand-in")


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def main(router: Any = "default") -> StatsSnapshot:
    """Run the recipe and print what happens.

    Args:
        router: ``"default"``, a router folder, or a ``Router``.

    Returns:
        The routing statistics at the end.
    """
    small, large = make_models()
    # The one-line switch: where you had `llm = ChatOpenAI(...)`.
    llm = ChatHybrid(
        small=small,
        large=large,
        router=router,
        max_quality_drop=0.01,  # accept at most a 1% drop versus always-large
        prices={"small": ModelPrices(0.15, 0.60), "large": ModelPrices(2.50, 10.00)},
    )

    print("== 1. An LCEL chain: prompt | llm | parser")
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a concise assistant."), ("human", "{question}")]
    )
    chain = prompt | llm | StrOutputParser()
    for question in (EASY, HARD):
        print(f"  {question[:40]!r:44} -> {chain.invoke({'question': question})}")

    print("== 2. Per-chain quality: one model, a different level per chain or per call")
    strict_chain = chain.with_config(configurable={"max_quality_drop": 0.0})
    print(f"  strict chain: {strict_chain.invoke({'question': EASY})}")
    levels = {
        "model's own (max_quality_drop=0.01)": {},
        "strict chain (max_quality_drop=0.0)": {"max_quality_drop": 0.0},
        "busy hour (large_share=0.05)": {"large_share": 0.05},
    }
    for name, level in levels.items():
        routing = llm.with_config(configurable=level).invoke(HARD).response_metadata["routing"]
        print(f"  {name:38} threshold {routing['threshold']:.4f} -> {routing['model']}")
    per_call = llm.invoke(HARD, threshold=0.0).response_metadata["routing"]
    print(f"  {'per call (threshold=0.0)':38} threshold 0.0000 -> {per_call['model']}")

    print("== 3. Streaming: tokens pass through; the last chunk carries the routing")
    final: AIMessageChunk | None = None
    print("  ", end="")
    for chunk in llm.stream(EASY):
        print(chunk.text, end="", flush=True)
        final = chunk if final is None else final + chunk
    assert final is not None
    print(f"\n  routed to: {final.response_metadata['routing']['model']}")

    print("== 4. A tool-calling agent loop")
    agent = llm.bind_tools([multiply])
    messages: list[BaseMessage] = [HumanMessage("What is 6 times 7? Use the multiply tool.")]
    while (reply := agent.invoke(messages)).tool_calls:
        messages.append(reply)
        for call in reply.tool_calls:
            messages.append(multiply.invoke(call))
            print(f"  tool call: {call['name']}({call['args']}) -> {messages[-1].text}")
    print(f"  answer: {reply.text}")

    print("== 5. Why each answer went where it went, and what routing saved")
    answer = llm.invoke(HARD)
    print("  " + json.dumps(answer.response_metadata["routing"], indent=2).replace("\n", "\n  "))
    stats = llm.stats
    print(
        f"  {stats.calls} calls: {stats.small} small, {stats.large} large, "
        f"{stats.fallbacks} fallbacks; estimated cost {stats.cost:.6f} "
        f"(always-large {stats.cost_always_large:.6f}, saved {stats.cost_saved:.6f})"
    )
    return stats


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", default="default", help="'default' or a router folder")
    main(parser.parse_args().router)
