"""How many shadow labels does the live head need to come near the offline pair router?

``live_replay.py`` measures the savings target where the issue puts it: after 1,000 shadow
labels, on the rest of the stream. On a 10k-row pair at shadow rate 0.10 that rest is a few
hundred rows, so one seed's gap recovered moves by +-0.1 on pairs whose gaps are a few
hundredths, and the ratio of the means is mostly noise there. This benchmark asks the same
question on held-out folds large enough to answer it, and along a learning curve:

* each seed holds out one fifth of the pair's rows (fold ``seed % 5`` of a seeded
  permutation), the rows every head is measured on;
* the live head is fitted as the ``Retrainer`` fits it (``live_replay.fit_as_retrainer``:
  its labels and L2 chosen on 70% of the labels by
  :func:`~shared_router.live.head_fit.fit_live_head` with ``labels="auto"``, then refitted on
  all of them) on ``N`` labels
  drawn at random from the other rows (shadow labels are a uniform sample of the traffic),
  for each ``N`` of ``--labels``;
* the offline pair router is the same head fitted on every ``train``-split row outside the
  fold;
* the length heuristic ("shorter prompts go small") is measured on the same rows.

It reports the mean gap recovered of each with its standard error over the seeds, and the
live / offline ratio of the means per ``N`` (the target is >= 0.8 at 1,000 labels).

    OPENBLAS_NUM_THREADS=1 python benchmarks/live_learning_curve.py \
        --cache embeddings.sqlite --pairs mmlu_pro-llama31-8b-70b --seeds 10

Writes ``benchmarks/results/live_learning_curve.{json,md}``; a rerun keeps the pairs it does
not measure, so pairs can be run in separate processes (each with its own ``--out``) and
merged with ``--merge``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # BLAS threads oversubscribe 2 cores

import numpy as np
from live_replay import DATA, PAIRS, fit_as_retrainer

from shared_router.data import PairData, load_pair
from shared_router.encoders.cache import EmbeddingCache
from shared_router.evaluation.curves import gap_recovered_by_scores
from shared_router.routing.router import Router

RESULTS = Path(__file__).resolve().parent / "results" / "live_learning_curve.json"
LABELS = (1000, 2000, 4000)
FOLDS = 5


def fold_rows(data: PairData, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One seed's rows: the held-out fold, the other rows in draw order, their train rows.

    The live heads are fitted on the first ``N`` drawn rows (shadow labels are a uniform
    sample of the traffic), the offline head on the train rows; both are measured on the
    held-out fold.
    """
    rng = np.random.default_rng(seed)
    n = len(data)
    held = rng.permutation(n)[np.arange(n) % FOLDS == seed % FOLDS]
    outside = np.setdiff1d(np.arange(n), held)
    drawn = rng.permutation(outside)
    train = outside[np.array([data.splits[i] == "train" for i in outside])]
    return held, drawn, train


def measure_seed(
    data: PairData, X: np.ndarray, seed: int, labels: tuple[int, ...]
) -> dict[str, Any]:
    """One seed: the held-out fold, the live heads along ``labels`` and the offline head."""
    held, drawn, train = fold_rows(data, seed)
    small, large = data.small_quality[held], data.large_quality[held]

    def gap(rows: np.ndarray) -> tuple[float, str]:
        fitted = fit_as_retrainer(data, X, rows, seed)
        scores = fitted.head.predict_proba(X[held])
        return gap_recovered_by_scores(scores, small, large), fitted.labels

    out: dict[str, Any] = {"seed": seed, "held_out_rows": int(held.size)}
    for count in labels:
        if count > drawn.size:
            continue
        out[f"gap_live_{count}"], out[f"labels_live_{count}"] = gap(drawn[:count])
    out["offline_rows"] = int(train.size)
    out["gap_offline"], out["labels_offline"] = gap(train)
    lengths = np.array([len(data.queries[i]) for i in held], dtype=float)
    out["gap_heuristic"] = gap_recovered_by_scores(-lengths, small, large)
    return out


