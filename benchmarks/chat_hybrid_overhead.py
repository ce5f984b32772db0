"""What ``ChatHybrid.invoke`` costs on top of calling the chosen LangChain chat model directly.

Both inner models are instant stand-ins (langchain-core's ``FakeListChatModel`` answering
"ok"), so every measured microsecond is routing or adapter work. For each of ``--repeats``
distinct short queries (after ``--warmup`` calls) it times:

* ``direct``: ``small.invoke(messages)``, the call ChatHybrid delegates to, on warm caches
  (and ``direct_ainvoke``: ``await small.ainvoke(messages)``, its async form: the stand-in
  has no async API, so both it and ChatHybrid run it on a worker thread);
* ``direct_after_routing``: the same call made right after ``router.route(text)``, as a
  hand-written "route, then call" would make it (the encoder's work leaves the CPU caches
  cold, which alone costs the next LangChain call a few hundred microseconds);
* ``hybrid``: ``ChatHybrid.invoke(messages)`` and ``await ChatHybrid.ainvoke(messages)``;
* ``router``: the routing time of that same call, from its ``response_metadata["routing"]
  ["router_ms"]`` (the encoder runs each time: no embedding cache);
* ``adapter``: hybrid minus direct_after_routing (for ``ainvoke``: minus direct_ainvoke)
  minus router, per call: ChatHybrid's own run (callbacks, the decision as run metadata),
  message conversion, knob resolution, the child-run config and context, the routing record
  and stats (and for ``ainvoke`` the hand-over of the text to the router's own thread, which
  keeps the event loop free while the router scores).

The goal is ``adapter`` under 500 us. The same timings are taken a second time with an
instant stand-in router (a fixed decision, no encoder): there nothing cools the caches and
``adapter`` is ChatHybrid's own cost alone.

``memory`` is the resident memory a fresh process adds by building and calling one
``ChatHybrid(router=...)``, then nine more: every instance over one router source shares the
one router the process loaded (:mod:`shared_router.routing.registry`), so ten cost about what
one does. Prints markdown tables and writes ``benchmarks/results/chat_hybrid_overhead.json``.
Other processes on the machine skew the numbers: the load average at start is recorded.

Run: ``python benchmarks/chat_hybrid_overhead.py [--router default] [--repeats 300]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from timing import machine_info, print_timings, summary, timed, write_report

from langchain_hybrid import ChatHybrid
from shared_router.routing.router import Router
from shared_router.types import QualityKnobs, RouteDecision

RESULTS = Path(__file__).resolve().parent / "results" / "chat_hybrid_overhead.json"


class InstantRouter:
    """Stand-in router that answers at once with a fixed small decision (no encoder)."""

    name = "instant-stand-in"
    default_knobs = QualityKnobs(threshold=0.5)

    def route(self, text: str, **knobs: float) -> RouteDecision:
        return RouteDecision("small", 0.9, 0.5, "threshold", 0.5, "instant stand-in")


def instant_model() -> FakeListChatModel:
    """An inner model that answers at once, so only ChatHybrid's own work is timed."""
    return FakeListChatModel(responses=["ok"])


def router_us(message: BaseMessage) -> float:
    return float(message.response_metadata["routing"]["router_ms"]) * 1000.0


