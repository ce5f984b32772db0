"""Which router makes the best routing decisions? Variants compared on the same pairs.

Every variant reads only the query and is trained on ``train``; its hyperparameters are
chosen on ``val`` (lowest validation BCE) and it is measured once on ``test``. Labels are the
paper's r_trans (t* found on train) unless the variant says otherwise. Variants:

* ``mlp (default)``: the library's default head, MLP(256) with AdamW and early stopping;
* ``mlp (swept)``: MLP width x dropout / weight decay, chosen on val;
* ``logistic (AdamW)``: ``train_head(hidden_sizes=())``, early-stopped like the MLP;
* ``logistic (exact L2)``: :func:`shared_router.training.logistic.fit_logistic`, Newton's method,
  L2 strength chosen on val (``Router(head_type="logistic")``);
* ``kNN``: mean label of the k most similar training queries (cosine), k chosen on val;
* ``text features``: logistic regression on cheap text statistics (length, digits, maths and
  code characters, line and option counts, ...);
* ``MiniLM + text features``: both, concatenated;
* ``aux stacked``: where the source has many models (mmlu_pro 31, zeroeval 40-48,
  alpaca_eval ~50, llmrouter_dcrouter 9), ridge regressions predict every model's quality
  from the embedding (out-of-fold on train); a logistic regression on those predictions and
  the embedding predicts the pair's label (auxiliary supervision: general difficulty);
* ``mlp multi-task aux``: one MLP trained on the pair's label and every model's quality at
  once (the auxiliary outputs weighted by 1 or 5, chosen on val);
* ``gap labels + logistic``: exact L2 logistic on ``(1 + q_small - q_large) / 2``: its
  expectation orders queries by the expected quality gap, which is what the cost-quality
  curve rewards (not one of the paper's labels);
* ``ensemble``: the mean of the exact-L2 logistic, kNN and aux-stacked probabilities;
* ``fine-tuned MiniLM`` (``--fine-tune-pair``, one pair): encoder and MLP head trained end to
  end (:func:`shared_router.training.fine_tune.fine_tune_encoder`), compared with the frozen
  variants on the same split.

Pairs whose test split has fewer than ``--cv-below`` rows are also cross-validated (the whole
pair in ``--folds`` folds; each fold the test set of variants trained on the rest, with 1/8 of
it as val). Calibration honesty: each variant's val scores build a calibration table, the
threshold for ``max_quality_drop=1%`` is applied on test, and the realised drop is reported.

Run from the repository root::

    python benchmarks/router_variants.py                    # every pair, ~15 min on 2 cores
    python benchmarks/router_variants.py --pairs alpaca-tulu2 --quick --fine-tune-pair none

Writes ``benchmarks/results/router_variants.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from paper_reproduction import fold_splits, limit_threads
from routing_data import (
    PAIR_KEYS,
    RESULTS,
    Embedder,
    PairSpec,
    auxiliary_scores,
    load_spec,
    spec_by_key,
    write_json,
)

from shared_router.data import PairData
from shared_router.encoders.encoder import Encoder
from shared_router.evaluation.curves import HEURISTIC_NAME
from shared_router.evaluation.report import evaluate_scores
from shared_router.model.calibration import CalibrationTable
from shared_router.training.fine_tune import fine_tune_encoder
from shared_router.training.labels import make_labels
from shared_router.training.logistic import fit_logistic
from shared_router.training.torch_head import train_head

DROPS = (0.005, 0.01, 0.02, 0.05)
MIN_AUX_MODELS = 5
KNN_K = (10, 25, 50, 100, 200)
KNN_PRIOR = 5.0  # pseudo-neighbours at the training mean, so no probability is 0 or 1
MLP_GRID = (
    {"hidden_sizes": (64,), "dropout": 0.1, "weight_decay": 1e-4},
    {"hidden_sizes": (256,), "dropout": 0.1, "weight_decay": 1e-4},
    {"hidden_sizes": (64,), "dropout": 0.5, "weight_decay": 1e-2},
    {"hidden_sizes": (256,), "dropout": 0.5, "weight_decay": 1e-2},
)
AUX_WEIGHTS = (1.0, 5.0)
RIDGE_ALPHA = 10.0
CONFIDENCES = (0.95, 0.99)


@dataclass(frozen=True)
class Split:
    """One train / val / test split of a pair, with embeddings, labels and aux targets."""

    train: PairData
    val: PairData
    test: PairData
    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    aux: dict[str, np.ndarray] | None

    @classmethod
    def build(cls, data: PairData, embed: Embedder, aux: np.ndarray | None) -> Split:
        """Split ``data`` by its ``splits``; r_trans labels with t* from train."""
        parts = {s: data.split(s) for s in ("train", "val", "test")}
        t_star = make_labels(parts["train"], "trans").t_star
        rows = {s: [i for i, v in enumerate(data.splits) if v == s] for s in parts}
        return cls(
            train=parts["train"],
            val=parts["val"],
            test=parts["test"],
            X={s: embed(p.queries) for s, p in parts.items()},
            y={s: make_labels(p, "trans", t_star=t_star).y for s, p in parts.items()},
            aux=None if aux is None else {s: aux[r] for s, r in rows.items()},
        )


Scores = tuple[np.ndarray, np.ndarray]
"""(val scores, test scores) of one variant."""


def bce(p: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities ``p`` against soft labels ``y``."""
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return float(np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q))))


