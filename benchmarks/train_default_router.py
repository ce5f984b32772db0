"""Reproduce the default router bundled in ``shared_router/model/default/``, and measure how it
generalises to sources it never saw.

The default router predicts general difficulty: the (small, large) pairs of
:data:`TRAINING_PAIRS` are pooled, each pair gives r_trans labels on its ``train`` split, and the
labels of one query across pairs are averaged. The head early-stops on the pooled ``val`` rows
and is calibrated on every pair's ``val`` rows (each row with its own pair's qualities). The
model card reports each pair's ``test`` split beside random, oracle and the length heuristic.

``--generalisation`` trains the same recipe once per source with that source left out, and
evaluates on every pair of the left-out source (all its rows: none was trained on), plus
``mot_cascade_date``, which is never trained on (no licence).

Run from the repository root (embeddings are cached in ~/.cache/hybrid-llm)::

    python benchmarks/train_default_router.py                  # writes shared_router/model/default/
    python benchmarks/train_default_router.py -o /tmp/router   # elsewhere
    python benchmarks/train_default_router.py --generalisation # results/default_generalisation.*
"""

from __future__ import annotations

import argparse
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from routing_data import PAIRS, REPO, RESULTS, PairSpec, load_spec, write_json

from shared_router.data import PairData
from shared_router.encoders.bert_folder import Precision
from shared_router.encoders.cache import EmbeddingCache
from shared_router.encoders.encoder import Encoder
from shared_router.evaluation.curves import HEURISTIC_NAME
from shared_router.evaluation.report import evaluate_scores
from shared_router.routing.router import Router
from shared_router.training.labels import make_labels

# mot_cascade_date has no licence: it is test data only, never in a shipped router.
TEST_ONLY_SOURCES = frozenset({"mot_cascade_date"})
TRAINING_PAIRS = tuple(spec for spec in PAIRS if spec.source not in TEST_ONLY_SOURCES)
MAX_TRAIN_PER_SOURCE = 4000
SHOWN_CURVES = ("router", HEURISTIC_NAME, "random", "oracle")


def pooled_split(
    pairs: Sequence[tuple[PairSpec, PairData]], split: str, seed: int, centred: bool = False
) -> tuple[list[str], np.ndarray]:
    """Queries of one split with their r_trans labels averaged over the pairs that have them.

    Training queries are capped at :data:`MAX_TRAIN_PER_SOURCE` per source so that one large
    source does not decide what "difficult" means. ``centred`` moves each pair's labels to a
    mean of 0.5 (``0.5 + (y - mean) / 2``) first, so that the head learns which queries are
    easier than others of the same pair rather than which pairs are close.
    """
    labels_by_query: dict[str, list[float]] = defaultdict(list)
    source_of: dict[str, str] = {}
    for spec, data in pairs:
        rows = data.split(split)
        labels = make_labels(rows, "trans").y
        if centred:
            labels = 0.5 + (labels - labels.mean()) / 2
        for query, y in zip(rows.queries, labels, strict=True):
            labels_by_query[query].append(float(y))
            source_of[query] = spec.source
    by_source: dict[str, list[str]] = defaultdict(list)
    for query in sorted(labels_by_query):
        by_source[source_of[query]].append(query)
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    for source in sorted(by_source):
        queries = by_source[source]
        if split == "train" and len(queries) > MAX_TRAIN_PER_SOURCE:
            keep = sorted(rng.choice(len(queries), MAX_TRAIN_PER_SOURCE, replace=False))
            queries = [queries[k] for k in keep]
        texts.extend(queries)
    return texts, np.array([np.mean(labels_by_query[q]) for q in texts])


