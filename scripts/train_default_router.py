"""Reproduce the default router bundled in ``shared_router/default/``.

The default router predicts general difficulty: several (small, large) pairs from
``../shared/data`` are pooled, each pair gives r_trans labels on its ``train`` split, and the
labels of one query across pairs are averaged. The head early-stops and is calibrated on the
pooled ``val`` rows; the model card reports each pair's ``test`` split beside random, oracle
and the length heuristic.

Run from the repository root (embeddings are cached in ~/.cache/hybrid-llm)::

    python scripts/train_default_router.py            # writes shared_router/default/
    python scripts/train_default_router.py -o /tmp/r  # elsewhere
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared_router.data import PairData, load_pair
from shared_router.encoder import EmbeddingCache, Encoder
from shared_router.evaluation import HEURISTIC_NAME, evaluate_scores
from shared_router.labels import make_labels
from shared_router.router import Router

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class PairSpec:
    """One (small, large) pair of one source file."""

    source: str
    files: tuple[str, ...]
    small: str
    large: str
    score_field: str = "score"


DEFAULT_PAIRS = (
    PairSpec(
        "mmlu_pro",
        ("mmlu_pro/mmlu_pro_scores.jsonl",),
        "Meta-Llama-3.1-8B-Instruct",
        "Meta-Llama-3.1-70B-Instruct",
    ),
    PairSpec(
        "mmlu_pro", ("mmlu_pro/mmlu_pro_scores.jsonl",), "Qwen1.5-7B-Chat", "Qwen1.5-72B-Chat"
    ),
    PairSpec("mmlu_pro", ("mmlu_pro/mmlu_pro_scores.jsonl",), "Llama-2-7b-hf", "Llama-2-70b-hf"),
    PairSpec(
        "zeroeval_math", ("zeroeval/math-l5.jsonl",), "Qwen2.5-7B-Instruct", "Qwen2.5-72B-Instruct"
    ),
    PairSpec("zeroeval_crux", ("zeroeval/crux.jsonl",), "gemma-2-9b-it", "gemma-2-27b-it"),
    PairSpec(
        "llmrouter_dcrouter",
        ("llmrouter_dcrouter/train.jsonl", "llmrouter_dcrouter/test.jsonl"),
        "llama-3.1-8b-instruct",
        "llama-3.1-nemotron-51b-instruct",
    ),
    PairSpec(
        "alpaca_eval",
        ("alpaca_eval/alpaca_eval.jsonl",),
        "tulu-2-dpo-7b",
        "tulu-2-dpo-70b",
        "ae1_gpt4_vs_davinci003",
    ),
    PairSpec(
        "alpaca_eval",
        ("alpaca_eval/alpaca_eval.jsonl",),
        "llama-2-7b-chat-hf",
        "llama-2-70b-chat-hf",
        "ae1_gpt4_vs_davinci003",
    ),
)
MAX_TRAIN_PER_SOURCE = 4000


def split_of(row_id: str, split: str | None) -> str:
    """The row's split; sources without a val split give 10% of train to val by id hash."""
    if split in ("val", "test"):
        return split
    bucket = int(hashlib.sha256(row_id.encode()).hexdigest(), 16) % 10
    return "val" if bucket == 0 else "train"


def load_spec(spec: PairSpec) -> PairData:
    """Load one pair from ../shared/data."""
    return load_pair(
        [DATA / f for f in spec.files], spec.small, spec.large, score_field=spec.score_field
    )


def pooled_rows(
    pairs: list[tuple[PairSpec, PairData]], split: str, seed: int
) -> tuple[list[str], np.ndarray]:
    """Queries of one split with their r_trans labels averaged over the pairs that have them."""
    labels_by_query: dict[str, list[float]] = defaultdict(list)
    source_of: dict[str, str] = {}
    for spec, data in pairs:
        splits = [split_of(i, s) for i, s in zip(data.ids, data.splits, strict=True)]
        rows = data.take([k for k, s in enumerate(splits) if s == split])
        labels = make_labels(rows, "trans")
        for query, y in zip(rows.queries, labels.y, strict=True):
            labels_by_query[query].append(float(y))
            source_of[query] = spec.source
    rng = np.random.default_rng(seed)
    by_source: dict[str, list[str]] = defaultdict(list)
    for query in sorted(labels_by_query):
        by_source[source_of[query]].append(query)
    texts: list[str] = []
    for source in sorted(by_source):
        queries = by_source[source]
        if split == "train" and len(queries) > MAX_TRAIN_PER_SOURCE:
            keep = rng.choice(len(queries), MAX_TRAIN_PER_SOURCE, replace=False)
            queries = [queries[k] for k in sorted(keep)]
        texts.extend(queries)
    return texts, np.array([np.mean(labels_by_query[q]) for q in texts])


def main() -> None:
    """Train, calibrate, evaluate and save the default router."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=REPO / "shared_router" / "default")
    parser.add_argument("--hidden", default="256")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    pairs = [(spec, load_spec(spec)) for spec in DEFAULT_PAIRS]
    train_texts, train_y = pooled_rows(pairs, "train", args.seed)
    val_texts, val_y = pooled_rows(pairs, "val", args.seed)
    print(
        f"train {len(train_texts)} queries, val {len(val_texts)}; mean label {train_y.mean():.3f}"
    )

    hidden = tuple(int(h) for h in args.hidden.split(",") if h)
    router = Router(
        Encoder("default", cache=EmbeddingCache()),
        hidden_sizes=hidden,
        seed=args.seed,
        name="hybrid-llm-default-v0",
    )
    router.fit(train_texts, train_y, val_texts=val_texts, val_y=val_y)

    # Calibrate on every pair's val rows, each row with its own pair's qualities.
    cal_texts: list[str] = []
    cal_small: list[np.ndarray] = []
    cal_large: list[np.ndarray] = []
    test_metrics = {}
    for spec, data in pairs:
        splits = [split_of(i, s) for i, s in zip(data.ids, data.splits, strict=True)]
        val = data.take([k for k, s in enumerate(splits) if s == "val"])
        cal_texts.extend(val.queries)
        cal_small.append(val.small_scores)
        cal_large.append(val.large_scores)
        test = data.take([k for k, s in enumerate(splits) if s == "test"])
        report = evaluate_scores(
            router.score(list(test.queries)),
            test.small_scores,
            test.large_scores,
            queries=list(test.queries),
        )
        key = f"{spec.source}:{spec.small}->{spec.large}"
        test_metrics[key] = {
            name: report.metric(name).to_dict()
            for name in ("router", HEURISTIC_NAME, "random", "oracle")
        } | {"n": len(test), "small_mean": report.small_mean, "large_mean": report.large_mean}
        router_m = report.metric("router")
        print(f"{key}: n={len(test)} gap recovered {router_m.gap_recovered:.3f}")
    router.calibrate(cal_texts, np.concatenate(cal_small), np.concatenate(cal_large))
    router.label_type_ = "trans"
    router.metadata_.update(
        quality_metric="score (binary correctness; AlpacaEval 1 judge preference for alpaca_eval)",
        training_data_hash=hashlib.sha256(
            "".join(d.data_hash for _, d in pairs).encode()
        ).hexdigest(),
        pairs=[{"source": s.source, "small": s.small, "large": s.large} for s, _ in pairs],
        metrics={"test": test_metrics},
        training_rows=len(train_texts),
    )
    router.save(args.output)
    print(json.dumps({k: v["router"] for k, v in test_metrics.items()}, indent=1, default=str))
    print(f"saved -> {args.output}")


if __name__ == "__main__":
    main()