def mlp(s: Split, **kw: Any) -> Scores:
    """An MLP head trained with :func:`train_head` (early stopping on val)."""
    head = train_head(
        s.X["train"], s.y["train"], X_val=s.X["val"], y_val=s.y["val"], progress=False, **kw
    )
    return head.predict_proba(s.X["val"]), head.predict_proba(s.X["test"])


def mlp_swept(s: Split) -> Scores:
    """The MLP configuration of ``MLP_GRID`` with the lowest val BCE."""
    fits = [mlp(s, **cfg) for cfg in MLP_GRID]
    return min(fits, key=lambda f: bce(f[0], s.y["val"]))


def exact_logistic(
    s: Split,
    features: Callable[[str], np.ndarray] | None = None,
    y: dict[str, np.ndarray] | None = None,
) -> Scores:
    """:func:`fit_logistic` on ``features(split)`` (default: embeddings), l2 chosen on val."""
    feats = features or (lambda part: s.X[part])
    labels = y or s.y
    fit = fit_logistic(feats("train"), labels["train"], X_val=feats("val"), y_val=labels["val"])
    return fit.head.predict_proba(feats("val")), fit.head.predict_proba(feats("test"))


def knn(s: Split) -> Scores:
    """Mean label of the k nearest training queries (cosine), k chosen on val BCE."""
    train = s.X["train"] / np.linalg.norm(s.X["train"], axis=1, keepdims=True)
    prior = float(s.y["train"].mean())

    def predict(part: str, k: int) -> np.ndarray:
        X = s.X[part] / np.linalg.norm(s.X[part], axis=1, keepdims=True)
        sims = X @ train.T
        k = min(k, train.shape[0] - 1)
        nearest = np.argpartition(-sims, k, axis=1)[:, :k]
        return (s.y["train"][nearest].sum(axis=1) + KNN_PRIOR * prior) / (k + KNN_PRIOR)

    best = min(KNN_K, key=lambda k: bce(predict("val", k), s.y["val"]))
    return predict("val", best), predict("test", best)


_OPTION = re.compile(r"^\s*(?:\(?[A-J][.)]|[A-J]:)\s", re.MULTILINE)


def text_features(queries: tuple[str, ...]) -> np.ndarray:
    """Cheap text statistics per query (before standardisation)."""
    rows = []
    for q in queries:
        n = max(len(q), 1)
        rows.append(
            [
                math.log1p(len(q)),
                math.log1p(len(q.split())),
                math.log1p(q.count("\n")),
                sum(c.isdigit() for c in q) / n,
                sum(c.isupper() for c in q) / n,
                sum(c in "+-*/=^<>()[]{}\\$" for c in q) / n,
                float("def " in q or "```" in q or "return " in q),
                float("$" in q or "\\frac" in q),
                float(q.count("?")),
                float(len(_OPTION.findall(q))),
            ]
        )
    return np.array(rows, dtype=np.float64)