def train_pooled(
    pairs: Sequence[tuple[PairSpec, PairData]],
    *,
    head: str,
    seed: int,
    name: str,
    centred: bool = False,
    precision: Precision = "fp32",
) -> Router:
    """Train and calibrate the pooled router on ``pairs``."""
    train_texts, train_y = pooled_split(pairs, "train", seed, centred)
    val_texts, val_y = pooled_split(pairs, "val", seed, centred)
    print(f"{name}: train {len(train_texts)} queries, val {len(val_texts)}")
    router = Router(
        Encoder("default", precision=precision, cache=EmbeddingCache()),
        head_type="logistic" if head == "logistic" else "mlp",
        hidden_sizes=() if head == "logistic" else tuple(int(h) for h in head.split(",")),
        seed=seed,
        name=name,
        progress=False,
    )
    router.fit(train_texts, train_y, val_texts=val_texts, val_y=val_y)
    vals = [data.split("val") for _, data in pairs]
    router.calibrate(
        [q for val in vals for q in val.queries],
        np.concatenate([val.small_quality for val in vals]),
        np.concatenate([val.large_quality for val in vals]),
    )
    router.label_type_ = "trans"
    router.metadata_.update(
        quality_metric="per source: binary correctness, AlpacaEval judge preference",
        training_data_hash=hashlib.sha256(
            "".join(data.data_hash for _, data in pairs).encode()
        ).hexdigest(),
        pairs=[{"source": s.source, "small": s.small, "large": s.large} for s, _ in pairs],
        training_rows=len(train_texts),
    )
    return router


def evaluate_on(router: Router, rows: PairData) -> dict[str, Any]:
    """The router beside random, oracle and the length heuristic on ``rows``."""
    report = evaluate_scores(
        router.score(list(rows.queries)),
        rows.small_quality,
        rows.large_quality,
        queries=list(rows.queries),
    )
    return {name: report.metric(name).to_dict() for name in SHOWN_CURVES} | {
        "n": len(rows),
        "small_mean": report.small_mean,
        "large_mean": report.large_mean,
    }


def build_default(output: Path, *, head: str, seed: int, precision: Precision) -> None:
    """Train the bundled router on every training pair and save it with its metrics and card.

    The card holds each training pair's ``test`` split and, under ``held_out_source``, the
    leave-one-source-out results of the same recipe (what a user gets on a source it never saw).
    """
    pairs = [(spec, load_spec(spec)) for spec in TRAINING_PAIRS]
    router = train_pooled(
        pairs, head=head, seed=seed, name="hybrid-llm-default-v0", precision=precision
    )
    held_out = leave_one_source_out(head=head, seed=seed, centred=False, precision=precision)
    router.metadata_["metrics"] = {
        "test": {spec.key: evaluate_on(router, data.split("test")) for spec, data in pairs},
        "held_out_source": held_out,
    }
    router.metadata_["description"] = _description(pairs, held_out, precision)
    router.save(output)
    for key, metrics in router.metadata_["metrics"]["test"].items():
        print(f"{key}: gap recovered {metrics['router']['gap_recovered']:.3f}")
    print(f"saved -> {output}")


def _description(
    pairs: Sequence[tuple[PairSpec, PairData]], held_out: dict[str, Any], precision: str
) -> str:
    """The model card's "About this router": training data, held-out results, known limits."""
    lines = [
        f"A generic difficulty router: all-MiniLM-L6-v2 ({precision}) + an exact-L2 logistic "
        "head, trained on r_trans labels of these (small, large) pairs from public routing "
        f"data, averaged per query, at most {MAX_TRAIN_PER_SOURCE} training queries per source, "
        "calibrated on every pair's `val` rows:",
        "",
    ]
    lines += [f"- {spec.source}: {spec.small} -> {spec.large} ({spec.signal})" for spec, _ in pairs]
    above = [
        key
        for key, row in held_out.items()
        if all(
            row["router"]["cost_advantage_at_drop"][d] > row["random"]["cost_advantage_at_drop"][d]
            for d in ("0.01", "0.02", "0.05")
        )
    ]
    lines += [
        "",
        "Held-out sources (`metrics.held_out_source`, rows `held_out_source.<pair>`): the same "
        "recipe trained without a source and measured on all of its rows. Above random at 1, 2 "
        f"and 5% drop on {len(above)} of {len(held_out)} pairs ({', '.join(above) or 'none'}).",
        "",
        "Known limits:",
        "",
        "- It predicts general difficulty, not your pair: on mmlu_pro, CRUX and two of the "
        "AlpacaEval pairs it is at or below random when those sources are held out. Train a "
        "router for your own pair (`hybrid-llm build`) before relying on the savings.",
        "- The calibration promises its quality levels on the pooled training pairs' val rows; "
        "on another pair the realised drop can differ. Recalibrate on your own held-out queries "
        "(`hybrid-llm calibrate`).",
        "- English prompts only; texts over 256 word pieces keep their first quarter and end.",
        f"- Routes on {precision} vectors: load it with the encoder it was trained on (automatic "
        "through `Router.load`).",
    ]
    return "\n".join(lines)


