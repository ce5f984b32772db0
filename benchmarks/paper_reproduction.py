"""Reproduce the paper's evaluation (Ding et al., ICLR 2024, section 4) on public data.

For each (small, large) pair of ``routing_data.PAIRS`` (from a close pair to a wide gap;
binary, judge and multi-sample qualities), routers are trained with the library's own recipe
(:func:`shared_router.routing.router.train_router`: labels on ``train``, early stopping and
calibration on ``val``) on frozen all-MiniLM-L6-v2 embeddings, one per label type:

* ``r_det``, ``r_prob``, ``r_trans`` (the paper's three labels) with the default MLP head;
* ``r_trans + logistic``: the same labels with ``Router(head_type="logistic")`` (the head
  that ``router_variants.py`` found best).

Each is compared on the ``test`` split with the random, oracle and "shorter prompts go small"
baselines: cost advantage (share sent small) at 0.5 / 1 / 2 / 5% relative quality drop, gap
recovered, APGR and CPT(50% / 80%), with 95% bootstrap intervals over the test rows. The
calibration check asks each router for ``max_quality_drop`` 1% and 5% (thresholds chosen on
``val``) and measures the drop and cost advantage it really gets on ``test``.

Test splits of 38-90 rows are too small to rank routers, so pairs with fewer than
``--cv-below`` test rows are also cross-validated: the whole pair is split into ``--folds``
folds (``--repeats`` times), each fold is the test set of a router trained on the rest (val
carved out of it), and the metrics are averaged over folds.

Run from the repository root (embeddings come from ``~/.cache/hybrid-llm``)::

    python benchmarks/paper_reproduction.py                  # every pair, a few minutes on 2 cores
    python benchmarks/paper_reproduction.py --pairs math-qwen25,date-gpt35-gpt4 --quick

Writes ``benchmarks/results/paper_reproduction.{json,md}`` and one PNG per pair.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from routing_data import (
    PAIR_KEYS,
    RESULTS,
    PairSpec,
    id_bucket,
    load_spec,
    spec_by_key,
    write_json,
)

from shared_router.data import PairData
from shared_router.encoders.cache import EmbeddingCache
from shared_router.encoders.encoder import Encoder
from shared_router.evaluation.curves import (
    HEURISTIC_NAME,
    gap_recovered,
    oracle_curve,
    random_curve,
    router_curve,
)
from shared_router.evaluation.plots import plot_curves
from shared_router.evaluation.report import EvaluationReport, evaluate_scores
from shared_router.routing.router import Router
from shared_router.routing.train_router import train_router
from shared_router.training.labels import make_labels
from shared_router.types import QualityKnobs

LABELS = ("det", "prob", "trans")
VARIANT = "r_trans + logistic"
ROUTERS = ("r_det", "r_prob", "r_trans", VARIANT)
BASELINES = (HEURISTIC_NAME, "random", "oracle")
DROPS = (0.005, 0.01, 0.02, 0.05)
KNOB_DROPS = (0.01, 0.05)


@dataclass(frozen=True)
class SplitResult:
    """Routers trained on one train/val split and evaluated on its test rows.

    Attributes:
        report: The evaluation of every router and baseline on the test rows.
        scores: Each router's test scores.
        calibration: ``{router: {target drop: {val_cost_advantage, cost_advantage, drop}}}``.
        same_labels: ``{label router: the router whose labels it repeats}``.
        t_star: The r_trans relaxation found on train.
        test: The test rows.
    """

    report: EvaluationReport
    scores: dict[str, np.ndarray]
    calibration: dict[str, dict[float, dict[str, float]]]
    same_labels: dict[str, str]
    t_star: float | None
    test: PairData


def train_and_evaluate(data: PairData, encoder: Encoder, seed: int) -> SplitResult:
    """Train the four routers on ``data``'s train/val rows and evaluate them on its test rows.

    Label types whose train and val labels equal an earlier type's reuse its router (binary
    single-sample qualities make r_det, r_prob and r_trans identical).
    """
    train, val, test = data.split("train"), data.split("val"), data.split("test")
    models: dict[str, Router] = {}
    same: dict[str, str] = {}
    seen: list[tuple[str, np.ndarray]] = []
    t_star = make_labels(train, "trans").t_star
    for kind in LABELS:
        name = f"r_{kind}"
        labels = np.concatenate(
            [
                make_labels(train, kind, t_star=t_star if kind == "trans" else None).y,
                make_labels(val, kind, t_star=t_star if kind == "trans" else None).y,
            ]
        )
        twin = next((other for other, y in seen if np.array_equal(y, labels)), None)
        if twin is not None:
            models[name], same[name] = models[twin], twin
            continue
        seen.append((name, labels))
        models[name] = train_router(
            data, label_type=kind, router=Router(encoder, progress=False, seed=seed)
        )
    models[VARIANT] = train_router(
        data,
        label_type="trans",
        router=Router(encoder, head_type="logistic", progress=False, seed=seed),
    )
    scores = {name: model.score(test.queries) for name, model in models.items()}
    report = evaluate_scores(
        scores,
        test.small_quality,
        test.large_quality,
        queries=test.queries,
        drops=(0.0, *DROPS, 0.10),
    )
    calibration = {
        name: {drop: realised(model, scores[name], test, drop) for drop in KNOB_DROPS}
        for name, model in models.items()
    }
    return SplitResult(report, scores, calibration, same, t_star, test)


def realised(model: Router, scores: np.ndarray, test: PairData, drop: float) -> dict[str, float]:
    """What ``max_quality_drop=drop`` (threshold from the val calibration) gives on test."""
    table = model.calibration_
    threshold = model.threshold_for(QualityKnobs(max_quality_drop=drop))
    small = scores >= threshold
    large_mean = float(test.large_quality.mean())
    routed = np.where(small, test.small_quality, test.large_quality).mean()
    val_ca = math.nan
    if table is not None:
        val_ca = float(table.cost_advantage[np.searchsorted(table.thresholds, threshold)])
    return {
        "val_cost_advantage": val_ca,
        "cost_advantage": float(small.mean()),
        "drop": float((large_mean - routed) / large_mean),
    }


def bootstrap_intervals(
    scores: Mapping[str, np.ndarray], test: PairData, n_boot: int, seed: int
) -> dict[str, dict[str, list[float]]]:
    """95% percentile intervals of gap recovered and cost advantage at 1% drop, over test rows."""
    from shared_router.evaluation.curves import cost_advantage_at_drop

    rng = np.random.default_rng(seed)
    n = len(test)
    named = {**scores, HEURISTIC_NAME: -np.array([len(q) for q in test.queries], dtype=float)}
    samples: dict[str, dict[str, list[float]]] = {k: {"gr": [], "ca1": []} for k in named}
    for _ in range(n_boot):
        rows = rng.integers(0, n, n)
        small, large = test.small_quality[rows], test.large_quality[rows]
        if large.mean() <= 0:
            continue
        rand, orac = random_curve(small, large), oracle_curve(small, large)
        for name, values in named.items():
            curve = router_curve(values[rows], small, large, name=name)
            samples[name]["gr"].append(gap_recovered(curve, rand, orac))
            samples[name]["ca1"].append(cost_advantage_at_drop(curve, large.mean(), (0.01,))[0.01])
    out: dict[str, dict[str, list[float]]] = {}
    for name, metric in samples.items():
        out[name] = {}
        for key, values in metric.items():
            finite = np.array([v for v in values if not math.isnan(v)])
            out[name][key] = (
                [float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975))]
                if finite.size
                else [math.nan, math.nan]
            )
    return out


def fold_splits(data: PairData, folds: int, repeat: int) -> list[PairData]:
    """``folds`` copies of ``data``, each with one fold as test and 1/8 of the rest as val."""
    order = np.random.default_rng(1000 + repeat).permutation(len(data))
    fold_of = np.empty(len(data), dtype=int)
    fold_of[order] = np.arange(len(data)) % folds
    out = []
    for k in range(folds):
        splits = tuple(
            "test"
            if fold_of[i] == k
            else ("val" if id_bucket(f"{row_id}#{repeat}", 8) == 0 else "train")
            for i, row_id in enumerate(data.ids)
        )
        out.append(dataclasses.replace(data, splits=splits))
    return out


def cross_validate(
    data: PairData, encoder: Encoder, folds: int, repeats: int, seed: int
) -> dict[str, Any]:
    """Mean and spread of every metric over ``repeats`` x ``folds`` test folds."""
    per_fold: list[SplitResult] = []
    for repeat in range(repeats):
        for fold in fold_splits(data, folds, repeat):
            per_fold.append(train_and_evaluate(fold, encoder, seed))
    names = [*ROUTERS, *BASELINES]
    metrics: dict[str, dict[str, Any]] = {}
    for name in names:
        rows = [r.report.metric(name) for r in per_fold]
        entry: dict[str, Any] = {
            "gap_recovered": _mean_sd([m.gap_recovered for m in rows]),
            "apgr": _mean_sd([m.apgr for m in rows]),
            "cost_advantage_at_drop": {
                str(d): _mean_sd([m.cost_advantage_at_drop[d] for m in rows]) for d in DROPS
            },
        }
        if name in ROUTERS:
            entry["calibration"] = {
                str(d): {
                    "cost_advantage": _mean_sd(
                        [r.calibration[name][d]["cost_advantage"] for r in per_fold]
                    ),
                    "drop": _mean_sd([r.calibration[name][d]["drop"] for r in per_fold]),
                    "folds_over_target": sum(
                        r.calibration[name][d]["drop"] > d + 1e-12 for r in per_fold
                    ),
                }
                for d in KNOB_DROPS
            }
        metrics[name] = entry
    return {"folds": len(per_fold), "fold_size": len(data) // folds, "metrics": metrics}


def _mean_sd(values: Sequence[float]) -> list[float]:
    finite = np.array([v for v in values if not math.isnan(v)])
    if finite.size == 0:
        return [math.nan, math.nan]
    return [float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else 0.0]


def run_pair(spec: PairSpec, encoder: Encoder, args: argparse.Namespace) -> dict[str, Any]:
    """Official split (with bootstrap intervals) and, for small test splits, cross-validation."""
    started = time.perf_counter()
    data = load_spec(spec)
    result = train_and_evaluate(data, encoder, args.seed)
    report = result.report
    plot_curves(
        report,
        args.output / f"paper_reproduction_{spec.key}.png",
        title=f"{spec.small} -> {spec.large}\n{spec.source}, test n={report.n}",
    )
    out: dict[str, Any] = {
        "source": spec.source,
        "small": spec.small,
        "large": spec.large,
        "signal": spec.signal,
        "score_field": spec.score_field,
        "sizes": {s: len(data.split(s)) for s in ("train", "val", "test")},
        "t_star": result.t_star,
        "same_labels": result.same_labels,
        "test": report.to_dict(include_curves=False),
        "bootstrap95": bootstrap_intervals(result.scores, result.test, args.bootstrap, args.seed),
        "calibration": {
            name: {str(d): v for d, v in by_drop.items()}
            for name, by_drop in result.calibration.items()
        },
    }
    if report.n < args.cv_below:
        out["cross_validation"] = cross_validate(data, encoder, args.folds, args.repeats, args.seed)
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def markdown(results: Mapping[str, Mapping[str, Any]], args: argparse.Namespace) -> str:
    """The Markdown report: summary, then one section per pair."""
    lines = [
        "# Paper reproduction: routing quality on public (small, large) pairs",
        "",
        "Routers read only the query (frozen all-MiniLM-L6-v2 embeddings). Trained on `train`, "
        "early-stopped and calibrated on `val`, measured on `test`. CA@x: cost advantage (share "
        "of queries sent to the small model) at a relative quality drop of at most x versus "
        "always using the large model. GR: gap recovered, (area - random) / (oracle - random). "
        "Calibration: `max_quality_drop` chosen on val, realised on test. Generated by "
        f"`python benchmarks/paper_reproduction.py` (seed {args.seed}, {args.bootstrap} "
        "bootstrap resamples).",
        "",
        "## Summary (official test split)",
        "",
        "| pair | test n | small / large mean | t* | GR r_det | GR r_prob | GR r_trans | "
        f"GR {VARIANT} | GR heuristic | CA@1% r_trans | CA@1% {VARIANT} | CA@1% random | "
        "CA@1% oracle |",
        "|---" * 13 + "|",
    ]
    for key, r in results.items():
        m = r["test"]["metrics"]
        lines.append(
            f"| {key} | {r['test']['n']} | {r['test']['small_mean']:.3f} / "
            f"{r['test']['large_mean']:.3f} | {_num(r['t_star'])} | "
            + " | ".join(_num(m[n]["gap_recovered"]) for n in (*ROUTERS, HEURISTIC_NAME))
            + " | "
            + " | ".join(
                _pct(m[n]["cost_advantage_at_drop"]["0.01"])
                for n in ("r_trans", VARIANT, "random", "oracle")
            )
            + " |"
        )
    lines += _averages(results)
    for key, r in results.items():
        lines += _pair_section(key, r)
    return "\n".join(lines) + "\n"


def _averages(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = ["", "Means over the pairs (official test splits):", ""]
    lines += ["| router | mean GR | mean CA@1% | mean CA@1% / random's |", "|---|---|---|---|"]
    for name in (*ROUTERS, HEURISTIC_NAME, "random", "oracle"):
        gr = [_nan(r["test"]["metrics"][name]["gap_recovered"]) for r in results.values()]
        ca = [
            _nan(r["test"]["metrics"][name]["cost_advantage_at_drop"]["0.01"])
            for r in results.values()
        ]
        rnd = [
            _nan(r["test"]["metrics"]["random"]["cost_advantage_at_drop"]["0.01"])
            for r in results.values()
        ]
        ratio = [c / q for c, q in zip(ca, rnd, strict=True) if q > 0]
        lines.append(
            f"| {name} | {_num(float(np.nanmean(gr)))} | {_pct(float(np.nanmean(ca)))} | "
            f"{_num(float(np.mean(ratio))) if ratio else 'n/a'} |"
        )
    cv = {k: r["cross_validation"] for k, r in results.items() if "cross_validation" in r}
    if cv:
        lines += [
            "",
            "Means over the cross-validated pairs (mean over folds, then over pairs):",
            "",
        ]
        lines += ["| router | mean GR | mean CA@1% |", "|---|---|---|"]
        for name in (*ROUTERS, HEURISTIC_NAME, "random", "oracle"):
            gr = [c["metrics"][name]["gap_recovered"][0] for c in cv.values()]
            ca = [c["metrics"][name]["cost_advantage_at_drop"]["0.01"][0] for c in cv.values()]
            lines.append(
                f"| {name} | {_num(float(np.nanmean(gr)))} | {_pct(float(np.nanmean(ca)))} |"
            )
    return lines


def _pair_section(key: str, r: Mapping[str, Any]) -> list[str]:
    test, boot = r["test"], r["bootstrap95"]
    sizes = r["sizes"]
    same = ", ".join(f"{a} = {b}" for a, b in r["same_labels"].items()) or "none"
    lines = [
        "",
        f"## {key}: {r['small']} -> {r['large']} ({r['source']}, {r['signal']})",
        "",
        f"train / val / test = {sizes['train']} / {sizes['val']} / {sizes['test']}; mean "
        f"quality small {test['small_mean']:.3f}, large {test['large_mean']:.3f}, oracle best "
        f"{test['oracle_best']:.3f} (test); t* = {_num(r['t_star'])}; identical labels: {same}. "
        f"Curves: `paper_reproduction_{key}.png`.",
        "",
        "| curve | GR [95% CI] | APGR | CPT(50%) | CPT(80%) | "
        + " | ".join(f"CA@{100 * d:g}%" for d in DROPS)
        + " | CA@1% [95% CI] |",
        "|---" * (6 + len(DROPS)) + "|",
    ]
    for name in (*ROUTERS, *BASELINES):
        m = test["metrics"][name]
        ci = boot.get(name)
        gr_ci = f" [{_num(ci['gr'][0])}, {_num(ci['gr'][1])}]" if ci else ""
        ca_ci = f"[{_pct(ci['ca1'][0])}, {_pct(ci['ca1'][1])}]" if ci else ""
        lines.append(
            f"| {name} | {_num(m['gap_recovered'])}{gr_ci} | {_num(m['apgr'])} | "
            f"{_pct(m['cpt50'])} | {_pct(m['cpt80'])} | "
            + " | ".join(_pct(m["cost_advantage_at_drop"][str(d)]) for d in DROPS)
            + f" | {ca_ci} |"
        )
    lines += [
        "",
        "Calibration (threshold from val for `max_quality_drop`; realised on test):",
        "",
        "| router | target | CA on val | CA on test | drop on test |",
        "|---|---|---|---|---|",
    ]
    for name, by_drop in r["calibration"].items():
        for drop, v in by_drop.items():
            lines.append(
                f"| {name} | {_pct(float(drop))} | {_pct(v['val_cost_advantage'])} | "
                f"{_pct(v['cost_advantage'])} | {_pct(v['drop'])} |"
            )
    if "cross_validation" in r:
        cv = r["cross_validation"]
        lines += [
            "",
            f"Cross-validation ({cv['folds']} test folds of ~{cv['fold_size']} rows; mean ± sd "
            "over folds):",
            "",
            "| curve | GR | "
            + " | ".join(f"CA@{100 * d:g}%" for d in DROPS)
            + " | CA / drop at max_quality_drop=1% (folds over) | at 5% (folds over) |",
            "|---" * (4 + len(DROPS)) + "|",
        ]
        for name in (*ROUTERS, *BASELINES):
            m = cv["metrics"][name]
            cells = [
                f"{_num(m['gap_recovered'][0])} ± {_num(m['gap_recovered'][1])}",
                *(
                    f"{_pct(m['cost_advantage_at_drop'][str(d)][0])} ± "
                    f"{_pct(m['cost_advantage_at_drop'][str(d)][1])}"
                    for d in DROPS
                ),
            ]
            for drop in KNOB_DROPS:
                c = m.get("calibration", {}).get(str(drop))
                cells.append(
                    f"{_pct(c['cost_advantage'][0])} / {_pct(c['drop'][0])} "
                    f"({c['folds_over_target']}/{cv['folds']})"
                    if c
                    else ""
                )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    """Parse the arguments, run every pair, write JSON, Markdown and plots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default=",".join(PAIR_KEYS), help="comma-separated keys")
    parser.add_argument("--quick", action="store_true", help="200 resamples, 3 folds, 1 repeat")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--cv-below", type=int, default=300, help="cross-validate below n test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="BLAS / torch threads")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.bootstrap, args.folds, args.repeats = 200, 3, 1
    limit_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    encoder = Encoder("default", cache=EmbeddingCache())
    results: dict[str, dict[str, Any]] = {}
    for key in args.pairs.split(","):
        spec = spec_by_key(key.strip())
        results[spec.key] = run_pair(spec, encoder, args)
        gr = results[spec.key]["test"]["metrics"]
        print(
            f"{spec.key}: GR "
            + ", ".join(f"{n} {_num(gr[n]['gap_recovered'])}" for n in ROUTERS)
            + f" ({results[spec.key]['seconds']} s)",
            flush=True,
        )
    payload = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "pairs": results,
    }
    write_json(args.output / "paper_reproduction.json", payload)
    (args.output / "paper_reproduction.md").write_text(markdown(results, args), encoding="utf-8")
    print(f"wrote {args.output / 'paper_reproduction.md'}")


def limit_threads(threads: int) -> None:
    """Cap BLAS and torch threads (oversubscribed BLAS threads are slow on shared cores)."""
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
