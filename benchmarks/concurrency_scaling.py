"""Routing at production concurrency: N concurrent calls through both adapters (a benchmark).

For N = 1, 10, 100, 1,000 and 2,500 concurrent calls, each with its own distinct text, over
instant stand-in models (``tests/*/stand_ins.py``) and the bundled default router:

- ``ChatHybrid.ainvoke`` and ``HybridLLM.achat``: wall time, calls/s, per-call p50 / p99;
- the same N calls made to the inner model directly (what routing is compared with);
- event-loop stall: the most a 1 ms ``asyncio.sleep`` ticker ran late during the burst;
- a DNS-like probe: ``loop.run_in_executor(None, ...)`` (what ``getaddrinfo`` uses for a new
  HTTP connection) started every 20 ms during the burst, its p50 and max wait;
- the routing records' mean ``router_ms`` / ``router_queue_ms`` / ``router_compute_ms``;
- resident memory of a fresh process holding 1 and 10 adapter instances of each kind over
  ``router="default"``, each after one call (one router per process: 10 within 10% of 1).

Run from the repository root (2 shared cores: ``--quick`` stops at N = 100)::

    python benchmarks/concurrency_scaling.py          # results/concurrency_scaling.{json,png}
    python benchmarks/concurrency_scaling.py --quick --label after

``--label`` names the output files (``concurrency_scaling_<label>.json``), for before/after
runs of two checkouts (``PYTHONPATH=<checkout> python <checkout>/benchmarks/...``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the stand-in models live in tests/

RESULTS = Path(__file__).resolve().parent / "results"
FULL_SIZES = (1, 10, 100, 1000, 2500)
QUICK_SIZES = (1, 10, 100)
PROBE_EVERY_S = 0.02

RSS_CODE = """
import sys
sys.path.insert(0, {root!r})
from langchain_hybrid import ChatHybrid
from llamaindex_hybrid import HybridLLM
from llama_index.core.llms import ChatMessage
from tests.langchain_hybrid.stand_ins import StandInChatModel
from tests.llamaindex_hybrid.stand_ins import StandInLLM
for i in range({k}):
    chat = ChatHybrid(small=StandInChatModel(model="s"), large=StandInChatModel(model="l"),
                      router="default")
    chat.invoke(f"What is {{i}} plus one?")
    llm = HybridLLM(StandInLLM(name="s"), StandInLLM(name="l"), router="default")
    llm.chat([ChatMessage(role="user", content=f"What is {{i}} plus two?")])
    globals()[f"keep_{{i}}"] = (chat, llm)
