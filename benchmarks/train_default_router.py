"""Reproduce the default router bundled in ``shared_router/model/default/``, and measure how it
generalises to sources it never saw.

The default router predicts general difficulty: the (small, large) pairs of a recipe
(:data:`RECIPES`; the bundled one is :data:`SHIPPED_RECIPE`) are pooled, each pair gives r_trans
labels on its ``train`` split, and the labels of one query (normalised text) across pairs are
averaged. The head early-stops on the pooled ``val`` rows and is calibrated on every pair's
``val`` rows (each row with its own pair's qualities). No router trains or calibrates on a
question of :data:`MEASURED_ONLY_SOURCES`, also where another source repeats it. The model card
reports each pair's ``test`` split beside random, oracle and the length heuristic.

``--generalisation`` trains every recipe once per source with that source left out (and its
questions dropped from the other sources), and evaluates on every pair of the left-out source
(all its rows: none was trained on), the measured-only sources included; it writes the recipes
side by side with a summary over the pairs and the shipping decision of :func:`ship_decision`.

Run from the repository root (embeddings are cached in ~/.cache/hybrid-llm)::

    python benchmarks/train_default_router.py                  # writes shared_router/model/default/
    python benchmarks/train_default_router.py -o /tmp/router   # elsewhere
    python benchmarks/train_default_router.py --generalisation # results/default_generalisation_v1.*
    python benchmarks/train_default_router.py -o /tmp/unseen --without mmlu_pro  # for replays
"""

from __future__ import annotations

import argparse
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from routing_data import (
    ARENA_PAIRS,
    MEASURED_ONLY_PAIRS,
    PAIRS,
    REPO,
    RESULTS,
    PairSpec,
    load_spec,
    normalise_query,
    normalised_queries,
    without_queries,
    write_json,
)

from shared_router.data import PairData
from shared_router.encoders.bert_folder import Precision
from shared_router.encoders.cache import EmbeddingCache
from shared_router.encoders.encoder import Encoder
from shared_router.evaluation.curves import HEURISTIC_NAME
from shared_router.evaluation.report import evaluate_scores
from shared_router.routing.router import Router
from shared_router.training.labels import make_labels

TEST_ONLY_SOURCES = frozenset({"mot_cascade_date", "routerbench_subset", "routerdc_7b_pool"})
"""Sources without a licence: test data only, never in a shipped router."""
MEASURED_ONLY_SOURCES = TEST_ONLY_SOURCES | {"commongen_eval", "llmfao"}
"""Sources routers are measured on and never trained on: the test-only ones, ``commongen_eval``
(one prompt template for every query, so a query-only router has nothing to learn from it) and
``llmfao`` (19 prompts)."""
_TODAYS_PAIRS = tuple(spec for spec in PAIRS if spec.source not in MEASURED_ONLY_SOURCES)
RECIPES: dict[str, tuple[PairSpec, ...]] = {
    "v0": _TODAYS_PAIRS,
    "v1": (*_TODAYS_PAIRS, *ARENA_PAIRS),
}
"""The training pairs of each recipe: ``v0`` the public benchmark pairs, ``v1`` those and the
real Chatbot Arena prompts of ``arena_bench_v1``."""
SHIPPED_RECIPE = "v0"
"""The recipe of the bundled router (chosen by ``--generalisation``, see :func:`ship_decision`:
``v1`` did not beat ``v0`` and the length heuristic, see results/default_generalisation_v1.md).
The bundled folder predates the cross-source exclusion of measured-only questions and the
batch-invariant int8 LayerNorm, so a rebuild differs from it slightly."""
TRAINING_PAIRS = RECIPES[SHIPPED_RECIPE]
MEASURED_PAIRS = (*PAIRS, *ARENA_PAIRS, *MEASURED_ONLY_PAIRS)
"""Every pair leave-one-source-out evaluates on."""
BUNDLED_FOLDER = REPO / "shared_router" / "model" / "default"
"""Where the bundled router lives (the default ``--output``)."""
MAX_TRAIN_PER_SOURCE = 4000
SUMMARY_MIN_ROWS = 100
"""Held-out pairs with fewer rows (``llmfao``'s 19) are shown, not summarised."""
SHOWN_CURVES = ("router", HEURISTIC_NAME, "random", "oracle")
BASELINES = (HEURISTIC_NAME, "random", "oracle")
DROPS = ("0.01", "0.02", "0.05")


