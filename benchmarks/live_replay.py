"""Does the live loop keep its quality promise on real pairs, and what does it save?

For every pair (``--pairs``, default: the shared pairs with at least 2,000 rows), 20 seeded
replays (``hybrid-llm replay``'s code, :func:`shared_router.live.replay.replay`) at shadow
rates 0.05 and 0.10 (``--rates``) and ``max_quality_drop`` 0.02 and 0.05 (``--drops``),
starting from the bundled router (or ``--router DIR``), measure:

* promise kept: the share of replays whose realised drop after the warm-up is within the
  request (target >= 95%);
* savings: the small share at the realised drop against "shorter prompts go small" at the same
  drop on the same rows (its threshold chosen with hindsight on those rows); and, for seeds
  0..``--seeds``-1 at each rate, once 1,000 shadow labels have come in (at the stream's middle
  when fewer do; the label count is reported), the gap recovered on the rest of the stream of a
  head refitted as the live loop does (exact logistic head, det or diff labels and its L2
  chosen by cross-validation on 70% of the labels, ``fit_live_head``, then refitted on all of
  them, ``refit_live_head``) against the offline pair
  router (the same head fitted on the pair's ``train`` rows outside the rest of the stream),
  both also on det labels only (the former recipe), beside the length heuristic on the same
  rows; the table gives the mean gaps and the live / offline ratio of the means (target >= 0.8).
  ``--savings-only`` recomputes these without replaying;
* replay speed (seconds per replay, the cache warm).

Embeddings come from the on-disk cache (``--cache``); encoding the prompts is the slow part
here. ``routerbench_subset`` and ``routerdc_7b_pool`` are test-only data: measured on, never
trained on for a shipped router.

    OPENBLAS_NUM_THREADS=1 python benchmarks/live_replay.py --cache embeddings.sqlite
    OPENBLAS_NUM_THREADS=1 python benchmarks/live_replay.py --cache embeddings.sqlite \
        --savings-only --pairs mmlu_pro-llama31-8b-70b --rates 0.1

A rerun skips the replays already in ``--out`` (by pair, rate, level and seed), so a run cut
short resumes; the replays run seed by seed, so a cut-short pair has whole seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # BLAS threads oversubscribe 2 cores

import numpy as np

from shared_router.data import PairData, load_pair
from shared_router.encoders.cache import EmbeddingCache
from shared_router.evaluation.curves import (
    cost_advantage_at_drop,
    gap_recovered_by_scores,
    router_curve,
)
from shared_router.live.head_fit import LiveHeadFit, LiveLabels, fit_live_head, refit_live_head
from shared_router.live.replay import ReplaySettings, replay
from shared_router.routing.router import Router
from shared_router.training.logistic import DEFAULT_L2_GRID

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PAIRS = {
    "routerbench-mixtral-gpt4": (
        "routerbench_subset/routerbench_subset.jsonl",
        "mistralai/mixtral-8x7b-chat",
        "gpt-4-1106-preview",
    ),
    "routerbench-llama70b-gpt4": (
        "routerbench_subset/routerbench_subset.jsonl",
        "meta/llama-2-70b-chat",
        "gpt-4-1106-preview",
    ),
    "dcrouter-llama8b-nemotron51b": (
        "llmrouter_dcrouter/train.jsonl",
        "llama-3.1-8b-instruct",
        "llama-3.1-nemotron-51b-instruct",
    ),
    "routerdc-mistral7b-dolphin8b": (
        "routerdc_7b_pool/routerdc_7b_pool.jsonl",
        "Mistral-7B-v0.1",
        "dolphin-2.9-llama3-8b",
    ),
    "mmlu_pro-llama31-8b-70b": (
        "mmlu_pro/mmlu_pro_scores.jsonl",
        "Meta-Llama-3.1-8B-Instruct",
        "Meta-Llama-3.1-70B-Instruct",
    ),
}
RATES = (0.05, 0.10)
DROPS = (0.02, 0.05)
LABELS_AT = 1000


def fit_as_retrainer(
    data: PairData, X: np.ndarray, rows: np.ndarray, seed: int, labels: LiveLabels = "auto"
) -> LiveHeadFit:
    """The head the ``Retrainer`` serves from ``rows`` (5 folds, its L2 grid).

    Its recipe (label kind and L2 strength) is chosen by :func:`fit_live_head` on a random
    70% of the rows (the ``Retrainer`` compares that head with the current one on the other
    30%), then refitted on all of them (:func:`refit_live_head`).
    """
    small, large = data.small_quality, data.large_quality
    chosen_on = np.random.default_rng(seed).permutation(rows)[: max(2, int(0.7 * rows.size))]
    recipe = fit_live_head(
        X[chosen_on],
        small[chosen_on],
        large[chosen_on],
        labels=labels,
        l2=DEFAULT_L2_GRID,
        folds=5,
        seed=seed,
    )
    return refit_live_head(X[rows], small[rows], large[rows], recipe=recipe, folds=5, seed=seed)


def _savings(data: PairData, X: np.ndarray, seed: int, rate: float) -> dict[str, float | int]:
    """Live head after LABELS_AT labels vs the offline pair router, on the rest of the stream.

    The cut is at the LABELS_AT-th shadow label, or at the stream's middle when fewer labels
    come in. The live head is fitted as the ``Retrainer`` does (:func:`fit_as_retrainer` with
    ``labels="auto"``: det or diff labels, and the L2, by cross-validation); ``gap_live_det``
    is the same head on det labels only, the former recipe. The offline routers are the same
    two heads fitted on the pair's ``train`` rows outside the rest of the stream, so no head
    has seen a row it is measured on. The length heuristic ("shorter prompts go small") is
    measured on the same rows.
    """
    order = np.random.default_rng(seed).permutation(len(data))
    draws = random.Random(seed)
    shadowed = np.array([draws.random() < rate for _ in order])
    positions = np.flatnonzero(shadowed)
    cut = positions[LABELS_AT - 1] + 1 if positions.size >= LABELS_AT else len(order) // 2
    labelled = order[positions[positions < cut]]
    rest = order[cut:]
    small_all, large_all = data.small_quality, data.large_quality
    outside = np.ones(len(data), dtype=bool)
    outside[rest] = False
    train = np.flatnonzero(outside & np.array([s == "train" for s in data.splits]))
    small, large = small_all[rest], large_all[rest]
    out: dict[str, float | int] = {
        "labels": int(labelled.size),
        "rest_rows": int(rest.size),
        "offline_train_rows": int(train.size),
    }
    for name, rows in (("live", labelled), ("offline", train)):
        for labels in ("auto", "det"):
            fitted = fit_as_retrainer(data, X, rows, seed, labels)
            key = f"gap_{name}" + ("" if labels == "auto" else "_det")
            out[key] = gap_recovered_by_scores(fitted.head.predict_proba(X[rest]), small, large)
            if labels == "auto":
                out[f"{name}_labels"] = fitted.labels
    lengths = np.array([len(q) for q in data.queries], dtype=float)
    out["gap_heuristic"] = gap_recovered_by_scores(-lengths[rest], small, large)
    gap_offline = float(out["gap_offline"])
    out["gap_ratio"] = float(out["gap_live"]) / gap_offline if gap_offline > 0 else math.nan
    return out


def _heuristic_share(
    data: PairData, decisions: list[dict[str, Any]], warmup: int, drop: float
) -> float:
    rows = decisions[warmup:]
    small = np.array([d["small_quality"] for d in rows])
    large = np.array([d["large_quality"] for d in rows])
    by_id = {row_id: len(q) for row_id, q in zip(data.ids, data.queries, strict=True)}
    scores = -np.array([by_id[d["id"]] for d in rows], dtype=float)
    curve = router_curve(scores, small, large)
    return cost_advantage_at_drop(curve, float(large.mean()), [max(0.0, drop)])[max(0.0, drop)]


def _overhead(calls: int = 5000) -> dict[str, dict[str, float]]:
    """What ``maybe_shadow`` costs the caller, per call, shadowing off (rate 0) and on (rate 1).

    Instant stand-ins for the other model and the judge; a real SQLite store. At rate 1 the
    queue saturates, so both paths (queued and dropped) are in the sample.
    """
    import tempfile

    from shared_router.live.judges import CallableJudge
    from shared_router.live.shadow import ShadowEvaluator
    from shared_router.live.store import open_store
    from shared_router.types import RouteDecision

    decision = RouteDecision("small", 0.9, 0.5, "threshold")
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(Path(folder) / "live.sqlite")
        for rate in (0.0, 1.0):
            evaluator = ShadowEvaluator(
                store, CallableJudge(lambda case: (1.0, 1.0)), shadow_rate=rate, seed=0
            )
            times = []
            for i in range(calls):
                started = time.perf_counter()
                evaluator.maybe_shadow(
                    f"r{i}", "What is 2 + 2?", decision, "small", "4", lambda: "4"
                )
                times.append((time.perf_counter() - started) * 1000.0)
            evaluator.drain(timeout=120)
            stats = evaluator.stats
            evaluator.close()
            out[f"rate_{rate:g}"] = {
                "p50_ms": float(np.percentile(times, 50)),
                "p99_ms": float(np.percentile(times, 99)),
                "shadowed": stats.shadowed,
                "dropped": stats.dropped,
            }
    return out


_SAVINGS_COLUMNS = ("gap_live", "gap_offline", "gap_live_det", "gap_offline_det", "gap_heuristic")


def _savings_cells(savings: list[dict[str, Any]]) -> str:
    """Labels, the mean gaps, and the ratio of the live to the offline mean (both recipes)."""
    if not savings:
        return "- | " * (len(_SAVINGS_COLUMNS) + 3)
    means = {key: float(np.mean([x[key] for x in savings])) for key in _SAVINGS_COLUMNS}
    cells = [f"{np.mean([x['labels'] for x in savings]):.0f}"]
    cells += [f"{means[key]:.3f}" for key in _SAVINGS_COLUMNS]
    for live, offline in (("gap_live", "gap_offline"), ("gap_live_det", "gap_offline_det")):
        ratio = means[live] / means[offline] if means[offline] > 0 else math.nan
        cells.append(f"{ratio:.2f}")
    diff = np.mean([x["live_labels"] == "diff" for x in savings])
    cells.append(f"{diff:.0%}")
    return " | ".join(cells) + " | "


def render(results: dict[str, Any], path: Path) -> None:
    """Write the Markdown summary of ``results`` (one row per pair and setting)."""
    lines = [
        "# Live replay: the quality promise on real pairs",
        "",
        "Written by `benchmarks/live_replay.py` (see its docstring for what each column means).",
        "Seeded replays per setting (column `replays`, seeds 0..n-1), warm-up "
        f"{results.get('warmup')} rows, router {results.get('router', 'default')!r} to start, "
        "small call = 0.1 of a large one.",
        "Savings columns (on each rate's 0.05 row; `--savings-only` computes them per seed):",
        "labels at the cut (the 1,000th, else the stream's middle); the mean gap recovered on",
        "the rest of the stream of the live head (as the `Retrainer` fits it: labels det or",
        "diff and L2 chosen by cross-validation), of the same head on the pair's train rows",
        "(offline), of both on det labels only (the former recipe), and of the length",
        "heuristic; the live / offline ratio of the means for each recipe; and how often",
        "the live head chose diff labels.",
        "",
        "| pair | rows | rate | requested | replays | kept | mean realised | mean small share "
        "| above length heuristic | cost saved net | labels | gap live | gap offline "
        "| gap live, det | gap offline, det | gap heuristic | live / offline "
        "| same, det | diff chosen | s / replay |",
        "|" + "---|" * 20,
    ]
    for name, pair in results.get("pairs", {}).items():
        for rate in RATES:
            for drop in DROPS:
                runs = [
                    r
                    for r in pair["runs"]
                    if r["shadow_rate"] == rate and r["requested_drop"] == drop
                ]
                if not runs:
                    continue
                savings = (
                    [x for x in pair.get("savings", []) if x["rate"] == rate]
                    if drop == DROPS[-1]
                    else []
                )
                lines.append(
                    f"| {name} | {pair['rows']} | {rate:g} | {drop:g} | {len(runs)} | "
                    f"{np.mean([r['kept'] for r in runs]):.0%} | "
                    f"{np.mean([r['realised_drop'] for r in runs]):.2%} | "
                    f"{np.mean([r['small_share'] for r in runs]):.1%} | "
                    f"{np.mean([r['small_share'] > r['heuristic_share'] for r in runs]):.0%} | "
                    f"{np.mean([r['cost_saved_net'] for r in runs]):.1%} | "
                    + _savings_cells(savings)
                    + f"{np.mean([r['seconds'] for r in runs]):.1f} |"
                )
    overhead = results.get("overhead")
    if overhead:
        lines += ["", "`maybe_shadow` per call (instant stand-ins, real SQLite store):", ""]
        for key, value in overhead.items():
            lines.append(
                f"- {key}: p50 {value['p50_ms']:.3f} ms, p99 {value['p99_ms']:.3f} ms "
                f"({value['shadowed']} shadowed, {value['dropped']} dropped)"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _record(
    results: dict[str, Any], name: str, data: PairData, runs: list[dict[str, Any]], out: Path
) -> None:
    """Put a pair's runs so far and their summary into ``results`` and write it to ``out``."""
    kept = [r["kept"] for r in runs]
    savings = results["pairs"].get(name, {}).get("savings", [])
    results["pairs"][name] = {
        "small": data.small,
        "large": data.large,
        "rows": len(data),
        "replays": len(runs),
        "promise_kept_share": sum(kept) / len(kept),
        "mean_small_share": float(np.mean([r["small_share"] for r in runs])),
        "small_share_above_heuristic": float(
            np.mean([r["small_share"] > r["heuristic_share"] for r in runs])
        ),
        "mean_replay_seconds": float(np.mean([r["seconds"] for r in runs])),
        "runs": runs,
        "savings": savings,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=float) + "\n")


