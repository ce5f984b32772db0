"""Can the live head get more out of 1,000 labels? Label kinds and features compared.

``live_learning_curve.py`` finds the live head at 1,000 labels below 0.8 of the offline pair
router on two pairs (dcrouter, mmlu_pro). This benchmark asks whether the recipe, not the
number of labels, holds it back. On the same held-out folds and the same drawn labels
(``live_learning_curve.fold_rows``), each variant is fitted as the ``Retrainer`` fits the
served head (``live_replay.fit_as_retrainer``) on ``--labels`` labels:

* ``served``: the ``Retrainer``'s recipe, ``det`` or ``diff`` labels chosen by their
  out-of-fold gap (``labels="auto"``) on the embedding;
* ``det``, ``diff``: one label kind, no choice;
* ``pca-K``: the embedding projected on the top ``K`` principal directions of every row
  outside the fold, labelled or not (the live loop sees every routed text, so the directions
  cost no label), rescaled to the embedding's mean norm: fewer weights to learn;
* ``+length``: the embedding with the standardised log character length appended (scaled to
  an embedding feature's spread), the heuristic's signal handed to the head.

Each feature variant's offline head is fitted by the served recipe on the same features and
every train row outside the fold. The table gives the mean gap recovered (random 0, oracle 1)
on the held-out fold with its standard error, the mean paired difference to ``served``, and
the ratio of the mean to the offline pair router (``served``'s offline head), the issue's
measure (target >= 0.8).

    OPENBLAS_NUM_THREADS=1 python benchmarks/live_head_variants.py \\
        --cache embeddings.sqlite --pairs dcrouter-llama8b-nemotron51b --seeds 10

Writes ``benchmarks/results/live_head_variants.{json,md}``; a rerun keeps the pairs it does
not measure.
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
from live_learning_curve import fold_rows, measured_seeds
from live_replay import PAIRS, fit_as_retrainer

from shared_router.data import PairData
from shared_router.encoders.cache import EmbeddingCache
from shared_router.evaluation.curves import gap_recovered_by_scores
from shared_router.live.head_fit import LiveLabels
from shared_router.routing.router import Router

RESULTS = Path(__file__).resolve().parent / "results" / "live_head_variants.json"
PCA_SIZES = (16, 32, 64, 128)

Features = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Features of every row from the embeddings and the rows outside the held-out fold."""


def pca_features(size: int) -> Features:
    """The embeddings on the top ``size`` principal directions of the rows outside the fold."""

    def features(X: np.ndarray, outside: np.ndarray) -> np.ndarray:
        centre = X[outside].mean(axis=0)
        directions = np.linalg.svd(X[outside] - centre, full_matrices=False)[2][:size]
        projected = (X - centre) @ directions.T
        return projected / np.sqrt((projected[outside] ** 2).sum(axis=1).mean())

    return features


def length_features(lengths: np.ndarray) -> Features:
    """The embeddings with the standardised log length appended at a feature's spread."""
    log_length = np.log1p(lengths)

    def features(X: np.ndarray, outside: np.ndarray) -> np.ndarray:
        z = (log_length - log_length[outside].mean()) / log_length[outside].std()
        return np.hstack([X, (z * X[outside].std(axis=0).mean())[:, None]])

    return features


def variants(data: PairData) -> dict[str, tuple[LiveLabels, Features | None]]:
    """Each variant's label kind and features (None: the embedding as served)."""
    lengths = np.array([len(query) for query in data.queries], dtype=float)
    found: dict[str, tuple[LiveLabels, Features | None]] = {
        "served": ("auto", None),
        "det": ("det", None),
        "diff": ("diff", None),
    }
    found.update({f"pca-{size}": ("auto", pca_features(size)) for size in PCA_SIZES})
    found["+length"] = ("auto", length_features(lengths))
    return found


def measure_seed(data: PairData, X: np.ndarray, seed: int, labels: int) -> dict[str, Any]:
    """One seed: every variant's live head on ``labels`` labels, and the offline heads."""
    held, drawn, train = fold_rows(data, seed)
    outside = np.setdiff1d(np.arange(len(data)), held)
    small, large = data.small_quality[held], data.large_quality[held]

    def gap(features: np.ndarray, rows: np.ndarray, kind: LiveLabels) -> float:
        head = fit_as_retrainer(data, features, rows, seed, labels=kind).head
        return gap_recovered_by_scores(head.predict_proba(features[held]), small, large)

    out: dict[str, Any] = {"seed": seed}
    for name, (kind, make) in variants(data).items():
        features = X if make is None else make(X, outside)
        out[f"live_{name}"] = gap(features, drawn[:labels], kind)
        if name == "served" or make is not None:
            out[f"offline_{name}"] = gap(features, train, kind)
    return out


def summarise(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each variant's mean and standard error, paired difference to served, and ratio."""

    def mean_se(values: np.ndarray) -> dict[str, float]:
        se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan
        return {"mean": float(values.mean()), "se": se}

    def column(key: str) -> np.ndarray:
        return np.array([seed[key] for seed in seeds], dtype=float)

    offline = column("offline_served").mean()
    summary: dict[str, Any] = {}
    for key in (k for k in seeds[0] if k.startswith("live_")):
        name = key.removeprefix("live_")
        summary[name] = {
            "live": mean_se(column(key)),
            "minus_served": mean_se(column(key) - column("live_served")),
            "ratio": float(column(key).mean() / offline) if offline > 0 else math.nan,
        }
        if f"offline_{name}" in seeds[0]:
            summary[name]["offline"] = mean_se(column(f"offline_{name}"))
    return summary


def render(results: dict[str, Any], path: Path) -> None:
    """Write the Markdown tables of ``results``."""
    lines = [
        "# Live head variants at a fixed number of labels",
        "",
        "Written by `benchmarks/live_head_variants.py` (its docstring says how). Gap recovered",
        "on a held-out fifth of each pair, mean +- standard error over the seeds; the paired",
        "difference to the served recipe; the offline head on the same features; the ratio of",
        "the live mean to the offline pair router (`served`'s offline head; target >= 0.8).",
    ]
    for name, pair in results["pairs"].items():
        lines += [
            "",
            f"## {name} ({pair['labels']:,} labels, {len(pair['seeds'])} seeds)",
            "",
            "| variant | live | minus served | offline, same features | ratio |",
            "|---|---|---|---|---|",
        ]
        for variant, s in pair["summary"].items():
            offline = (
                f"{s['offline']['mean']:.3f} +- {s['offline']['se']:.3f}" if "offline" in s else "-"
            )
            lines.append(
                f"| {variant} | {s['live']['mean']:.3f} +- {s['live']['se']:.3f} "
                f"| {s['minus_served']['mean']:+.3f} +- {s['minus_served']['se']:.3f} "
                f"| {offline} | {s['ratio']:.2f} |"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="*", default=list(PAIRS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results: dict[str, Any] = (
        json.loads(args.out.read_text()) if args.out.exists() else {"pairs": {}}
    )
    router = Router.load("default", cache=EmbeddingCache(args.cache))
    for name in args.pairs:
        data, seeds = measured_seeds(
            name, router, args.seeds, lambda d, X, seed: measure_seed(d, X, seed, args.labels)
        )
        results["pairs"][name] = {
            "small": data.small,
            "large": data.large,
            "labels": args.labels,
            "seeds": seeds,
            "summary": summarise(seeds),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    render(results, args.out.with_suffix(".md"))


if __name__ == "__main__":
    main()