def pooled_split(
    pairs: Sequence[tuple[PairSpec, PairData]], split: str, seed: int, centred: bool = False
) -> tuple[list[str], np.ndarray]:
    """Queries of one split with their r_trans labels averaged over the pairs that have them.

    A query is its normalised text (:func:`routing_data.normalise_query`), so one question
    of several sources is one training row. Training queries are capped at
    :data:`MAX_TRAIN_PER_SOURCE` per source so that one large source does not decide what
    "difficult" means. ``centred`` moves each pair's labels to a mean of 0.5
    (``0.5 + (y - mean) / 2``) first, so that the head learns which queries are easier than
    others of the same pair rather than which pairs are close. Pairs without rows in ``split``
    add nothing.
    """
    labels_by_query: dict[str, list[float]] = defaultdict(list)
    text_of: dict[str, str] = {}
    source_of: dict[str, str] = {}
    for spec, data in pairs:
        if split not in data.split_names:
            continue
        rows = data.split(split)
        labels = make_labels(rows, "trans").y
        if centred:
            labels = 0.5 + (labels - labels.mean()) / 2
        for query, y in zip(rows.queries, labels, strict=True):
            key = normalise_query(query)
            labels_by_query[key].append(float(y))
            text_of.setdefault(key, query)
            source_of.setdefault(key, spec.source)
    by_source: dict[str, list[str]] = defaultdict(list)
    for key in sorted(labels_by_query, key=text_of.__getitem__):
        by_source[source_of[key]].append(key)
    rng = np.random.default_rng(seed)
    keys: list[str] = []
    for source in sorted(by_source):
        queries = by_source[source]
        if split == "train" and len(queries) > MAX_TRAIN_PER_SOURCE:
            keep = sorted(rng.choice(len(queries), MAX_TRAIN_PER_SOURCE, replace=False))
            queries = [queries[k] for k in keep]
        keys.extend(queries)
    return [text_of[k] for k in keys], np.array([np.mean(labels_by_query[k]) for k in keys])


def queries_of(
    loaded: Iterable[tuple[PairSpec, PairData]], sources: Iterable[str]
) -> frozenset[str]:
    """The normalised queries of every row of ``sources`` among the loaded pairs."""
    wanted = set(sources)
    return frozenset().union(
        *(normalised_queries(data) for spec, data in loaded if spec.source in wanted)
    )


def train_pooled(
    pairs: Sequence[tuple[PairSpec, PairData]],
    *,
    head: str,
    seed: int,
    name: str,
    centred: bool = False,
    precision: Precision = "fp32",
    excluded: frozenset[str] = frozenset(),
) -> Router:
    """Train and calibrate the pooled router on ``pairs``.

    Args:
        pairs: The training pairs with their rows.
        head: ``"logistic"`` or MLP hidden sizes such as ``"256"``.
        seed: The seed of the per-source cap and the head.
        name: The router's name.
        centred: Centre each pair's labels on 0.5 first (see :func:`pooled_split`).
        precision: The encoder's precision.
        excluded: Normalised queries no row of which is trained or calibrated on (questions of
            held-out and measured-only sources that other sources repeat).
    """
    pairs = [(spec, without_queries(data, excluded)) for spec, data in pairs]
    trained = frozenset().union(
        *(
            normalised_queries(data.split("train"))
            for _, data in pairs
            if "train" in data.split_names
        )
    )
    val_pairs = [
        (spec, without_queries(data.split("val"), trained))
        for spec, data in pairs
        if "val" in data.split_names
    ]
    train_texts, train_y = pooled_split(pairs, "train", seed, centred)
    val_texts, val_y = pooled_split(val_pairs, "val", seed, centred)
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
    vals = [data for _, data in val_pairs if len(data)]
    router.calibrate(
        [q for val in vals for q in val.queries],
        np.concatenate([val.small_quality for val in vals]),
        np.concatenate([val.large_quality for val in vals]),
    )
    router.label_type_ = "trans"
    signals = dict.fromkeys(f"{spec.source}: {spec.signal}" for spec, _ in pairs)
    router.metadata_.update(
        quality_metric="per source: " + "; ".join(signals),
        training_data_hash=hashlib.sha256(
            "".join(data.data_hash for _, data in pairs).encode()
        ).hexdigest(),
        pairs=[{"source": s.source, "small": s.small, "large": s.large} for s, _ in pairs],
        training_rows=len(train_texts),
    )
    return router


