"""What shadow evaluation adds to ``ChatHybrid.invoke``: shadowing off versus on at rate 1.0.

Two ChatHybrid models over the same instant stand-in chat models (langchain-core's
``FakeListChatModel``) and the same router, both asked with ``max_quality_drop``:

* ``off``: no ``live`` (the router's own calibration);
* ``on``: ``live=LiveSettings(shadow_rate=1.0, ...)`` on a temporary SQLite store with an
  instant judge, so *every* call is offered and, while the shadow queue has room, shadowed:
  the other model's call, the judgement and the store write run on the live loop's
  background threads, and the threshold comes from the live calibration;
* ``hook``: the same with ``shadow_rate=0.0``: the live loop's work on the caller's path
  alone (router version, live threshold, the record's calibration fields, the draw), with
  no shadow work in the background.

The three are interleaved in blocks of ``--block`` calls (each model's block first in turn,
the shadow work drained, untimed, after each block, so that one model's shadow work never
lands in another model's block), every query text is distinct, and the p50/p99 of each are
reported; the target is ``on`` within 0.5 ms of ``off`` at p50 and p99. (Interleaving single
calls would charge the shadow work of an ``on`` call to whichever call comes next.)

The shadow work of a call is about as much Python as the call itself (the other stand-in's
``invoke``, the judge, the row and its write), and it runs on threads of the same process:
it competes with the caller for the interpreter lock and the CPUs. Each run is made twice:

* ``gap_ms=0``: calls back to back, the caller's thread never idle (the worst case: the
  shadow work of one call overlaps the next call);
* ``gap_ms=2`` (``--gaps-ms``): a pause between queries, untimed, as a real model call's
  network wait gives the shadow threads (their work then runs between the measured calls).

On a loaded machine the p99 moves with the load: the load average at start is recorded,
and the numbers are for comparing the two sides of one run, not runs on different machines.

Writes ``benchmarks/results/shadow_overhead.json``.

Run: ``python benchmarks/shadow_overhead.py [--router instant|default] [--repeats 2000]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from timing import machine_info, print_timings, summary, timed, write_report

from langchain_hybrid import ChatHybrid
from shared_router.live.judges import CallableJudge
from shared_router.live.serving_loop import live_loop
from shared_router.live.settings import LiveSettings
from shared_router.routing.router import Router
from shared_router.types import QualityKnobs, RouteDecision

RESULTS = Path(__file__).resolve().parent / "results" / "shadow_overhead.json"


class InstantRouter:
    """Stand-in router that answers at once with a fixed small decision (no encoder)."""

    name = "instant-stand-in"
    default_knobs = QualityKnobs(threshold=0.5)
    calibration_ = None

    def route(self, text: str, **knobs: float) -> RouteDecision:
        return RouteDecision("small", 0.9, 0.5, "threshold", 0.5, "instant stand-in")


def instant_model() -> FakeListChatModel:
    """An inner model that answers at once, so only ChatHybrid's own work is timed."""
    return FakeListChatModel(responses=["ok"])


def measure(
    router: Router | InstantRouter, repeats: int, warmup: int, gap_s: float, block_size: int
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="shadow-overhead-"))
    judge = CallableJudge(lambda case: (1.0, 1.0))
    settings = LiveSettings(
        store=folder / "live.sqlite", judge=judge, shadow_rate=1.0, seed=0, retrain=False
    )
    quiet = LiveSettings(
        store=folder / "hook.sqlite", judge=judge, shadow_rate=0.0, seed=0, retrain=False
    )
    fields = {"router": router, "max_quality_drop": 0.05}
    off = ChatHybrid(small=instant_model(), large=instant_model(), **fields)
    on = ChatHybrid(small=instant_model(), large=instant_model(), live=settings, **fields)
    hook = ChatHybrid(small=instant_model(), large=instant_model(), live=quiet, **fields)
    texts = [f"What is {i} plus {2 * i + 1}?" for i in range(warmup + 3 * repeats)]
    batches: list[list[BaseMessage]] = [[HumanMessage(text)] for text in texts]
    for messages in batches[:warmup]:
        off.invoke(messages)
        on.invoke(messages)
        hook.invoke(messages)
    models = [("off", off), ("on", on), ("hook", hook)]
    samples: dict[str, list[float]] = {name: [] for name, _ in models}
    queries = iter(batches[warmup:])
    for block in range(repeats // block_size):
        order = models[block % 3 :] + models[: block % 3]  # each model first in turn
        for name, llm in order:
            for _ in range(block_size):
                time.sleep(gap_s)
                took, _ = timed(partial(llm.invoke, next(queries)))
                samples[name].append(took)
            live_loop(settings).drain(timeout=120)  # the next block starts with no shadow work
    live_loop(settings).drain(timeout=120)
    live = on.stats.live
    timings = {name: summary(values) for name, values in samples.items()}
    return {
        "timings_us": timings,
        "difference_us": {
            "p50_delta": round(timings["on"]["p50_us"] - timings["off"]["p50_us"], 1),
            "p99_delta": round(timings["on"]["p99_us"] - timings["off"]["p99_us"], 1),
            "hook_p50_delta": round(timings["hook"]["p50_us"] - timings["off"]["p50_us"], 1),
            "hook_p99_delta": round(timings["hook"]["p99_us"] - timings["off"]["p99_us"], 1),
        },
        "within_target_0_5_ms": bool(
            timings["on"]["p50_us"] - timings["off"]["p50_us"] <= 500
            and timings["on"]["p99_us"] - timings["off"]["p99_us"] <= 500
        ),
        "shadow": {
            "calls": live.calls,
            "shadowed": live.shadowed,
            "dropped": live.dropped,
            "labelled": live.labelled,
            "rows_written": live.rows_written,
            "calibration": live.calibration,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", choices=("instant", "default"), default="instant")
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--gaps-ms", type=float, nargs="+", default=[0.0, 2.0])
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    router: Router | InstantRouter = (
        InstantRouter() if args.router == "instant" else Router.load("default")
    )
    runs = []
    for gap_ms in args.gaps_ms:
        result = measure(router, args.repeats, args.warmup, gap_ms / 1000.0, args.block)
        print(
            f"\nChatHybrid.invoke, router {args.router}, {args.repeats} calls each in "
            f"interleaved blocks of {args.block}, {gap_ms:g} ms between queries"
        )
        print_timings(result["timings_us"])
        print(result["difference_us"], result["shadow"])
        runs.append({"gap_ms": gap_ms, **result})
    write_report(
        args.out,
        {
            "router": args.router,
            "repeats": args.repeats,
            "interleaved_blocks_of": args.block,
            "shadow_rate": 1.0,
            "runs": runs,
            **machine_info(load),
        },
    )


if __name__ == "__main__":
    main()
