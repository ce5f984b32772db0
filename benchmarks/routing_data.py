"""The (small, large) pairs the routing-quality benchmarks run on, and how they are split.

Shared by ``paper_reproduction.py``, ``router_variants.py`` and ``train_default_router.py``
(which also uses :data:`ARENA_PAIRS` and :data:`MEASURED_ONLY_PAIRS`). Every pair comes from
``../shared/data`` (see its README). Splits:

* sources with a fixed ``split`` field (80/10/10 by a hash of the id) keep it;
* ``llmrouter_dcrouter`` keeps its own ``train.jsonl`` / ``test.jsonl`` and carves ``val``
  (10%) out of train by a hash of the id;
* for every pair, train and val rows whose normalised query text also appears in ``test``
  are dropped (``llmrouter_dcrouter`` repeats 119 test queries in train, ``mmlu_pro`` 11), so
  that no test query is ever trained or calibrated on.

Embeddings come from the default encoder (all-MiniLM-L6-v2) through the on-disk
:class:`~shared_router.encoders.encoder.EmbeddingCache`, so each query is encoded once per machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared_router.data import PairData, load_pair, read_jsonl
from shared_router.encoders.bert_folder import Precision
from shared_router.encoders.cache import EmbeddingCache
from shared_router.encoders.encoder import Encoder

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"

_GAMING_MODELS = ("NullModel", "gpt4_gamed")
_GAMING_SUFFIXES = ("_concise", "_verbose")


@dataclass(frozen=True)
class PairSpec:
    """One (small, large) pair of one source.

    Attributes:
        key: Short name used on the command line and in the results.
        source: The folder under ``../shared/data``.
        files: The JSONL files (relative to ``../shared/data``), concatenated.
        small: The small model.
        large: The large model.
        score_field: The quality field (``ae1_...`` / ``ae2_...`` for ``alpaca_eval``).
        signal: What the quality is, in a few words (for the tables).
    """

    key: str
    source: str
    files: tuple[str, ...]
    small: str
    large: str
    score_field: str = "score"
    signal: str = "binary"


PAIRS: tuple[PairSpec, ...] = (
    PairSpec(
        "mmlu-llama31",
        "mmlu_pro",
        ("mmlu_pro/mmlu_pro_scores.jsonl",),
        "Meta-Llama-3.1-8B-Instruct",
        "Meta-Llama-3.1-70B-Instruct",
    ),
    PairSpec(
        "mmlu-qwen15",
        "mmlu_pro",
        ("mmlu_pro/mmlu_pro_scores.jsonl",),
        "Qwen1.5-7B-Chat",
        "Qwen1.5-72B-Chat",
    ),
    PairSpec(
        "math-qwen25",
        "zeroeval",
        ("zeroeval/math-l5.jsonl",),
        "Qwen2.5-7B-Instruct",
        "Qwen2.5-72B-Instruct",
    ),
    PairSpec(
        "crux-gemma2", "zeroeval", ("zeroeval/crux.jsonl",), "gemma-2-9b-it", "gemma-2-27b-it"
    ),
    PairSpec(
        "alpaca-tulu2",
        "alpaca_eval",
        ("alpaca_eval/alpaca_eval.jsonl",),
        "tulu-2-dpo-7b",
        "tulu-2-dpo-70b",
        "ae1_gpt4_vs_davinci003",
        "judge win/tie/loss (AE1)",
    ),
    PairSpec(
        "alpaca-llama2",
        "alpaca_eval",
        ("alpaca_eval/alpaca_eval.jsonl",),
        "llama-2-7b-chat-hf",
        "llama-2-70b-chat-hf",
        "ae1_gpt4_vs_davinci003",
        "judge win/tie/loss (AE1)",
    ),
    PairSpec(
        "alpaca-fusechat",
        "alpaca_eval",
        ("alpaca_eval/alpaca_eval.jsonl",),
        "FuseChat-Llama-3.2-1B-Instruct",
        "FuseChat-Llama-3.1-8B-Instruct",
        "ae2_weighted_vs_gpt4turbo",
        "judge probability (AE2)",
    ),
    PairSpec(
        "date-llama2-gpt35",
        "mot_cascade_date",
        ("mot_cascade_date/date.jsonl",),
        "llama-2-13b",
        "gpt-3.5-turbo",
        signal="share of 20 / 20 samples correct",
    ),
    PairSpec(
        "date-gpt35-gpt4",
        "mot_cascade_date",
        ("mot_cascade_date/date.jsonl",),
        "gpt-3.5-turbo",
        "gpt-4",
        signal="share of 20 / 3 samples correct",
    ),
    PairSpec(
        "dcrouter-llama31",
        "llmrouter_dcrouter",
        ("llmrouter_dcrouter/train.jsonl", "llmrouter_dcrouter/test.jsonl"),
        "llama-3.1-8b-instruct",
        "llama-3.1-nemotron-51b-instruct",
        signal="task metric (mostly binary)",
    ),
)
PAIR_KEYS = tuple(spec.key for spec in PAIRS)

ARENA_PAIRS: tuple[PairSpec, ...] = (
    PairSpec(
        "arena-mistral-mixtral",
        "arena_bench_v1",
        ("arena_bench_v1/arena_bench_v1.jsonl",),
        "Mistral-7B-Instruct-v0.1",
        "Mixtral-8x7B-Instruct-v0.1",
        signal="GPT-4 grade vs a reference",
    ),
    PairSpec(
        "arena-gpt35-gpt4",
        "arena_bench_v1",
        ("arena_bench_v1/arena_bench_v1.jsonl",),
        "gpt-3.5-turbo-1106",
        "gpt-4-1106-preview",
        signal="GPT-4 grade vs a reference",
    ),
    PairSpec(
        "arena-claude",
        "arena_bench_v1",
        ("arena_bench_v1/arena_bench_v1.jsonl",),
        "claude-instant-1",
        "claude-2.1",
        signal="GPT-4 grade vs a reference",
    ),
)
"""Pairs of real Chatbot Arena prompts (``arena_bench_v1``): two sizes of one vendor or family,
each model graded against the final GPT-4 reference. Left out: the four models graded against an
older reference (Llama-2-70b-chat, claude-2, vicuna-33b, gpt-3.5-turbo 2023-09), the base model
llama-13b, and Mixtral vs gpt-4-1106-preview (the project's private evaluation pair)."""

MEASURED_ONLY_PAIRS: tuple[PairSpec, ...] = (
    PairSpec(
        "commongen-yi",
        "commongen_eval",
        ("commongen_eval/commongen_eval.jsonl",),
        "Yi-6b-chat",
        "Yi-34b-chat",
        signal="share of human references beaten",
    ),
    PairSpec(
        "commongen-llama2-tulu2",
        "commongen_eval",
        ("commongen_eval/commongen_eval.jsonl",),
        "Llama-2-7b-chat-hf",
        "tulu-2-dpo-70b",
        signal="share of human references beaten",
    ),
    PairSpec(
        "llmfao-llama2",
        "llmfao",
        ("llmfao/llmfao.jsonl",),
        "LLaMA-2-Chat (7B)",
        "LLaMA-2-Chat (70B)",
        signal="GPT-4 pairwise win rate",
    ),
    PairSpec(
        "routerbench-mistral-mixtral",
        "routerbench_subset",
        ("routerbench_subset/routerbench_subset.jsonl",),
        "mistralai/mistral-7b-chat",
        "mistralai/mixtral-8x7b-chat",
    ),
    PairSpec(
        "routerbench-gpt35-gpt4",
        "routerbench_subset",
        ("routerbench_subset/routerbench_subset.jsonl",),
        "gpt-3.5-turbo-1106",
        "gpt-4-1106-preview",
    ),
    PairSpec(
        "routerdc-mistral-metamath",
        "routerdc_7b_pool",
        ("routerdc_7b_pool/routerdc_7b_pool.jsonl",),
        "Mistral-7B-v0.1",
        "MetaMath-Mistral-7B",
        signal="binary / share of 10 samples",
    ),
)
"""Pairs that routers are measured on and never trained on: ``commongen_eval`` (one prompt
template for every query: nothing for a query-only router to learn; its GPT-3.5 vs GPT-4 pair is
left out, both are at 0.50), ``llmfao`` (19 prompts) and
the test-only sources without a licence (``routerbench_subset``, ``routerdc_7b_pool``; its
nearest thing to a small/large pair is a base model and its own maths fine-tune)."""


def spec_by_key(key: str) -> PairSpec:
    """Return the pair called ``key``.

    Raises:
        SystemExit: When no pair has that key (lists the keys).
    """
    for spec in PAIRS:
        if spec.key == key:
            return spec
    raise SystemExit(f"unknown pair {key!r}; pairs: {', '.join(PAIR_KEYS)}")


def normalise_query(text: str) -> str:
    """Lower-case the text and collapse whitespace (how duplicate queries are found)."""
    return " ".join(text.lower().split())


def id_bucket(row_id: str, buckets: int = 10) -> int:
    """A stable bucket in ``[0, buckets)`` from a sha256 of the row id."""
    return int(hashlib.sha256(row_id.encode("utf-8")).hexdigest(), 16) % buckets


def load_spec(spec: PairSpec) -> PairData:
    """Load a pair with ``train`` / ``val`` / ``test`` splits and no test query in train or val.

    Args:
        spec: The pair.

    Returns:
        The pair's rows; every row's split is ``"train"``, ``"val"`` or ``"test"``.
    """
    data = load_pair(
        [DATA / f for f in spec.files], spec.small, spec.large, score_field=spec.score_field
    )
    splits = list(data.splits)
    if "val" not in splits:
        splits = [
            "val" if s == "train" and id_bucket(row_id) == 0 else s
            for row_id, s in zip(data.ids, splits, strict=True)
        ]
    test_queries = {
        normalise_query(q) for q, s in zip(data.queries, splits, strict=True) if s == "test"
    }
    keep = [
        i
        for i, (q, s) in enumerate(zip(data.queries, splits, strict=True))
        if s == "test" or normalise_query(q) not in test_queries
    ]
    data = dataclasses.replace(data, splits=tuple(splits))
    return data.take(keep)


def normalised_queries(data: PairData) -> frozenset[str]:
    """The normalised query texts of ``data`` (see :func:`normalise_query`)."""
    return frozenset(normalise_query(q) for q in data.queries)


def without_queries(data: PairData, queries: frozenset[str]) -> PairData:
    """The rows of ``data`` whose normalised query is not in ``queries``.

    Sources share questions (MBPP, HumanEval, GSM8K and MATH appear in more than one; see
    ``../shared/data/_cross_source_overlap.json``): dropping another source's questions before
    pooling keeps that source's rows unseen by training.
    """
    return data.take([i for i, q in enumerate(data.queries) if normalise_query(q) not in queries])


def auxiliary_scores(spec: PairSpec, ids: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """Every model's quality per query of the pair's source file(s): auxiliary targets.

    The pair's own models are included; the judge-gaming ``alpaca_eval`` variants are not.
    Only the pair's ``score_field`` is read, so that all targets share one scale.

    Args:
        spec: The pair (its files and score field are read).
        ids: The row ids to return, in order.

    Returns:
        ``(model names, matrix)``: the matrix has shape ``(len(ids), n_models)`` and holds NaN
        where a model has no quality for a query.
    """
    by_id: dict[str, dict[str, float]] = {}
    names: set[str] = set()
    for file in spec.files:
        for _, obj in read_jsonl(DATA / file):
            row: dict[str, float] = {}
            for model, entry in (obj.get("models") or {}).items():
                if model in _GAMING_MODELS or model.endswith(_GAMING_SUFFIXES):
                    continue
                value = entry.get(spec.score_field) if isinstance(entry, dict) else None
                if isinstance(value, (int, float)) and math.isfinite(value):
                    row[model] = float(value)
            by_id[str(obj["id"])] = row
            names.update(row)
    models = sorted(names)
    column = {name: j for j, name in enumerate(models)}
    matrix = np.full((len(ids), len(models)), np.nan)
    for i, row_id in enumerate(ids):
        for model, value in by_id[row_id].items():
            matrix[i, column[model]] = value
    return models, matrix


class Embedder:
    """The default encoder over the shared embedding cache, memoised per text.

    Args:
        precision: The encoder's precision, ``"fp32"`` or ``"int8"``.
    """

    def __init__(self, precision: Precision = "fp32") -> None:
        self.encoder = Encoder("default", precision=precision, cache=EmbeddingCache())
        self._memo: dict[str, np.ndarray] = {}

    def __call__(self, texts: tuple[str, ...] | list[str]) -> np.ndarray:
        """Return the float64 embeddings of ``texts``, shape ``(n, 384)``."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            vectors = self.encoder.encode(missing, progress=len(missing) > 256)
            self._memo.update(zip(missing, vectors, strict=True))
        return np.stack([self._memo[t] for t in texts]).astype(np.float64)


def write_json(path: Path, payload: object) -> None:
    """Write ``payload`` as indented JSON (NaN written as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(payload), indent=2) + "\n", encoding="utf-8")


def _jsonable(value: object) -> object:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value
