"""The pilot: which candidate sets separate the two models on a real share of questions?

Forty questions of each candidate set, from its ``train`` split only (the test split is never
looked at before the final run), answered greedily by both models through ``hybrid-llm
collect`` and scored by ``hybrid-llm judge``. A set is worth routing on when the large model
is better on a real share of questions *and* the small one is good enough on a real share.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.real_pair.pipeline import LARGE, SMALL, collect_pair, judge
from benchmarks.real_pair.questions import read_jsonl, sample, write_jsonl


def run_pilot(work: Path, per_set: dict[str, int]) -> dict[str, Any]:
    """Collect and judge the first train questions of each set; summarise per set.

    Args:
        work: The working folder (``work/pilot/<set>.*``).
        per_set: Candidate set name -> questions.

    Returns:
        Per set: both models' mean quality, the shares where the large one is better, where
        the small one is at least as good, and the seconds per answer of each model.
    """
    summary: dict[str, Any] = {}
    for name, count in per_set.items():
        queries = work / "pilot" / f"{name}.queries.jsonl"
        data = work / "pilot" / f"{name}.jsonl"
        write_jsonl(queries, sample(name, {"train": count}))
        collect_pair(queries, data, name, work / "pilot" / f"{name}.logprobs.jsonl")
        judge(data, name)
        summary[name] = summarise(read_jsonl(data))
        print(name, json.dumps(summary[name]))
    return summary


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Both models' quality and speed on judged rows, and how often they differ."""
    small = [row["models"][SMALL]["score"] for row in rows]
    large = [row["models"][LARGE]["score"] for row in rows]
    n = len(rows)
    return {
        "n": n,
        "small_mean": round(statistics.fmean(small), 3),
        "large_mean": round(statistics.fmean(large), 3),
        "share_large_better": round(sum(b > a for a, b in zip(small, large, strict=True)) / n, 3),
        "share_small_better": round(sum(a > b for a, b in zip(small, large, strict=True)) / n, 3),
        "share_small_good_enough": round(
            sum(a >= b for a, b in zip(small, large, strict=True)) / n, 3
        ),
        "small_s_per_answer": round(_mean_latency(rows, SMALL), 2),
        "large_s_per_answer": round(_mean_latency(rows, LARGE), 2),
    }


def _mean_latency(rows: list[dict[str, Any]], model: str) -> float:
    return statistics.fmean(t for row in rows for t in row["models"][model]["latency_s"])