def _savings_over_seeds(
    pair: dict[str, Any], data: PairData, X: np.ndarray, seeds: int, rates: list[float]
) -> None:
    """The pair's savings for seeds 0..seeds-1 at each rate, kept in ``pair["savings"]``.

    No replay is needed: a seed's stream order, shadow draws and cut follow from the seed as
    in the replay.
    """
    entries = []
    for rate in rates:
        for seed in range(seeds):
            entry = {"seed": seed, "rate": rate, **_savings(data, X, seed, rate)}
            entries.append(entry)
            print(data.small, data.large, json.dumps(entry), flush=True)
    pair["savings"] = entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="*", default=list(PAIRS))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--router", default="default", help="The router to start from.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/live_replay.json"))
    parser.add_argument("--overhead-only", action="store_true", help="Only time maybe_shadow.")
    parser.add_argument("--render-only", action="store_true", help="Only write the Markdown.")
    parser.add_argument(
        "--savings-only",
        action="store_true",
        help="Only (re)compute the savings of --pairs in --out, at --rates, for --seeds seeds.",
    )
    parser.add_argument(
        "--replays-only", action="store_true", help="Replay, without computing the savings."
    )
    parser.add_argument("--rates", type=float, nargs="*", default=list(RATES))
    parser.add_argument("--drops", type=float, nargs="*", default=list(DROPS))
    args = parser.parse_args()
    markdown = args.out.with_suffix(".md")
    if args.overhead_only or args.render_only:
        results = json.loads(args.out.read_text()) if args.out.exists() else {}
        if args.overhead_only:
            results["overhead"] = _overhead()
            args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
        render(results, markdown)
        return
    cache = EmbeddingCache(args.cache)
    router = Router.load(args.router, cache=cache)
    if args.out.exists():
        results = json.loads(args.out.read_text())
    else:
        results = {
            "seeds": args.seeds,
            "warmup": args.warmup,
            "router": args.router,
            "pairs": {},
        }
    for name in args.pairs:
        relative, small, large = PAIRS[name]
        data = load_pair(DATA / relative, small, large)
        started = time.perf_counter()
        X = router.encoder_.encode(list(data.queries))
        print(
            f"{name}: {len(data)} rows encoded in {time.perf_counter() - started:.0f} s", flush=True
        )
        if args.savings_only:
            _savings_over_seeds(results["pairs"][name], data, X, args.seeds, args.rates)
            args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
            render(results, markdown)
            continue
        runs = list(results["pairs"].get(name, {}).get("runs", []))
        done = {(r["shadow_rate"], r["requested_drop"], r["seed"]) for r in runs}
        for seed in range(args.seeds):  # seed-major: a cut-short run has whole seeds
            for rate in args.rates:
                for drop in args.drops:
                    if (rate, drop, seed) in done:
                        continue
                    settings = ReplaySettings(
                        max_quality_drop=drop, shadow_rate=rate, seed=seed, warmup=args.warmup
                    )
                    result = replay(data, settings, router=router, cache=cache)
                    s = result.summary
                    run = {
                        key: s[key]
                        for key in (
                            "seed",
                            "shadow_rate",
                            "requested_drop",
                            "realised_drop",
                            "small_share",
                            "cost_saved_net",
                            "shadowed",
                            "retrains",
                            "swaps",
                        )
                    }
                    run["seconds"] = s["seconds"]["total"]
                    run["kept"] = bool(s["realised_drop"] <= drop + 1e-12)
                    run["heuristic_share"] = _heuristic_share(
                        data, result.decisions, args.warmup, s["realised_drop"]
                    )
                    runs.append(run)
                    print(json.dumps(run), flush=True)
                    _record(results, name, data, runs, args.out)
        if not args.replays_only:
            _savings_over_seeds(results["pairs"][name], data, X, args.seeds, args.rates)
        _record(results, name, data, runs, args.out)
        summary = {k: v for k, v in results["pairs"][name].items() if k not in ("runs", "savings")}
        print(name, json.dumps(summary), flush=True)
        render(results, markdown)


if __name__ == "__main__":
    main()