rss = [line for line in open("/proc/self/status") if line.startswith("VmRSS")][0]
print(int(rss.split()[1]) / 1024)
"""


def distinct_texts(n: int, offset: int) -> list[str]:
    """``n`` distinct short questions (none repeated across calls of a run)."""
    return [
        f"Question {offset + i}: what is {offset + i} times {i % 7 + 2}, and is it prime?"
        for i in range(n)
    ]


class Watch:
    """A 1 ms ticker (loop stall) and a default-executor probe, run during a burst."""

    def __init__(self) -> None:
        self.stalls: list[float] = []
        self.probes: list[float] = []
        self._running = True

    async def tick(self) -> None:
        while self._running:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            self.stalls.append((time.perf_counter() - start - 0.001) * 1000)

    async def probe(self) -> None:
        loop = asyncio.get_running_loop()
        while self._running:
            start = time.perf_counter()
            await loop.run_in_executor(None, time.perf_counter)
            self.probes.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(PROBE_EVERY_S)

    def stop(self) -> None:
        self._running = False


async def burst(
    calls: list[Callable[[], Awaitable[Any]]],
) -> tuple[float, list[float], list[Any], Watch]:
    """Run the calls concurrently; wall seconds, per-call ms, results, and the watch."""
    watch = Watch()
    watchers = [asyncio.ensure_future(watch.tick()), asyncio.ensure_future(watch.probe())]
    await asyncio.sleep(0.005)

    async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
        start = time.perf_counter()
        out = await call()
        return (time.perf_counter() - start) * 1000, out

    start = time.perf_counter()
    done = await asyncio.gather(*(timed(call) for call in calls))
    wall = time.perf_counter() - start
    watch.stop()
    await asyncio.gather(*watchers)
    return wall, [ms for ms, _ in done], [out for _, out in done], watch


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _row(wall: float, latencies: list[float], watch: Watch, records: list[dict[str, Any]]) -> dict:
    row: dict[str, Any] = {
        "wall_s": round(wall, 4),
        "calls_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
        "loop_stall_max_ms": round(max(watch.stalls, default=0.0), 2),
        "executor_probe_p50_ms": round(statistics.median(watch.probes), 2)
        if watch.probes
        else None,
        "executor_probe_max_ms": round(max(watch.probes), 2) if watch.probes else None,
    }
    for key in ("router_ms", "router_queue_ms", "router_compute_ms"):
        values = [r[key] for r in records if isinstance(r.get(key), (int, float))]
        if values:
            row[f"{key}_mean"] = round(statistics.fmean(values), 2)
    return row


def langchain_case() -> tuple[Any, Any, Callable[[Any, str], Awaitable[Any]], Callable]:
    from langchain_hybrid import ChatHybrid
    from tests.langchain_hybrid.stand_ins import StandInChatModel

    small, large = StandInChatModel(model="small"), StandInChatModel(model="large")
    hybrid = ChatHybrid(small=small, large=large, router="default")

    async def direct(model: Any, text: str) -> Any:
        return await model.ainvoke(text)

    return hybrid, small, direct, lambda reply: reply.response_metadata.get("routing", {})


def llamaindex_case() -> tuple[Any, Any, Callable[[Any, str], Awaitable[Any]], Callable]:
    from llama_index.core.llms import ChatMessage

    from llamaindex_hybrid import HybridLLM
    from tests.llamaindex_hybrid.stand_ins import StandInLLM

    small, large = StandInLLM(name="small"), StandInLLM(name="large")
    hybrid = HybridLLM(small, large, router="default")

    async def direct(model: Any, text: str) -> Any:
        return await model.achat([ChatMessage(role="user", content=text)])

    return hybrid, small, direct, lambda reply: reply.additional_kwargs.get("routing", {})


async def measure(sizes: tuple[int, ...]) -> dict[str, Any]:
    """Every adapter at every size, routed and direct, interleaved."""
    cases = {
        "ChatHybrid.ainvoke": langchain_case(),
        "HybridLLM.achat": llamaindex_case(),
    }
    results: dict[str, Any] = {name: {} for name in cases}
    offset = 0
    for hybrid, small, direct, _ in cases.values():  # warm: the router is loaded
        await direct(hybrid, "warm-up question one")
        await direct(small, "warm-up question two")
    for n in sizes:
        for name, (hybrid, small, direct, record_of) in cases.items():
            texts = distinct_texts(n, offset)
            offset += n
            wall, latencies, _, watch = await burst(
                [functools.partial(direct, small, t) for t in texts]
            )
            inner = _row(wall, latencies, watch, [])
            texts = distinct_texts(n, offset)
            offset += n
            wall, latencies, replies, watch = await burst(
                [functools.partial(direct, hybrid, t) for t in texts]
            )
            routed = _row(wall, latencies, watch, [record_of(reply) for reply in replies])
            routed["wall_vs_inner"] = round(routed["wall_s"] / max(inner["wall_s"], 1e-9), 2)
            results[name][str(n)] = {"routed": routed, "inner_models_directly": inner}
            print(
                f"{name:20s} N={n:5d}  {routed['calls_per_s']:8.1f} calls/s  "
                f"p50 {routed['p50_ms']:8.1f} ms  p99 {routed['p99_ms']:8.1f} ms  "
                f"x{routed['wall_vs_inner']:.2f} inner  "
                f"stall {routed['loop_stall_max_ms']:6.1f} ms  "
                f"probe max {routed['executor_probe_max_ms']} ms",
                flush=True,
            )
    return results


def plot(results: dict[str, Any], path: Path) -> None:
    """calls/s and p99 by N, routed and direct, one line per adapter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate, tail) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, by_n in results.items():
        sizes = [int(n) for n in by_n]
        for kind, style in (("routed", "-o"), ("inner_models_directly", ":x")):
            label = f"{name} ({'routed' if kind == 'routed' else 'inner model directly'})"
            rate.plot(sizes, [by_n[str(n)][kind]["calls_per_s"] for n in sizes], style, label=label)
            tail.plot(sizes, [by_n[str(n)][kind]["p99_ms"] for n in sizes], style, label=label)
    for axis, title in ((rate, "calls/s"), (tail, "p99 latency (ms)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("concurrent calls N")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    rate.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def resident_memory_mb(instances: int) -> float:
    """VmRSS of a fresh process holding ``instances`` adapters of each kind, after a call each."""
    import subprocess

    code = RSS_CODE.format(root=str(ROOT), k=instances)
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return round(float(done.stdout.strip().splitlines()[-1]), 1)


def main() -> None:
    """Run the sizes asked for and write the JSON report and the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1, 10, 100 only.")
    parser.add_argument("--sizes", help="Comma-separated N values (overrides --quick).")
    parser.add_argument("--label", default="", help="Suffix of the output files.")
    parser.add_argument("--no-plot", action="store_true", help="Skip the PNG.")
    args = parser.parse_args()
    sizes = (
        tuple(int(n) for n in args.sizes.split(","))
        if args.sizes
        else (QUICK_SIZES if args.quick else FULL_SIZES)
    )
    load = os.getloadavg()[0]
    memory = {f"{k}_instances_mb": resident_memory_mb(k) for k in (1, 10)}
    print(f"resident memory: {memory}", flush=True)
    results = asyncio.run(measure(sizes))
    stem = "concurrency_scaling" + (f"_{args.label}" if args.label else "")
    report = {
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": round(load, 2)},
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "sizes": list(sizes),
        "resident_memory": memory,
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    if not args.no_plot:
        plot(results, RESULTS / f"{stem}.png")
    print(f"wrote {RESULTS / stem}.json")


if __name__ == "__main__":
    main()