def evaluate_on(router: Router, rows: PairData) -> dict[str, Any]:
    """The router beside random, oracle and the length heuristic on ``rows``."""
    return compare_on({"router": router}, rows)


def compare_on(routers: Mapping[str, Router], rows: PairData) -> dict[str, Any]:
    """Each router (by name) beside random, oracle and the length heuristic on ``rows``."""
    queries = list(rows.queries)
    report = evaluate_scores(
        {name: router.score(queries) for name, router in routers.items()},
        rows.small_quality,
        rows.large_quality,
        queries=queries,
    )
    return {name: report.metric(name).to_dict() for name in (*routers, *BASELINES)} | {
        "n": len(rows),
        "small_mean": report.small_mean,
        "large_mean": report.large_mean,
    }


def build_default(output: Path, *, head: str, seed: int, precision: Precision) -> None:
    """Train the bundled router on every training pair and save it with its metrics and card.

    The card holds each training pair's ``test`` split and, under ``held_out_source``, the
    leave-one-source-out results of the same recipe (what a user gets on a source it never saw).
    """
    loaded = [(spec, load_spec(spec)) for spec in MEASURED_PAIRS]
    pairs = [(spec, data) for spec, data in loaded if spec in TRAINING_PAIRS]
    excluded = queries_of(loaded, MEASURED_ONLY_SOURCES) | frozenset().union(
        *(normalised_queries(data.split("test")) for _, data in pairs)
    )
    router = train_pooled(
        pairs,
        head=head,
        seed=seed,
        name=f"hybrid-llm-default-{SHIPPED_RECIPE}",
        precision=precision,
        excluded=excluded,
    )
    held_out = {
        key: {
            "held_out_source": row["held_out_source"],
            "router": row[SHIPPED_RECIPE],
            **{name: row[name] for name in (*BASELINES, "n", "small_mean", "large_mean")},
        }
        for key, row in leave_one_source_out(
            loaded, head=head, seed=seed, centred=False, precision=precision
        ).items()
    }
    router.metadata_["metrics"] = {
        "test": {spec.key: evaluate_on(router, data.split("test")) for spec, data in pairs},
        "held_out_source": held_out,
    }
    router.metadata_["description"] = _description(pairs, held_out, precision)
    router.save(output)
    for key, metrics in router.metadata_["metrics"]["test"].items():
        print(f"{key}: gap recovered {metrics['router']['gap_recovered']:.3f}")
    print(f"saved -> {output}")


def build_without(
    output: Path, sources: Sequence[str], *, head: str, seed: int, precision: Precision
) -> None:
    """Train the bundled recipe without ``sources`` (and their questions elsewhere) and save it.

    A router that has never seen a pair, to start a live replay of that pair from
    (``live_replay.py --router``), as a user's pair the bundled router did not train on. No
    leave-one-source-out metrics are computed.
    """
    loaded = [(spec, load_spec(spec)) for spec in MEASURED_PAIRS]
    unknown = set(sources) - {spec.source for spec in TRAINING_PAIRS}
    if unknown:
        raise SystemExit(f"--without: not a source of the bundled recipe: {sorted(unknown)}")
    pairs = [
        (spec, data)
        for spec, data in loaded
        if spec in TRAINING_PAIRS and spec.source not in sources
    ]
    excluded = queries_of(loaded, MEASURED_ONLY_SOURCES | set(sources))
    router = train_pooled(
        pairs,
        head=head,
        seed=seed,
        name=f"hybrid-llm-default-{SHIPPED_RECIPE}-without-{'-'.join(sorted(sources))}",
        precision=precision,
        excluded=excluded,
    )
    router.save(output)
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
            for d in DROPS
        )
    ]
    lines += [
        "",
        "No question of a measured-only source (" + ", ".join(sorted(MEASURED_ONLY_SOURCES)) + ") "
        "is trained or calibrated on, also where another source repeats it.",
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
    loaded: Sequence[tuple[PairSpec, PairData]],
    *,
    head: str,
    seed: int,
    centred: bool,
    precision: Precision,
) -> dict[str, dict[str, Any]]:
    """Train every recipe without each source in turn; evaluate on all rows of that source.

    The left-out source's questions and every measured-only source's are dropped from the
    other sources' rows too. A recipe whose training pairs for a fold equal another's reuses
    its router. Each result row holds one curve per recipe (named as in :data:`RECIPES`).
    """
    always_excluded = queries_of(loaded, MEASURED_ONLY_SOURCES)
    results: dict[str, dict[str, Any]] = {}
    for held_out in sorted({spec.source for spec, _ in loaded}):
        excluded = always_excluded | queries_of(loaded, {held_out})
        trained: dict[tuple[str, ...], Router] = {}
        routers: dict[str, Router] = {}
        for recipe, recipe_pairs in RECIPES.items():
            training = [
                (spec, data)
                for spec, data in loaded
                if spec in recipe_pairs and spec.source != held_out
            ]
            fold = tuple(spec.key for spec, _ in training)
            if fold not in trained:
                trained[fold] = train_pooled(
                    training,
                    head=head,
                    seed=seed,
                    name=f"{recipe}-without-{held_out}",
                    centred=centred,
                    precision=precision,
                    excluded=excluded,
                )
            routers[recipe] = trained[fold]
        for spec, data in loaded:
            if spec.source == held_out:
                results[spec.key] = {"held_out_source": held_out, **compare_on(routers, data)}
    return results