def text_only(s: Split) -> Scores:
    """Exact L2 logistic on standardised text statistics."""
    feats = _standardised_text(s)
    return exact_logistic(s, lambda part: feats[part])


def text_plus_embedding(s: Split) -> Scores:
    """Exact L2 logistic on [embedding, text statistics / 10]."""
    feats = _standardised_text(s)
    return exact_logistic(s, lambda part: np.hstack([s.X[part], feats[part] / 10.0]))


def _standardised_text(s: Split) -> dict[str, np.ndarray]:
    raw = {part: text_features(getattr(s, part).queries) for part in ("train", "val", "test")}
    mean, sd = raw["train"].mean(axis=0), raw["train"].std(axis=0) + 1e-9
    return {part: (v - mean) / sd for part, v in raw.items()}


def _ridge_predict(X: np.ndarray, Y: np.ndarray, targets: list[np.ndarray]) -> list[np.ndarray]:
    """Per column of ``Y`` (NaN = missing), ridge from ``X`` (with bias), applied to targets."""
    outs = [np.empty((t.shape[0], Y.shape[1])) for t in targets]
    design = np.hstack([X, np.ones((len(X), 1))])
    for j in range(Y.shape[1]):
        known = ~np.isnan(Y[:, j])
        if known.sum() < 10 or np.nanstd(Y[:, j]) == 0:
            for out in outs:
                out[:, j] = np.nanmean(Y[:, j]) if known.any() else 0.0
            continue
        A = design[known]
        penalty = RIDGE_ALPHA * np.eye(A.shape[1])
        penalty[-1, -1] = 0.0
        coef = np.linalg.solve(A.T @ A + penalty, A.T @ Y[known, j])
        for out, target in zip(outs, targets, strict=True):
            out[:, j] = np.hstack([target, np.ones((len(target), 1))]) @ coef
    return outs


def _aux(s: Split) -> dict[str, np.ndarray]:
    if s.aux is None:
        raise ValueError("this variant needs auxiliary targets (a source with many models)")
    return s.aux


def aux_predictions(s: Split, folds: int = 5) -> dict[str, np.ndarray]:
    """Every model's predicted quality: out-of-fold on train, from all of train elsewhere."""
    X, Y = s.X["train"], _aux(s)["train"]
    oof = np.empty_like(Y)
    fold_of = np.arange(len(X)) % folds
    np.random.default_rng(0).shuffle(fold_of)
    for k in range(folds):
        inner = fold_of != k
        (oof[~inner],) = _ridge_predict(X[inner], Y[inner], [X[~inner]])
    val, test = _ridge_predict(X, Y, [s.X["val"], s.X["test"]])
    return {"train": oof, "val": val, "test": test}


def aux_stacked(s: Split) -> Scores:
    """Exact L2 logistic on [embedding, predicted quality of every model]."""
    preds = aux_predictions(s)
    return exact_logistic(s, lambda part: np.hstack([s.X[part], preds[part]]))


def multitask(s: Split) -> Scores:
    """An MLP with one output for the pair's label and one per model's quality."""
    fits = [_multitask_fit(s, weight) for weight in AUX_WEIGHTS]
    return min(fits, key=lambda f: bce(f[0], s.y["val"]))


