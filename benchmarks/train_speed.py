"""How long does training a pair router on ~10k queries take on CPU, from nothing cached?

Runs ``hybrid-llm train`` in a fresh process on the mmlu_pro Llama-3.1 8B -> 70B pair with its
``test`` rows moved into ``train`` (10,218 queries encoded: 9,221 train + 997 val; MMLU-Pro
questions with their options, a median of ~180 word pieces), an empty embedding cache, the
default MLP(256) head (torch) and the exact-L2 logistic head (``--head logistic``), at fp32
and int8. Wall time covers
everything a user waits for: start-up, loading the data, encoding, training, calibration,
saving. The ONNX graphs are built once before timing (the first process on a machine writes
them next to the embedding cache, about 0.3 s).

Run from the repository root::

    python benchmarks/train_speed.py      # -> results/train_speed.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from routing_data import DATA, RESULTS, write_json

from shared_router.data import read_jsonl

SOURCE = DATA / "mmlu_pro" / "mmlu_pro_scores.jsonl"
SMALL, LARGE = "Meta-Llama-3.1-8B-Instruct", "Meta-Llama-3.1-70B-Instruct"
RUNS = (("fp32", "mlp"), ("int8", "mlp"), ("int8", "logistic"))


def ten_thousand_rows(target: Path) -> tuple[int, int]:
    """Write the pair's rows with ``test`` moved to ``train``; return (train, val) counts."""
    counts = {"train": 0, "val": 0}
    with target.open("w", encoding="utf-8") as out:
        for _, row in read_jsonl(SOURCE):
            if SMALL not in row["models"] or LARGE not in row["models"]:
                continue
            row["split"] = "val" if row["split"] == "val" else "train"
            counts[row["split"]] += 1
            out.write(json.dumps(row) + "\n")
    return counts["train"], counts["val"]


def main() -> None:
    """Time each configuration once (each run takes minutes; the spread is a few percent)."""
    results = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        data = work / "mmlu_llama31.jsonl"
        n_train, n_val = ten_thousand_rows(data)
        env = {**os.environ, "HYBRID_LLM_CACHE": str(work / "cache" / "embeddings.sqlite")}
        for precision, head in RUNS:
            output = work / f"router-{precision}-{head}"
            command = [
                str(Path(sys.executable).parent / "hybrid-llm"),
                "train",
                str(data),
                "--small",
                SMALL,
                "--large",
                LARGE,
                "--precision",
                precision,
                "--head",
                head,
                "--no-cache",
                "-o",
                str(output),
            ]
            started = time.perf_counter()
            subprocess.run(command, check=True, env=env, capture_output=True)
            seconds = time.perf_counter() - started
            config = json.loads((output / "config.json").read_text())
            results.append(
                {
                    "precision": precision,
                    "head": "MLP(256), AdamW" if head == "mlp" else "logistic (exact L2)",
                    "backend": "auto",
                    "queries_encoded": n_train + n_val,
                    "seconds": round(seconds, 1),
                    "val_rows": config["training"]["n_val"],
                }
            )
            print(results[-1], flush=True)
    write_json(RESULTS / "train_speed.json", {"pair": f"{SMALL} -> {LARGE}", "runs": results})


if __name__ == "__main__":
    main()