def measured_seeds(
    name: str,
    router: Router,
    seeds: int,
    measure: Callable[[PairData, np.ndarray, int], dict[str, Any]],
) -> tuple[PairData, list[dict[str, Any]]]:
    """Load the pair ``name``, embed its queries and ``measure`` each seed (printed as done)."""
    relative, small, large = PAIRS[name]
    data = load_pair(DATA / relative, small, large)
    X = router.encoder_.encode(list(data.queries))
    measured = []
    for seed in range(seeds):
        measured.append(measure(data, X, seed))
        print(name, json.dumps(measured[-1]), flush=True)
    return data, measured


def summarise(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard error of each gap over the seeds, and the live / offline ratios."""
    keys = [k for k in seeds[0] if k.startswith("gap_")]
    summary: dict[str, Any] = {}
    for key in keys:
        values = np.array([s[key] for s in seeds if key in s], dtype=float)
        summary[key] = {
            "mean": float(values.mean()),
            "se": float(values.std(ddof=1) / math.sqrt(values.size))
            if values.size > 1
            else math.nan,
        }
    offline = summary["gap_offline"]["mean"]
    summary["ratios"] = {
        key.removeprefix("gap_live_"): (summary[key]["mean"] / offline if offline > 0 else math.nan)
        for key in keys
        if key.startswith("gap_live_")
    }
    return summary


def render(results: dict[str, Any], path: Path) -> None:
    """Write the Markdown table of ``results``."""
    columns = [f"{count:,} labels" for count in LABELS]
    lines = [
        "# Live head learning curve against the offline pair router",
        "",
        "Written by `benchmarks/live_learning_curve.py` (its docstring says how). Gap recovered",
        "(random 0, oracle 1) on a held-out fifth of each pair, mean +- standard error over the",
        "seeds; in brackets the live / offline ratio of the means (target >= 0.8 at 1,000).",
        "",
        "| pair | seeds | held-out rows | " + " | ".join(columns) + " | offline (train rows) "
        "| length heuristic |",
        "|" + "---|" * (len(columns) + 5),
    ]
    for name, pair in results["pairs"].items():
        s = pair["summary"]
        cells = []
        for count in LABELS:
            key = f"gap_live_{count}"
            cells.append(
                f"{s[key]['mean']:.3f} +- {s[key]['se']:.3f} ({s['ratios'][str(count)]:.2f})"
                if key in s
                else "-"
            )
        seeds = pair["seeds"]
        lines.append(
            f"| {name} | {len(seeds)} | {int(np.mean([x['held_out_rows'] for x in seeds]))} | "
            + " | ".join(cells)
            + f" | {s['gap_offline']['mean']:.3f} +- {s['gap_offline']['se']:.3f} "
            f"({int(np.mean([x['offline_rows'] for x in seeds]))}) "
            f"| {s['gap_heuristic']['mean']:.3f} +- {s['gap_heuristic']['se']:.3f} |"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="*", default=list(PAIRS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge", type=Path, nargs="*", default=[], help="Merge these outputs into --out."
    )
    args = parser.parse_args()
    results: dict[str, Any] = (
        json.loads(args.out.read_text()) if args.out.exists() else {"pairs": {}}
    )
    if args.merge:
        for other in args.merge:
            results["pairs"].update(json.loads(other.read_text())["pairs"])
    else:
        if args.cache is None:
            parser.error("--cache is needed to measure (embeddings come from it)")
        router = Router.load("default", cache=EmbeddingCache(args.cache))
        for name in args.pairs:
            data, seeds = measured_seeds(
                name, router, args.seeds, lambda d, X, seed: measure_seed(d, X, seed, LABELS)
            )
            results["pairs"][name] = {
                "small": data.small,
                "large": data.large,
                "rows": len(data),
                "seeds": seeds,
                "summary": summarise(seeds),
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    render(results, args.out.with_suffix(".md"))


if __name__ == "__main__":
    main()