def _multitask_fit(s: Split, aux_weight: float, hidden: int = 256, seed: int = 0) -> Scores:
    import torch

    torch.manual_seed(seed)
    targets = np.column_stack([s.y["train"], _aux(s)["train"]])
    known = torch.tensor(~np.isnan(targets), dtype=torch.float32)
    Y = torch.tensor(np.nan_to_num(targets), dtype=torch.float32)
    X = torch.tensor(s.X["train"], dtype=torch.float32)
    Xv = torch.tensor(s.X["val"], dtype=torch.float32)
    yv = torch.tensor(s.y["val"], dtype=torch.float32)
    weights = torch.full((targets.shape[1],), aux_weight / (targets.shape[1] - 1))
    weights[0] = 1.0
    net = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], hidden),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(hidden, targets.shape[1]),
    )
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
    best, best_state, stale = math.inf, {k: v.clone() for k, v in net.state_dict().items()}, 0
    for _ in range(200):
        net.train()
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(order), 64):
            rows = order[start : start + 64]
            loss = (loss_fn(net(X[rows]), Y[rows], reduction="none") * known[rows] * weights).sum()
            optimizer.zero_grad()
            (loss / len(rows)).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(net(Xv)[:, 0], yv))
        if val_loss < best - 1e-7:
            best, best_state, stale = (
                val_loss,
                {k: v.clone() for k, v in net.state_dict().items()},
                0,
            )
        else:
            stale += 1
            if stale >= 8:
                break
    net.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        val, test = (
            torch.sigmoid(net(torch.tensor(s.X[p], dtype=torch.float32))[:, 0]).numpy()
            for p in ("val", "test")
        )
    return val.astype(np.float64), test.astype(np.float64)


def gap_labels(s: Split) -> Scores:
    """Exact L2 logistic on expected-gap labels ``(1 + q_small - q_large) / 2``."""
    y = {
        part: (1.0 + getattr(s, part).small_quality - getattr(s, part).large_quality) / 2.0
        for part in ("train", "val", "test")
    }
    return exact_logistic(s, y=y)


VARIANTS: dict[str, Callable[[Split], Scores]] = {
    "mlp (default)": mlp,
    "mlp (swept)": mlp_swept,
    "logistic (AdamW)": lambda s: mlp(s, hidden_sizes=()),
    "logistic (exact L2)": exact_logistic,
    "kNN": knn,
    "text features": text_only,
    "MiniLM + text features": text_plus_embedding,
    "aux stacked": aux_stacked,
    "mlp multi-task aux": multitask,
    "gap labels + logistic": gap_labels,
}
AUX_VARIANTS = ("aux stacked", "mlp multi-task aux")
ENSEMBLE = "ensemble"
ENSEMBLE_OF = ("logistic (exact L2)", "kNN", "aux stacked")


def run_split(s: Split, quick: bool) -> dict[str, Scores]:
    """Val and test scores of every variant that applies to the split."""
    out: dict[str, Scores] = {}
    for name, fn in VARIANTS.items():
        if name in AUX_VARIANTS and s.aux is None:
            continue
        if quick and name in ("mlp (swept)", "mlp multi-task aux"):
            continue
        out[name] = fn(s)
    members = [out[n] for n in ENSEMBLE_OF if n in out]
    out[ENSEMBLE] = (
        np.mean([m[0] for m in members], axis=0),
        np.mean([m[1] for m in members], axis=0),
    )
    return out


def evaluate_split(s: Split, scores: Mapping[str, Scores]) -> dict[str, Any]:
    """Test metrics of every variant and the baselines, and calibration at 1% drop."""
    test = s.test
    report = evaluate_scores(
        {name: sc[1] for name, sc in scores.items()},
        test.small_quality,
        test.large_quality,
        queries=test.queries,
        drops=DROPS,
    )
    metrics = {m.name: m.to_dict() for m in report.metrics}
    large = test.large_quality.mean()
    for name, (val_scores, test_scores) in scores.items():
        metrics[name]["calibrated_1pct"] = {}
        for confidence in CONFIDENCES:
            table = CalibrationTable.from_scores(
                val_scores, s.val.small_quality, s.val.large_quality, confidence=confidence
            )
            small = test_scores >= table.threshold_for_quality_drop(0.01)
            routed = np.where(small, test.small_quality, test.large_quality).mean()
            metrics[name]["calibrated_1pct"][str(confidence)] = {
                "cost_advantage": float(small.mean()),
                "drop": float((large - routed) / large),
            }
    return {"n": report.n, "metrics": metrics}


