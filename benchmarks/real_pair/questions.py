"""Questions with reference answers for the real pair, read from ``../shared/data``.

Three candidate sets, each with the instruction a user would send and a reference answer a
metric can match (none of them is a test-only source):

- ``mmlu``: MMLU-Pro questions that come from the original MMLU (``src`` ``ori_mmlu-*``), up to
  10 lettered options; the reference is the letter, judged with ``match`` (mode ``choice``).
- ``crux``: CRUXEval-O (``zeroeval/crux.jsonl``): complete an assertion with a function's
  output; the reference is a Python literal, judged with
  :func:`benchmarks.real_pair.metrics.crux_output_match`.
- ``commongen``: CommonGen-lite (``commongen_eval``): one sentence using every listed concept;
  the reference is the concept list, judged with
  :func:`benchmarks.real_pair.metrics.concept_coverage` (share of the concepts used).

Each row keeps its source's fixed ``split`` (80/10/10 by a hash of the id), so a question is in
the same split in the pilot, the pipeline and the live runs, and test rows are never tuned on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

MMLU_INSTRUCTION = (
    "Answer the following multiple-choice question. Reply with the letter of the correct "
    "option only."
)
CRUX_INSTRUCTION = "Reply with the completed assertion only, on one line."
COMMONGEN_INSTRUCTION = "Reply with the sentence only."


@dataclass(frozen=True)
class QuestionSet:
    """One candidate set: where its rows come from and how its answers are judged.

    Attributes:
        name: Short name (``mmlu``, ``crux``, ``commongen``).
        metric: The ``hybrid-llm judge --metric`` value.
        max_tokens: Most tokens per answer (a letter, an assertion, a sentence).
        metric_args: Its ``--metric-arg key=value`` strings.
    """

    name: str
    metric: str
    max_tokens: int
    metric_args: tuple[str, ...] = ()


SETS: dict[str, QuestionSet] = {
    "mmlu": QuestionSet("mmlu", "match", 8, ("mode=choice",)),
    "crux": QuestionSet("crux", "benchmarks.real_pair.metrics:crux_output_match", 64),
    "commongen": QuestionSet("commongen", "benchmarks.real_pair.metrics:concept_coverage", 40),
}


def _read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as handle:
        for line in handle:
            yield json.loads(line)


def _mmlu() -> Iterator[dict[str, Any]]:
    for row in _read(DATA / "mmlu_pro" / "mmlu_pro_scores.jsonl"):
        if row["src"].startswith("ori_mmlu") and row.get("duplicate_prompt_count", 1) == 1:
            query = f"{MMLU_INSTRUCTION}\n\n{row['query'].strip()}"
            yield _row(row, "mmlu", query, row["reference_answer"])


def _crux() -> Iterator[dict[str, Any]]:
    for row in _read(DATA / "zeroeval" / "crux.jsonl"):
        query = f"{row['query'].strip()}\n\n{CRUX_INSTRUCTION}"
        assertion = next(line for line in row["query"].splitlines() if "== ??" in line)
        solved = assertion.replace("??", row["reference_answer"]).strip()
        yield _row(row, "crux", query, row["reference_answer"], solved)


def _commongen() -> Iterator[dict[str, Any]]:
    for row in _read(DATA / "commongen_eval" / "commongen_eval.jsonl"):
        words = ", ".join(concept.split("_")[0] for concept in row["concept_set"])
        query = f"{row['query'].rstrip()}\n\n{COMMONGEN_INSTRUCTION}"
        yield _row(row, "commongen", query, words, row["human_references"][0])


def _row(
    source: dict[str, Any], name: str, query: str, reference: str, solved: str | None = None
) -> dict[str, Any]:
    return {
        "id": f"{name}-{source['id']}",
        "query": query,
        "reference": reference,
        "solved": solved if solved is not None else reference,
        "split": source["split"],
        "set": name,
    }


READERS = {"mmlu": _mmlu, "crux": _crux, "commongen": _commongen}


def sample(name: str, counts: dict[str, int], seed: int = 0) -> list[dict[str, Any]]:
    """The first ``counts[split]`` rows of each split in a fixed shuffled order.

    The order depends on the seed only, so a smaller sample is a prefix of a larger one: the
    pilot's questions are the first train questions of the full run, whose collect reuses
    their answers.

    Args:
        name: The set (a key of :data:`SETS`).
        counts: Rows wanted per split (``{"train": 120, "val": 40, "test": 40}``).
        seed: The shuffling seed.

    Returns:
        The rows, in the data contract of ``hybrid-llm collect`` (``id``, ``query``,
        ``reference``, ``split``) plus ``set`` and ``solved`` (a model answer: the reference
        letter, the completed assertion, a human-written sentence), which the live runs'
        index shows as a solved example.

    Raises:
        ValueError: If a split has fewer rows than asked for.
    """
    rows = list(READERS[name]())
    picked: list[dict[str, Any]] = []
    for split, count in counts.items():
        pool = [row for row in rows if row["split"] == split]
        if len(pool) < count:
            raise ValueError(f"{name}: {count} {split} rows asked for, {len(pool)} available")
        random.Random(f"{seed}-{name}-{split}").shuffle(pool)
        picked.extend(pool[:count])
    return picked


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as JSON lines (creating the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read JSON lines."""
    return list(_read(path))