def leave_one_source_out(
    *, head: str, seed: int, centred: bool, precision: Precision
) -> dict[str, dict[str, Any]]:
    """Train without each source in turn; evaluate on all rows of the left-out source."""
    loaded = [(spec, load_spec(spec)) for spec in PAIRS]
    sources = sorted({spec.source for spec, _ in loaded})
    results: dict[str, dict[str, Any]] = {}
    for held_out in sources:
        training = [
            (spec, data)
            for spec, data in loaded
            if spec.source != held_out and spec.source not in TEST_ONLY_SOURCES
        ]
        router = train_pooled(
            training,
            head=head,
            seed=seed,
            name=f"without-{held_out}",
            centred=centred,
            precision=precision,
        )
        for spec, data in loaded:
            if spec.source == held_out:
                results[spec.key] = {"held_out_source": held_out, **evaluate_on(router, data)}
    return results


def generalisation(*, head: str, seed: int, centred: bool, precision: Precision) -> None:
    """Leave-one-source-out results as JSON and Markdown in ``benchmarks/results``."""
    results = leave_one_source_out(head=head, seed=seed, centred=centred, precision=precision)
    stem = "default_generalisation" + ("_centred" if centred else "")
    write_json(RESULTS / f"{stem}.json", results)
    (RESULTS / f"{stem}.md").write_text(_markdown(results), encoding="utf-8")
    print(_markdown(results))


def _markdown(results: dict[str, dict[str, Any]]) -> str:
    drops = ("0.01", "0.02", "0.05")
    lines = [
        "| pair (held-out source) | n | curve | gap recovered | "
        + " | ".join(f"CA@{float(d):.0%}" for d in drops)
        + " |",
        "|---|---|---|---|" + "---|" * len(drops),
    ]
    for key, row in results.items():
        for curve in SHOWN_CURVES:
            metrics = row[curve]
            at = metrics["cost_advantage_at_drop"]
            gap = metrics["gap_recovered"]
            cells = " | ".join(f"{at[d]:.3f}" for d in drops)
            lines.append(
                f"| {key} ({row['held_out_source']}) | {row['n']} | {curve} | "
                f"{'n/a' if gap is None else f'{gap:.3f}'} | {cells} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=REPO / "shared_router" / "default")
    parser.add_argument(
        "--head", default="logistic", help="'logistic' (exact L2) or MLP hidden sizes, e.g. 256."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--precision", choices=("fp32", "int8"), default="int8", help="The encoder's precision."
    )
    parser.add_argument("--generalisation", action="store_true", help="Leave-one-source-out.")
    parser.add_argument(
        "--centred", action="store_true", help="Centre each pair's labels on 0.5 first."
    )
    args = parser.parse_args()
    if args.generalisation:
        generalisation(
            head=args.head, seed=args.seed, centred=args.centred, precision=args.precision
        )
    else:
        build_default(args.output, head=args.head, seed=args.seed, precision=args.precision)


if __name__ == "__main__":
    main()