def run_pair(spec: PairSpec, embed: Embedder, args: argparse.Namespace) -> dict[str, Any]:
    """Official split, and cross-validation when the test split is small."""
    started = time.perf_counter()
    data = load_spec(spec)
    names, aux = auxiliary_scores(spec, data.ids)
    aux_matrix = aux if len(names) >= MIN_AUX_MODELS else None
    official = Split.build(data, embed, aux_matrix)
    scores = run_split(official, args.quick)
    out: dict[str, Any] = {
        "source": spec.source,
        "small": spec.small,
        "large": spec.large,
        "aux_models": len(names) if aux_matrix is not None else 0,
        "test": evaluate_split(official, scores),
    }
    if len(official.test) < args.cv_below:
        folds = [
            evaluate_split(split, run_split(split, args.quick))
            for split in (
                Split.build(d, embed, aux_matrix) for d in fold_splits(data, args.folds, repeat=0)
            )
        ]
        out["cross_validation"] = {
            "folds": len(folds),
            "metrics": {name: _cv_summary(folds, name) for name in folds[0]["metrics"]},
        }
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def _cv_summary(folds: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Mean ± sd over folds of one curve's GR and CA@1%; calibration outcomes for variants."""
    rows = [f["metrics"][name] for f in folds]
    out: dict[str, Any] = {
        "gap_recovered": _mean_sd([m["gap_recovered"] for m in rows]),
        "ca1": _mean_sd([m["cost_advantage_at_drop"]["0.01"] for m in rows]),
    }
    if "calibrated_1pct" in rows[0]:
        out["calibrated_1pct"] = {
            str(c): {
                "cost_advantage": _mean_sd(
                    [m["calibrated_1pct"][str(c)]["cost_advantage"] for m in rows]
                ),
                "folds_over": sum(
                    m["calibrated_1pct"][str(c)]["drop"] > 0.01 + 1e-12 for m in rows
                ),
            }
            for c in CONFIDENCES
        }
    return out


def _mean_sd(values: list[float | None]) -> list[float]:
    finite = np.array([v for v in values if v is not None and not math.isnan(v)])
    if finite.size == 0:
        return [math.nan, math.nan]
    return [float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else 0.0]


def fine_tune_run(spec: PairSpec, embed: Embedder, args: argparse.Namespace) -> dict[str, Any]:
    """Fine-tune MiniLM end to end on one pair's train split; compare with frozen heads.

    Torch may use 2 threads here (the encoder's matrix products are large enough to gain).
    """
    import torch

    torch.set_num_threads(max(2, args.threads))
    data = load_spec(spec)
    s = Split.build(data, embed, None)
    rng = np.random.default_rng(args.seed)
    rows = np.arange(len(s.train))
    if len(rows) > args.fine_tune_rows:
        rows = np.sort(rng.choice(rows, args.fine_tune_rows, replace=False))
    train = s.train.take(rows)
    small = dataclasses.replace(
        s,
        train=train,
        X={**s.X, "train": s.X["train"][rows]},
        y={**s.y, "train": s.y["train"][rows]},
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        path, head = fine_tune_encoder(
            train.queries,
            small.y["train"],
            encoder=embed.encoder,
            output_dir=Path(folder) / "encoder",
            val_texts=s.val.queries,
            val_y=s.y["val"],
            epochs=args.fine_tune_epochs,
            patience=1,
            seed=args.seed,
            progress=False,
        )
        tuned = Encoder(path, max_tokens=embed.encoder.effective_max_tokens)
        scores = {
            "fine-tuned MiniLM + mlp": (
                head.predict_proba(tuned.encode(list(s.val.queries))),
                head.predict_proba(tuned.encode(list(s.test.queries))),
            )
        }
    seconds = time.perf_counter() - started
    scores["frozen MiniLM + mlp (same rows)"] = mlp(small)
    scores["frozen MiniLM + logistic (exact L2, same rows)"] = exact_logistic(small)
    return {
        "pair": spec.key,
        "train_rows": len(train),
        "epochs": args.fine_tune_epochs,
        "fine_tune_seconds": round(seconds, 1),
        "test": evaluate_split(small, scores),
    }


def _mean_cell(values: list[float], total: int) -> str:
    """The mean, with ``(k of n pairs)`` when some pairs lack the variant."""
    if not values:
        return "-"
    mean = _num(float(np.mean(values)))
    return mean if len(values) == total else f"{mean} ({len(values)} of {total} pairs)"


def _num(value: Any) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.3f}"
    )


