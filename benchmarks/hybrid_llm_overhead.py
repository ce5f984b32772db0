"""What ``HybridLLM.chat`` costs on top of calling the chosen LlamaIndex LLM directly.

Both inner models are instant stand-ins (LlamaIndex's ``MockFunctionCallingLLM`` answering
"ok"), so every measured microsecond is routing or adapter work. For each of ``--repeats``
distinct short queries (after ``--warmup`` calls) it times:

* ``direct``: ``small.chat(messages)``, the call HybridLLM delegates to;
* ``router``: ``router.route(text)`` alone (the encoder runs each time: no embedding cache);
* ``hybrid``: ``HybridLLM.chat(messages)`` and ``await HybridLLM.achat(messages)``;
* ``adapter``: per call, the hybrid call's time less the router's own time in that call (the
  record's ``router_ms``) and less the adjacent direct call: callbacks, instrumentation
  events, knob resolution, the routing record, stats (and for ``achat`` the hop to a worker
  thread that keeps the event loop free while the router scores).

Prints a markdown table and writes ``benchmarks/results/hybrid_llm_overhead.json``. Other
processes on the machine skew the numbers: the load average at start is recorded (and
``OMP_NUM_THREADS``: on a busy machine one BLAS thread keeps the router's time steadier).

Run: ``python benchmarks/hybrid_llm_overhead.py [--router default] [--repeats 200]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.llms.mock import MockFunctionCallingLLM
from timing import machine_info, print_timings, summary, timed, write_report

from llamaindex_hybrid import HybridLLM
from shared_router.routing.router import Router

RESULTS = Path(__file__).resolve().parent / "results" / "hybrid_llm_overhead.json"
COLUMNS = ("direct", "router", "hybrid_chat", "adapter_chat", "hybrid_achat", "adapter_achat")


def instant_llm() -> MockFunctionCallingLLM:
    """An inner model that answers at once, so only HybridLLM's own work is timed."""

    def answer(messages: Any, **kwargs: Any) -> ChatMessage:
        return ChatMessage(role=MessageRole.ASSISTANT, content="ok")

    return MockFunctionCallingLLM(response_generator=answer, is_chat_model=True)


def adapter_us(total_us: float, response: Any, direct_us: float) -> float:
    """A HybridLLM call's own work: its time less the router's (from the record) and the model's."""
    return total_us - response.additional_kwargs["routing"]["router_ms"] * 1000 - direct_us


def measure(router_spec: str, repeats: int, warmup: int) -> dict[str, Any]:
    router = Router.load(router_spec)
    knobs = router.default_knobs.set_knobs()
    small, large = instant_llm(), instant_llm()
    llm = HybridLLM(small, large, router=router, **knobs)
    texts = [f"What is {i} plus {2 * i + 1}?" for i in range(warmup + repeats)]
    batches = [[ChatMessage(role=MessageRole.USER, content=text)] for text in texts]
    for messages, text in zip(batches[:warmup], texts[:warmup], strict=True):
        small.chat(messages)
        router.route(text, **knobs)
        llm.chat(messages)

    samples: dict[str, list[float]] = {name: [] for name in COLUMNS}
    for messages, text in zip(batches[warmup:], texts[warmup:], strict=True):
        samples["direct"].append(timed(lambda m=messages: small.chat(m))[0])
        samples["router"].append(timed(lambda t=text: router.route(t, **knobs))[0])
        hybrid, response = timed(lambda m=messages: llm.chat(m))
        samples["hybrid_chat"].append(hybrid)
        samples["adapter_chat"].append(adapter_us(hybrid, response, samples["direct"][-1]))

    async def async_calls() -> None:
        for messages, direct in zip(batches[warmup:], samples["direct"], strict=True):
            start = time.perf_counter()
            response = await llm.achat(messages)
            elapsed = (time.perf_counter() - start) * 1e6
            samples["hybrid_achat"].append(elapsed)
            samples["adapter_achat"].append(adapter_us(elapsed, response, direct))

    asyncio.run(async_calls())
    return {
        "router": router.name,
        "knobs": knobs,
        "calls": llm.stats.calls,
        "small_share": round(llm.stats.small_share, 3),
        "timings": {name: summary(values) for name, values in samples.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", default="default", help="'default' or a router folder")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    result = measure(args.router, args.repeats, args.warmup)
    report = {
        "benchmark": "hybrid_llm_overhead",
        **machine_info(load),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "repeats": args.repeats,
        "warmup": args.warmup,
        **result,
    }
    print(f"router {result['router']!r}, {args.repeats} calls, load average {load:.2f}\n")
    print_timings(result["timings"])
    write_report(RESULTS, report)


if __name__ == "__main__":
    main()