def measure(router: Router | InstantRouter, repeats: int, warmup: int) -> dict[str, Any]:
    knobs = router.default_knobs.set_knobs()
    small = instant_model()
    llm = ChatHybrid.model_validate(
        {"small": small, "large": instant_model(), "router": router, **knobs}
    )
    texts = [f"What is {i} plus {2 * i + 1}?" for i in range(warmup + repeats)]
    batches: list[list[BaseMessage]] = [[HumanMessage(text)] for text in texts]
    for messages in batches[:warmup]:
        small.invoke(messages)
        llm.invoke(messages)

    samples: dict[str, list[float]] = {
        "direct": [],
        "direct_after_routing": [],
        "router": [],
        "hybrid_invoke": [],
        "adapter_invoke": [],
    }
    for messages, text in zip(batches[warmup:], texts[warmup:], strict=True):
        direct, _ = timed(partial(small.invoke, messages))
        router.route(text, **knobs)
        direct_after_routing, _ = timed(partial(small.invoke, messages))
        hybrid, answer = timed(partial(llm.invoke, messages))
        routing = router_us(answer)
        samples["direct"].append(direct)
        samples["direct_after_routing"].append(direct_after_routing)
        samples["router"].append(routing)
        samples["hybrid_invoke"].append(hybrid)
        samples["adapter_invoke"].append(hybrid - direct_after_routing - routing)

    async def async_calls() -> list[tuple[float, float]]:
        out = []
        for messages in batches[warmup:]:
            start = time.perf_counter()
            answer = await llm.ainvoke(messages)
            out.append(((time.perf_counter() - start) * 1e6, router_us(answer)))
        return out

    async def direct_async_calls() -> list[float]:
        out = []
        for messages in batches[warmup:]:
            start = time.perf_counter()
            await small.ainvoke(messages)
            out.append((time.perf_counter() - start) * 1e6)
        return out

    timings = asyncio.run(async_calls())
    samples["direct_ainvoke"] = asyncio.run(direct_async_calls())
    samples["hybrid_ainvoke"] = [total for total, _ in timings]
    samples["adapter_ainvoke"] = [
        total - direct - routing
        for (total, routing), direct in zip(timings, samples["direct_ainvoke"], strict=True)
    ]
    return {
        "router": router.name,
        "knobs": knobs,
        "calls": llm.stats.calls,
        "small_share": round(llm.stats.small_share, 3),
        "timings": {name: summary(values) for name, values in samples.items()},
    }


def rss_mib() -> float:
    """This process's resident memory now, in MiB (Linux ``/proc``)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_of_instances(router: str, count: int) -> dict[str, float]:
    """RSS growth of one, then ``count``, ChatHybrid instances over ``router`` (each called)."""
    message = [HumanMessage("What is 2 plus 3?")]
    start = rss_mib()
    models = [ChatHybrid(small=instant_model(), large=instant_model(), router=router)]
    models[0].invoke(message)
    one = rss_mib()
    for _ in range(count - 1):
        models.append(ChatHybrid(small=instant_model(), large=instant_model(), router=router))
        models[-1].invoke(message)
    many = rss_mib()
    return {
        "rss_start_mib": round(start, 1),
        "rss_added_by_1_mib": round(one - start, 1),
        f"rss_added_by_{count}_mib": round(many - start, 1),
        f"rss_added_by_instances_2_to_{count}_mib": round(many - one, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", default="default", help="'default' or a router folder")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--instances", type=int, default=10, help="for the memory row")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_only:  # in a fresh process, so that nothing else is loaded yet
        print(json.dumps(memory_of_instances(args.router, args.instances)))
        return
    load = os.getloadavg()[0]
    runs = {
        "router": measure(Router.load(args.router), args.repeats, args.warmup),
        "instant_router": measure(InstantRouter(), args.repeats, args.warmup),
    }
    fresh = [sys.executable, __file__, "--memory-only", "--router", args.router]
    fresh += ["--instances", str(args.instances)]
    memory = json.loads(subprocess.run(fresh, check=True, capture_output=True, text=True).stdout)
    report = {
        "benchmark": "chat_hybrid_overhead",
        **machine_info(load),
        "repeats": args.repeats,
        "warmup": args.warmup,
        **runs,
        "memory": memory,
    }
    print(f"{args.repeats} calls per row, load average {load:.2f}")
    for result in runs.values():
        print(f"\nrouter {result['router']!r}\n")
        print_timings(result["timings"])
    print(f"\nmemory of ChatHybrid(router={args.router!r}) instances (fresh process)\n")
    for name, value in memory.items():
        print(f"- {name}: {value}")
    write_report(RESULTS, report)


if __name__ == "__main__":
    main()