def summarise(results: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Means over the pairs ``keys`` and, per recipe, the pairs where it beats the heuristic.

    Returns:
        ``{"pairs": n, "mean": {curve: {"gap_recovered", "CA@<drop>"...}},
        "beats_heuristic": {recipe: n}, "v1_beats_v0": n}`` (gap recovered, per pair).
    """
    curves = (*RECIPES, *BASELINES)
    rows = [results[key] for key in keys]
    undefined = [
        key
        for key, row in zip(keys, rows, strict=True)
        if any(
            value is None
            for curve in curves
            for value in (
                row[curve]["gap_recovered"],
                *row[curve]["cost_advantage_at_drop"].values(),
            )
        )
    ]
    if undefined:
        raise SystemExit(f"pairs without a gap recovered or cost advantage: {undefined}")
    mean = {
        curve: {"gap_recovered": float(np.mean([row[curve]["gap_recovered"] for row in rows]))}
        | {
            f"CA@{d}": float(np.mean([row[curve]["cost_advantage_at_drop"][d] for row in rows]))
            for d in DROPS
        }
        for curve in curves
    }

    def wins(curve: str, other: str) -> int:
        return sum(row[curve]["gap_recovered"] > row[other]["gap_recovered"] for row in rows)

    return {
        "pairs": len(rows),
        "mean": mean,
        "beats_heuristic": {recipe: wins(recipe, HEURISTIC_NAME) for recipe in RECIPES},
        "v1_beats_v0": wins("v1", "v0"),
    }


def ship_decision(summary: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether ``v1`` replaces ``v0`` in the package, with the reason in words.

    The criterion, on the held-out pairs with at least :data:`SUMMARY_MIN_ROWS` rows: ``v1``'s
    mean gap recovered is above ``v0``'s and above the length heuristic's, and ``v1`` beats the
    heuristic on at least as many pairs as ``v0`` does.
    """
    v0, v1, heuristic = (summary["mean"][c]["gap_recovered"] for c in ("v0", "v1", HEURISTIC_NAME))
    beats = summary["beats_heuristic"]
    checks = {
        f"mean gap recovered: v1 {v1:.3f} above v0 {v0:.3f}": v1 > v0,
        f"mean gap recovered: v1 {v1:.3f} above the heuristic {heuristic:.3f}": v1 > heuristic,
        f"pairs where it beats the heuristic: v1 {beats['v1']} at least v0 {beats['v0']}": (
            beats["v1"] >= beats["v0"]
        ),
    }
    failed = [check for check, ok in checks.items() if not ok]
    reason = "; ".join(f"{check}: {'yes' if ok else 'NO'}" for check, ok in checks.items())
    return not failed, reason


def generalisation(*, head: str, seed: int, centred: bool, precision: Precision) -> None:
    """Leave-one-source-out results of every recipe, JSON and Markdown in ``benchmarks/results``."""
    loaded = [(spec, load_spec(spec)) for spec in MEASURED_PAIRS]
    results = leave_one_source_out(
        loaded, head=head, seed=seed, centred=centred, precision=precision
    )
    summarised = [key for key, row in results.items() if row["n"] >= SUMMARY_MIN_ROWS]
    never_trained = [
        key for key in summarised if results[key]["held_out_source"] in MEASURED_ONLY_SOURCES
    ]
    summary = {
        "all pairs": summarise(results, summarised),
        "measured-only sources": summarise(results, never_trained),
    }
    ship, reason = ship_decision(summary["all pairs"])
    payload = {
        "recipes": {name: [spec.key for spec in pairs] for name, pairs in RECIPES.items()},
        "pairs": results,
        "summary": summary,
        "ship_v1": ship,
        "criterion": reason,
    }
    stem = "default_generalisation_v1" + ("_centred" if centred else "")
    write_json(RESULTS / f"{stem}.json", payload)
    markdown = _markdown(results, summary, ship, reason)
    (RESULTS / f"{stem}.md").write_text(markdown, encoding="utf-8")
    print(markdown)


def _markdown(
    results: Mapping[str, Mapping[str, Any]],
    summary: Mapping[str, Mapping[str, Any]],
    ship: bool,
    reason: str,
) -> str:
    curves = (*RECIPES, *BASELINES)
    lines = [
        "Leave-one-source-out: each recipe trained without the held-out source (and without any "
        "question of it or of a measured-only source that another source repeats), measured on "
        "all rows of the held-out source. Recipes: "
        + "; ".join(
            f"`{name}` = {', '.join(spec.key for spec in pairs)}" for name, pairs in RECIPES.items()
        )
        + ". Measured-only sources (never trained on): "
        + ", ".join(sorted(MEASURED_ONLY_SOURCES))
        + ". CA@x: cost advantage (share of calls to the small model) at a relative quality "
        "drop x. Where a source only one recipe trains on is held out, both recipes train on "
        "the same pairs (one router, equal rows). The bundled router's own numbers, recorded "
        "when it was built (before the measured-only sources were added and excluded): "
        "default_generalisation.md.",
        "",
        "| pair (held-out source) | n | curve | gap recovered | "
        + " | ".join(f"CA@{float(d):.0%}" for d in DROPS)
        + " |",
        "|---|---|---|---|" + "---|" * len(DROPS),
    ]
    for key, row in results.items():
        for curve in curves:
            metrics = row[curve]
            at = metrics["cost_advantage_at_drop"]
            gap = metrics["gap_recovered"]
            cells = " | ".join(f"{at[d]:.3f}" for d in DROPS)
            lines.append(
                f"| {key} ({row['held_out_source']}) | {row['n']} | {curve} | "
                f"{'n/a' if gap is None else f'{gap:.3f}'} | {cells} |"
            )
    lines += [
        "",
        f"Summary over the held-out pairs with at least {SUMMARY_MIN_ROWS} rows (means over "
        "pairs):",
        "",
        "| pairs | curve | mean gap recovered | "
        + " | ".join(f"mean CA@{float(d):.0%}" for d in DROPS)
        + " | pairs where it beats the heuristic |",
        "|---|---|---|" + "---|" * len(DROPS) + "---|",
    ]
    for group, block in summary.items():
        for curve in curves:
            mean = block["mean"][curve]
            beats = block["beats_heuristic"].get(curve)
            wins = "" if beats is None else f"{beats} of {block['pairs']}"
            lines.append(
                f"| {group} ({block['pairs']}) | {curve} | {mean['gap_recovered']:.3f} | "
                + " | ".join(f"{mean[f'CA@{d}']:.3f}" for d in DROPS)
                + f" | {wins} |"
            )
        lines.append(
            f"| {group} ({block['pairs']}) | v1 beats v0 | | | | | "
            f"{block['v1_beats_v0']} of {block['pairs']} |"
        )
    lines += ["", f"Ship v1: {'yes' if ship else 'no'} ({reason})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=BUNDLED_FOLDER)
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
    parser.add_argument(
        "--without",
        nargs="+",
        metavar="SOURCE",
        help="Train the bundled recipe without these sources, into --output (not the bundled one).",
    )
    args = parser.parse_args()
    if args.without:
        if args.output.resolve() == BUNDLED_FOLDER.resolve():
            parser.error("--without writes another router: give it its own --output folder")
        build_without(
            args.output, args.without, head=args.head, seed=args.seed, precision=args.precision
        )
    elif args.generalisation:
        generalisation(
            head=args.head, seed=args.seed, centred=args.centred, precision=args.precision
        )
    else:
        build_default(args.output, head=args.head, seed=args.seed, precision=args.precision)


if __name__ == "__main__":
    main()