def _pct(value: Any) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{100 * value:.1f}%"
    )


def markdown(
    results: Mapping[str, Any], fine_tune: Mapping[str, Any] | None, args: argparse.Namespace
) -> str:
    """The Markdown report."""
    pairs = results
    all_variants = list(dict.fromkeys(v for r in pairs.values() for v in r["test"]["metrics"]))
    variants = [v for v in all_variants if v not in (HEURISTIC_NAME, "random", "oracle")] + [
        HEURISTIC_NAME,
        "random",
        "oracle",
    ]
    lines = [
        "# Router variants: which router routes best?",
        "",
        "Every variant reads only the query; hyperparameters are chosen on `val` (lowest BCE), "
        "numbers are on `test`. GR: gap recovered. CA@1%: share sent small at <= 1% relative "
        "quality drop. Calibrated 1%: the threshold a calibration table on the variant's val "
        "scores gives for `max_quality_drop=0.01`, applied on test (cost advantage / realised "
        f"drop). Generated by `python benchmarks/router_variants.py` (seed {args.seed}"
        f"{', quick' if args.quick else ''}).",
        "",
        "## Gap recovered on the official test splits",
        "",
        "| variant | " + " | ".join(pairs) + " | mean |",
        "|---" * (len(pairs) + 2) + "|",
    ]
    for v in variants:
        vals = [r["test"]["metrics"].get(v, {}).get("gap_recovered") for r in pairs.values()]
        mean = _mean_cell([x for x in vals if x is not None], len(vals))
        lines.append(
            f"| {v} | "
            + " | ".join(
                _num(x) if v in pairs[k]["test"]["metrics"] else "-"
                for k, x in zip(pairs, vals, strict=True)
            )
            + f" | {mean} |"
        )
    lines += ["", "## Cost advantage at 1% drop on the official test splits (x random's)", ""]
    lines += [
        "| variant | " + " | ".join(pairs) + " | mean ratio |",
        "|---" * (len(pairs) + 2) + "|",
    ]
    for v in variants:
        cells, ratios = [], []
        for r in pairs.values():
            m = r["test"]["metrics"].get(v)
            if m is None:
                cells.append("-")
                continue
            ca = m["cost_advantage_at_drop"]["0.01"]
            rnd = r["test"]["metrics"]["random"]["cost_advantage_at_drop"]["0.01"]
            cells.append(f"{_pct(ca)} ({ca / rnd:.1f}x)" if rnd else _pct(ca))
            if rnd:
                ratios.append(ca / rnd)
        lines.append(f"| {v} | " + " | ".join(cells) + f" | {np.mean(ratios):.2f} |")
    cv = {k: r["cross_validation"] for k, r in pairs.items() if "cross_validation" in r}
    if cv:
        lines += ["", "## Cross-validated gap recovered (small pairs; mean ± sd over folds)", ""]
        lines += ["| variant | " + " | ".join(cv) + " | mean |", "|---" * (len(cv) + 2) + "|"]
        for v in variants:
            vals = [c["metrics"].get(v, {}).get("gap_recovered") for c in cv.values()]
            mean = _mean_cell([x[0] for x in vals if x is not None], len(vals))
            lines.append(
                f"| {v} | "
                + " | ".join("-" if x is None else f"{_num(x[0])} ± {_num(x[1])}" for x in vals)
                + f" | {mean} |"
            )
        lines += ["", "Cross-validated CA@1% (mean over folds):", ""]
        lines += ["| variant | " + " | ".join(cv) + " |", "|---" * (len(cv) + 1) + "|"]
        for v in variants:
            vals = [c["metrics"].get(v, {}).get("ca1") for c in cv.values()]
            lines.append(
                f"| {v} | " + " | ".join("-" if x is None else _pct(x[0]) for x in vals) + " |"
            )
    for confidence in CONFIDENCES:
        lines += [
            "",
            f"## Calibration honesty: max_quality_drop=1% on val (bound at {confidence:g} "
            "confidence), realised on test",
            "",
            "Official split: cost advantage / realised drop on test. Cross-validated pairs: mean "
            "cost advantage and the folds whose realised drop is over 1%.",
            "",
            "| variant | " + " | ".join(pairs) + " |",
            "|---" * (len(pairs) + 1) + "|",
        ]
        for v in variants[:-3]:
            cells = []
            for k, r in pairs.items():
                m = r["test"]["metrics"].get(v)
                if m is None:
                    cells.append("-")
                    continue
                c = m["calibrated_1pct"][str(confidence)]
                cell = f"{_pct(c['cost_advantage'])} / {_pct(c['drop'])}"
                if k in cv:
                    f = cv[k]["metrics"][v]["calibrated_1pct"][str(confidence)]
                    cell += (
                        f"; CV {_pct(f['cost_advantage'][0])}, over: "
                        f"{f['folds_over']}/{cv[k]['folds']}"
                    )
                cells.append(cell)
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
    if fine_tune:
        ft = fine_tune["test"]["metrics"]
        lines += [
            "",
            f"## Fine-tuning MiniLM end to end ({fine_tune['pair']}, {fine_tune['train_rows']} "
            f"train rows, {fine_tune['epochs']} epochs, {fine_tune['fine_tune_seconds']} s on CPU)",
            "",
            "| variant | GR | " + " | ".join(f"CA@{100 * d:g}%" for d in DROPS) + " |",
            "|---" * (2 + len(DROPS)) + "|",
        ]
        for name, m in ft.items():
            lines.append(
                f"| {name} | {_num(m['gap_recovered'])} | "
                + " | ".join(_pct(m["cost_advantage_at_drop"][str(d)]) for d in DROPS)
                + " |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse the arguments, run the pairs (and the fine-tuning run), write JSON and Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default=",".join(PAIR_KEYS), help="comma-separated keys")
    parser.add_argument("--quick", action="store_true", help="skip the slow swept variants")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cv-below", type=int, default=300, help="cross-validate below n test")
    parser.add_argument("--fine-tune-pair", default="alpaca-tulu2", help="a pair key or 'none'")
    parser.add_argument("--fine-tune-rows", type=int, default=3000)
    parser.add_argument("--fine-tune-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="BLAS / torch threads")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    limit_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    embed = Embedder()
    results: dict[str, Any] = {}
    for key in args.pairs.split(","):
        spec = spec_by_key(key.strip())
        results[spec.key] = run_pair(spec, embed, args)
        m = results[spec.key]["test"]["metrics"]
        best = max(
            (n for n in m if n not in ("random", "oracle")),
            key=lambda n: m[n]["gap_recovered"] or -9,
        )
        print(
            f"{spec.key}: best on test {best} GR {_num(m[best]['gap_recovered'])} "
            f"({results[spec.key]['seconds']} s)",
            flush=True,
        )
    fine_tune = None
    if args.fine_tune_pair != "none":
        fine_tune = fine_tune_run(spec_by_key(args.fine_tune_pair), embed, args)
        print(f"fine-tuning: {fine_tune['fine_tune_seconds']} s", flush=True)
    payload = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "pairs": results,
        "fine_tune": fine_tune,
    }
    write_json(args.output / "router_variants.json", payload)
    (args.output / "router_variants.md").write_text(
        markdown(results, fine_tune, args), encoding="utf-8"
    )
    print(f"wrote {args.output / 'router_variants.md'}")


if __name__ == "__main__":
    main()
