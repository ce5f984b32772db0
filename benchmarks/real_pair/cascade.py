"""Answer-aware signals for a cascade, beside the query-only router (an analysis, no feature).

A cascade asks the small model first and reads its answer before deciding whether to ask the
large one. Two signals llama.cpp gives for free or cheaply:

- ``mean_logprob``: the mean token log-probability of the small model's greedy answer (free:
  one call, ``logprobs`` on);
- ``agreement``: how much the small model's samples at temperature 0.7 agree with its greedy
  answer (costs ``k`` more small-model calls): the share of samples with the same extracted
  answer (MMLU letter, CRUX output literal), or the mean word-set Jaccard similarity for
  free-text sets (CommonGen).

Each is compared with the trained router's score as a predictor of "the small answer is good
enough" (``q_small >= q_large``): the AUC, and the gap recovered at a few shares of questions
kept on the small model, ``(q - q_random) / (q_oracle - q_random)`` at that share. The cost
counts what each approach pays per question, with the small model at
:data:`~benchmarks.real_pair.live.PRICE_RATIO` of the large one per token: the router pays
the chosen model only; the log-prob cascade always pays the small model and adds the large
one for the questions it defers; the agreement cascade also pays the ``k`` samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.real_pair.live import PRICE_RATIO
from benchmarks.real_pair.metrics import CODE_FENCE
from benchmarks.real_pair.pipeline import LARGE, SAMPLED, SMALL
from shared_router.pipeline.answer_parsing import extract_choice, normalise_answer

SHARES = (0.25, 0.5, 0.75)


def answer_key(set_name: str, text: str) -> str:
    """What two answers must share to agree: the letter, the output literal, or the words."""
    if set_name == "mmlu":
        return extract_choice(text) or ""
    if set_name == "crux":
        lines = [line for line in CODE_FENCE.sub("", text).splitlines() if "==" in line]
        return "".join(lines[-1].rsplit("==", 1)[1].split()) if lines else ""
    return normalise_answer(text)


def agreement(set_name: str, greedy: str, samples: Sequence[str]) -> float:
    """Mean agreement of the samples with the greedy answer (see the module docstring)."""
    key = answer_key(set_name, greedy)
    if set_name in ("mmlu", "crux"):
        return float(np.mean([answer_key(set_name, s) == key and key != "" for s in samples]))
    words = set(key.split())
    similarities = [
        len(words & set(w)) / len(words | set(w)) if words | set(w) else 1.0
        for w in (answer_key(set_name, s).split() for s in samples)
    ]
    return float(np.mean(similarities))


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half)."""
    positive, negative = scores[labels], scores[~labels]
    if positive.size == 0 or negative.size == 0:
        return None
    greater = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(greater + 0.5 * ties)


def _quality_at_share(
    signal: np.ndarray, small: np.ndarray, large: np.ndarray, share: float
) -> float:
    keep = np.zeros(signal.size, dtype=bool)
    keep[np.argsort(-signal, kind="stable")[: round(share * signal.size)]] = True
    return float(np.where(keep, small, large).mean())


def compare(rows: list[dict[str, Any]], signals: dict[str, np.ndarray]) -> dict[str, Any]:
    """AUC, gap recovered and relative cost of each signal at :data:`SHARES`.

    Args:
        rows: Judged rows with ``small``/``large`` quality and token costs (see :func:`table`).
        signals: Name -> one value per row (higher: keep the small answer).

    Returns:
        Per signal: ``auc`` and, per share, ``quality``, ``gap_recovered`` and ``cost``
        (relative to always-large).
    """
    small = np.array([r["q_small"] for r in rows])
    large = np.array([r["q_large"] for r in rows])
    c_small = np.array([r["cost_small"] for r in rows])
    c_large = np.array([r["cost_large"] for r in rows])
    c_samples = np.array([r["cost_samples"] for r in rows])
    labels = small >= large
    oracle_gain = np.sort(small - large)[::-1]
    out: dict[str, Any] = {
        "n": len(rows),
        "share_small_good_enough": float(labels.mean()),
        "small_mean": float(small.mean()),
        "large_mean": float(large.mean()),
    }
    for name, signal in signals.items():
        entry: dict[str, Any] = {"auc": auc(signal, labels)}
        for share in SHARES:
            k = round(share * len(rows))
            quality = _quality_at_share(signal, small, large, share)
            random = large.mean() + share * (small.mean() - large.mean())
            oracle = (large.sum() + oracle_gain[:k].sum()) / len(rows)
            keep = np.zeros(len(rows), dtype=bool)
            keep[np.argsort(-signal, kind="stable")[:k]] = True
            deferred = c_large[~keep].sum()
            if name == "router":
                cost = c_small[keep].sum() + deferred
            elif name == "agreement":
                cost = c_small.sum() + c_samples.sum() + deferred
            else:
                cost = c_small.sum() + deferred
            entry[f"{share:.2f}"] = {
                "quality": quality,
                "gap_recovered": (quality - random) / (oracle - random)
                if oracle - random > 1e-12
                else None,
                "cost": float(cost / c_large.sum()),
            }
        out[name] = entry
    return out


def _cost(usage: dict[str, Any] | None, price: float) -> float:
    usage = usage or {}
    return price * ((usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0))


def table(
    data: list[dict[str, Any]], set_name: str, logprobs: dict[tuple[str, str], float]
) -> list[dict[str, Any]]:
    """One analysis row per judged question that has the small model's samples."""
    rows = []
    for row in data:
        entries = row["models"]
        sampled = entries.get(SAMPLED)
        if not sampled or not sampled["responses"]:
            continue
        greedy = entries[SMALL]["response"] or ""
        mean_lp = logprobs.get((row["query"], greedy))
        rows.append(
            {
                "id": row["id"],
                "split": row["split"],
                "set": set_name,
                "query": row["query"],
                "q_small": entries[SMALL]["score"],
                "q_large": entries[LARGE]["score"],
                "mean_logprob": mean_lp if mean_lp is not None else -math.inf,
                "agreement": agreement(set_name, greedy, sampled["responses"]),
                "cost_small": _cost(entries[SMALL]["usage"][0], PRICE_RATIO),
                "cost_large": _cost(entries[LARGE]["usage"][0], 1.0),
                "cost_samples": sum(_cost(u, PRICE_RATIO) for u in sampled["usage"]),
            }
        )
    return rows


def read_logprobs(path: Path) -> dict[tuple[str, str], float]:
    """(prompt, answer) -> mean token log-probability, from a model's log-prob log."""
    found: dict[tuple[str, str], float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["mean_logprob"] is not None:
                found[(record["prompt"], record["text"])] = record["mean_logprob"]
    return found
