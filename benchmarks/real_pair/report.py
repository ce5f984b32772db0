"""What the user gets from each configuration of the live runs, against the baselines.

For one framework's test passes: realised quality, share sent small, wall time and estimated
cost (small model at :data:`~benchmarks.real_pair.live.PRICE_RATIO` of the large one per
token) of always-large, always-small, each router at each quality level, and, at that
configuration's share, random routing (its expectation), "shorter prompts go small" and the
oracle. Calibration honesty: the relative drop asked for (``max_quality_drop``) against the
drop realised, ``(q_large - q_routed) / q_large``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.real_pair.live import PRICE_RATIO, Answer


def answer_cost(answer: Answer) -> float:
    price = PRICE_RATIO if answer.model == "small" else 1.0
    return price * (answer.input_tokens + answer.output_tokens)


def summary(answers: Sequence[Answer], large_cost: float) -> dict[str, Any]:
    """Quality, share small, wall time and cost (relative to always-large) of one pass."""
    return {
        "quality": float(np.mean([a.quality for a in answers])),
        "share_small": float(np.mean([a.model == "small" for a in answers])),
        "wall_s": float(sum(a.seconds for a in answers)),
        "cost": float(sum(answer_cost(a) for a in answers) / large_cost),
    }


def _pick(keep_small: np.ndarray, small: Sequence[Answer], large: Sequence[Answer]) -> list[Answer]:
    return [s if k else g for k, s, g in zip(keep_small, small, large, strict=True)]


def baselines_at(
    share_small: float,
    queries: Sequence[str],
    small: Sequence[Answer],
    large: Sequence[Answer],
    large_cost: float,
) -> dict[str, Any]:
    """Random (expected), "shorter prompts go small" and the oracle at one share small."""
    n = len(small)
    k = round(share_small * n)
    summaries = {}
    shortest = np.zeros(n, dtype=bool)
    shortest[np.argsort([len(q) for q in queries], kind="stable")[:k]] = True
    summaries["shorter prompts go small"] = summary(_pick(shortest, small, large), large_cost)
    gains = np.array([s.quality - g.quality for s, g in zip(small, large, strict=True)])
    best = np.zeros(n, dtype=bool)
    best[np.argsort(-gains, kind="stable")[:k]] = True
    summaries["oracle"] = summary(_pick(best, small, large), large_cost)
    all_small, all_large = summary(small, large_cost), summary(large, large_cost)
    fraction = k / n
    summaries["random"] = {
        key: fraction * all_small[key] + (1 - fraction) * all_large[key]
        for key in ("quality", "share_small", "wall_s", "cost")
    }
    return summaries


def configuration(
    name: str,
    answers: Sequence[Answer],
    requested_drop: float | None,
    queries: Sequence[str],
    small: Sequence[Answer],
    large: Sequence[Answer],
) -> dict[str, Any]:
    """One routed configuration beside the baselines at its share, with its calibration."""
    large_cost = sum(answer_cost(a) for a in large)
    routed = summary(answers, large_cost)
    large_quality = summary(large, large_cost)["quality"]
    realised = (large_quality - routed["quality"]) / large_quality if large_quality else None
    at_share = baselines_at(routed["share_small"], queries, small, large, large_cost)
    return {
        "name": name,
        **routed,
        "requested_drop": requested_drop,
        "realised_drop": realised,
        "within_request": None
        if requested_drop is None or realised is None
        else realised <= requested_drop + 1e-12,
        "baselines_at_share": at_share,
        "beats_random": routed["quality"] > at_share["random"]["quality"] + 1e-12,
        "beats_heuristic": routed["quality"]
        > at_share["shorter prompts go small"]["quality"] + 1e-12,
    }


def markdown_table(framework: str, rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of the configurations of one framework."""
    lines = [
        f"#### {framework}",
        "",
        "| configuration | quality | share small | wall s | cost vs large | asked drop | "
        "realised drop | random @share | shorter-go-small @share | oracle @share |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        base = row.get("baselines_at_share") or {}

        def q(key: str, base: dict[str, Any] = base) -> str:
            return f"{base[key]['quality']:.3f}" if key in base else "-"

        asked = "-" if row.get("requested_drop") is None else f"{row['requested_drop']:.2f}"
        realised = "-" if row.get("realised_drop") is None else f"{row['realised_drop']:.3f}"
        lines.append(
            f"| {row['name']} | {row['quality']:.3f} | {row['share_small']:.2f} | "
            f"{row['wall_s']:.0f} | {row['cost']:.2f} | {asked} | {realised} | "
            f"{q('random')} | {q('shorter prompts go small')} | {q('oracle')} |"
        )
    return "\n".join(lines) + "\n"


def plot(path: Any, frameworks: dict[str, list[dict[str, Any]]]) -> None:
    """Quality against cost of each configuration, one panel per framework."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(frameworks), figsize=(6 * len(frameworks), 4.5))
    for axis, (framework, rows) in zip(np.atleast_1d(axes), frameworks.items(), strict=True):
        by_name = {row["name"]: row for row in rows}
        ends = [by_name["always-large"], by_name["always-small"]]
        axis.plot([e["cost"] for e in ends], [e["quality"] for e in ends], "k--", label="random")
        for row in rows:
            marker = "o" if row["name"].startswith("trained") else "s"
            if row["name"].startswith("always"):
                marker = "D"
            axis.scatter(row["cost"], row["quality"], marker=marker, label=row["name"])
            base = row.get("baselines_at_share")
            if base:
                heuristic = base["shorter prompts go small"]
                axis.scatter(heuristic["cost"], heuristic["quality"], marker="x", c="grey")
                axis.scatter(base["oracle"]["cost"], base["oracle"]["quality"], marker="+", c="g")
        axis.set_title(f"{framework} (x: shorter-go-small, +: oracle, at each share)")
        axis.set_xlabel(f"cost vs always-large (small = {PRICE_RATIO}x per token)")
        axis.set_ylabel("mean quality on the test questions")
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
