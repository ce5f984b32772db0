"""What ``ChatHybrid.invoke`` costs on top of calling the chosen LangChain chat model directly.

Both inner models are instant stand-ins (langchain-core's ``FakeListChatModel`` answering
"ok"), so every measured microsecond is routing or adapter work. For each of ``--repeats``
distinct short queries (after ``--warmup`` calls) it times:

* ``direct``: ``small.invoke(messages)``, the call ChatHybrid delegates to;
* ``hybrid``: ``ChatHybrid.invoke(messages)`` and ``await ChatHybrid.ainvoke(messages)``;
* ``router``: the routing time of that same call, from its ``response_metadata["routing"]
  ["router_ms"]`` (the encoder runs each time: no embedding cache);
* ``adapter``: hybrid minus direct minus router, per call: ChatHybrid's own chat-model run
  (callbacks, LangChain's bookkeeping), message conversion, knob resolution, the child-run
  callbacks, the routing record and stats (and for ``ainvoke`` the hop to a worker thread
  that keeps the event loop free while the router scores).

The goal is ``adapter`` under 500 us. Prints a markdown table and writes
``benchmarks/results/chat_hybrid_overhead.json``. Other processes on the machine skew the
numbers: the load average at start is recorded.

Run: ``python benchmarks/chat_hybrid_overhead.py [--router default] [--repeats 300]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import BaseMessage, HumanMessage

from langchain_hybrid import ChatHybrid
from shared_router.router import Router

RESULTS = Path(__file__).resolve().parent / "results" / "chat_hybrid_overhead.json"


def instant_model() -> FakeListChatModel:
    """An inner model that answers at once, so only ChatHybrid's own work is timed."""
    return FakeListChatModel(responses=["ok"])


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return (time.perf_counter() - start) * 1e6, out


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered), 1),
        "p90_us": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "p99_us": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
        "mean_us": round(statistics.fmean(ordered), 1),
    }


def router_us(message: BaseMessage) -> float:
    return float(message.response_metadata["routing"]["router_ms"]) * 1000.0


def measure(router_spec: str, repeats: int, warmup: int) -> dict[str, Any]:
    router = Router.load(router_spec)
    knobs = router.default_knobs.set_knobs()
    small = instant_model()
    llm = ChatHybrid(small=small, large=instant_model(), router=router, **knobs)
    texts = [f"What is {i} plus {2 * i + 1}?" for i in range(warmup + repeats)]
    batches: list[list[BaseMessage]] = [[HumanMessage(text)] for text in texts]
    for messages in batches[:warmup]:
        small.invoke(messages)
        llm.invoke(messages)

    samples: dict[str, list[float]] = {
        "direct": [],
        "router": [],
        "hybrid_invoke": [],
        "adapter_invoke": [],
    }
    for messages in batches[warmup:]:
        direct, _ = timed(lambda m=messages: small.invoke(m))
        hybrid, answer = timed(lambda m=messages: llm.invoke(m))
        routing = router_us(answer)
        samples["direct"].append(direct)
        samples["router"].append(routing)
        samples["hybrid_invoke"].append(hybrid)
        samples["adapter_invoke"].append(hybrid - direct - routing)

    async def async_calls() -> list[tuple[float, float]]:
        out = []
        for messages in batches[warmup:]:
            start = time.perf_counter()
            answer = await llm.ainvoke(messages)
            out.append(((time.perf_counter() - start) * 1e6, router_us(answer)))
        return out

    timings = asyncio.run(async_calls())
    samples["hybrid_ainvoke"] = [total for total, _ in timings]
    samples["adapter_ainvoke"] = [
        total - direct - routing
        for (total, routing), direct in zip(timings, samples["direct"], strict=True)
    ]
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
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    result = measure(args.router, args.repeats, args.warmup)
    report = {
        "benchmark": "chat_hybrid_overhead",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_start": round(load, 2),
        "repeats": args.repeats,
        "warmup": args.warmup,
        **result,
    }
    print(f"router {result['router']!r}, {args.repeats} calls, load average {load:.2f}\n")
    print("| what | p50 (us) | p90 (us) | p99 (us) | mean (us) |")
    print("|---|---:|---:|---:|---:|")
    for name, row in result["timings"].items():
        print(
            f"| {name} | {row['p50_us']} | {row['p90_us']} | {row['p99_us']} | {row['mean_us']} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
