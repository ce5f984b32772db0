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

Then, under load (``--concurrency``, default 1, 10, 100, 1000): N distinct ``achat`` calls
started at once with ``asyncio.gather``, on HybridLLM and on the small model directly. For
each N it reports the time until all have answered, the p50 / p99 latency of one call, and
the longest event-loop stall, seen by a ticker that sleeps 1 ms at a time while the calls
run (its longest gap beyond the 1 ms it asked for).

Prints a markdown table and writes ``benchmarks/results/hybrid_llm_overhead.json``. Other
processes on the machine skew the numbers: the load average at start is recorded (and
``OMP_NUM_THREADS``: on a busy machine one BLAS thread keeps the router's time steadier).

Run: ``python benchmarks/hybrid_llm_overhead.py [--router default] [--repeats 200]
[--concurrency 1,10,100,1000]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
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


async def concurrent_calls(
    call: Callable[[list[ChatMessage]], Awaitable[Any]], batches: Sequence[list[ChatMessage]]
) -> dict[str, float]:
    """Start one ``call`` per batch at once; time them and the event loop's longest stall."""
    gaps: list[float] = []
    running = True

    async def ticker() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last - 0.001)
            last = now

    async def one(messages: list[ChatMessage]) -> float:
        start = time.perf_counter()
        await call(messages)
        return (time.perf_counter() - start) * 1000

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.005)  # the ticker is running before the calls start
    start = time.perf_counter()
    latencies = sorted(await asyncio.gather(*(one(messages) for messages in batches)))
    total = (time.perf_counter() - start) * 1000
    running = False
    await tick
    return {
        "calls": len(batches),
        "total_ms": round(total, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
        "max_loop_stall_ms": round(max(gaps) * 1000, 2),
    }


def measure_concurrency(router_spec: str, sizes: Sequence[int]) -> list[dict[str, Any]]:
    """N concurrent ``achat`` calls through HybridLLM and on the small model, per N."""
    router = Router.load(router_spec)
    knobs = router.default_knobs.set_knobs()
    small, large = instant_llm(), instant_llm()
    llm = HybridLLM(small, large, router=router, **knobs)
    rows = []
    for size in sizes:
        texts = [f"How many legs do {i} spiders and {size} ants have?" for i in range(size)]
        batches = [[ChatMessage(role=MessageRole.USER, content=text)] for text in texts]
        asyncio.run(concurrent_calls(llm.achat, batches[: min(size, 10)]))  # warm up
        hybrid = asyncio.run(concurrent_calls(llm.achat, batches))
        direct = asyncio.run(concurrent_calls(small.achat, batches))
        rows.append({"n": size, "hybrid": hybrid, "direct": direct})
    return rows


def print_concurrency(rows: list[dict[str, Any]]) -> None:
    """Print the concurrent rows as a markdown table."""
    print("\n| N concurrent achat | what | total (ms) | p50 (ms) | p99 (ms) | max stall (ms) |")
    print("|---:|---|---:|---:|---:|---:|")
    for row in rows:
        for what in ("hybrid", "direct"):
            r = row[what]
            print(
                f"| {row['n']} | {what} | {r['total_ms']} | {r['p50_ms']} | {r['p99_ms']} "
                f"| {r['max_loop_stall_ms']} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", default="default", help="'default' or a router folder")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--concurrency",
        default="1,10,100,1000",
        help="comma-separated numbers of concurrent achat calls ('' to skip)",
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.concurrency.split(",") if n.strip()]
    load = os.getloadavg()[0]
    result = measure(args.router, args.repeats, args.warmup)
    concurrent = measure_concurrency(args.router, sizes)
    report = {
        "benchmark": "hybrid_llm_overhead",
        **machine_info(load),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "repeats": args.repeats,
        "warmup": args.warmup,
        **result,
        "concurrent_achat": concurrent,
    }
    print(f"router {result['router']!r}, {args.repeats} calls, load average {load:.2f}\n")
    print_timings(result["timings"])
    print_concurrency(concurrent)
    write_report(RESULTS, report)


if __name__ == "__main__":
    main()
