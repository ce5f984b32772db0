"""The values the live store holds: shadow rows, traffic counters, router versions.

A :class:`ShadowRow` is one call that was shadowed: the routed text (or only its embedding),
what the router said, which model answered the user, and both models' judged qualities. A
:class:`VersionRecord` is one retraining attempt (swapped in or not) with its comparison.
:data:`SCHEMA_VERSION` names the layout of the tables these values are stored in.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared_router.errors import ConfigurationError
from shared_router.types import ModelChoice

__all__ = [
    "SCHEMA_VERSION",
    "TRAFFIC_FIELDS",
    "ShadowRow",
    "StoredRow",
    "TrafficCounts",
    "VersionRecord",
]

SCHEMA_VERSION = 2
"""The version of the store's tables. A version-1 store (no cross-fitted scores of router
versions) is upgraded when opened; a store of any other version is refused."""


@dataclass(frozen=True)
class ShadowRow:
    """One shadowed call, judged.

    Attributes:
        request_id: The caller's id for the request.
        created_at: When the request was answered (seconds since the epoch).
        judged_at: When the judge scored both answers.
        router_version: The router that scored the text (the starting router's name, e.g.
            ``"hybrid-llm-default-v0"``, or a version name).
        decision: The model that answered the user, ``"small"`` or ``"large"``.
        small_quality: The judged quality of the small model's answer, in [0, 1].
        large_quality: The judged quality of the large model's answer, in [0, 1].
        text: The routed text, or None when only its embedding is kept.
        embedding: The routed text's embedding (float32), or None.
        encoder_identity: The identity of the encoder that made ``embedding``.
        score: The router's score, or None when it did not score.
        threshold: The threshold the score was compared with, or None.
        calibration_source: ``"prior"`` or ``"live"``: which calibration chose the threshold.
        calibration_rows: How many live rows that calibration stood on.
        calibration_bound: The upper bound on the quality drop at that threshold.
        small_answer: The small model's answer, when answers are kept.
        large_answer: The large model's answer, when answers are kept.
        shadow_cost: What the shadow call and the judge cost (in the evaluator's units).
        worker: The process that wrote the row.
    """

    request_id: str
    created_at: float
    judged_at: float
    router_version: str
    decision: ModelChoice
    small_quality: float
    large_quality: float
    text: str | None = None
    embedding: np.ndarray | None = field(default=None, compare=False)
    encoder_identity: str | None = None
    score: float | None = None
    threshold: float | None = None
    calibration_source: str | None = None
    calibration_rows: int | None = None
    calibration_bound: float | None = None
    small_answer: str | None = None
    large_answer: str | None = None
    shadow_cost: float = 0.0
    worker: str = ""

    def __post_init__(self) -> None:
        if self.decision not in ("small", "large"):
            raise ConfigurationError(
                f"a shadow row's decision must be 'small' or 'large', got {self.decision!r}"
            )
        for name in ("small_quality", "large_quality"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
                raise ConfigurationError(f"{name} must be a number in [0, 1], got {value!r}")
        if self.text is None and self.embedding is None:
            raise ConfigurationError(
                f"shadow row {self.request_id!r} keeps neither its text nor its embedding; "
                "keep one of them, or the row cannot be learned from"
            )
        if self.embedding is not None:
            vector = np.asarray(self.embedding, dtype=np.float32).reshape(-1)
            object.__setattr__(self, "embedding", vector)
            if self.encoder_identity is None:
                raise ConfigurationError(
                    "a shadow row with an embedding needs the encoder_identity that made it"
                )


@dataclass(frozen=True)
class StoredRow:
    """A shadow row as read back, with the id the store gave it (ascending in write order).

    Attributes:
        row_id: The store's id of the row.
        row: The row.
    """

    row_id: int
    row: ShadowRow


@dataclass(frozen=True)
class TrafficCounts:
    """Counters of every call a worker's evaluator saw (shadowed or not).

    Attributes:
        calls: Calls offered for shadowing (every answered call).
        small: Of those, calls the small model answered.
        shadowed: Calls whose shadow work was queued.
        dropped: Shadow work dropped because the queue was full.
        judge_errors: Shadowed calls the judge could not score.
        shadow_errors: Shadowed calls whose other-model call failed or timed out.
        shadow_cost: What shadow calls and the judge cost.
        answer_cost: What the answered calls cost.
        large_cost: What the answered calls would have cost on the large model.
    """

    calls: int = 0
    small: int = 0
    shadowed: int = 0
    dropped: int = 0
    judge_errors: int = 0
    shadow_errors: int = 0
    shadow_cost: float = 0.0
    answer_cost: float = 0.0
    large_cost: float = 0.0

    def __add__(self, other: TrafficCounts) -> TrafficCounts:
        return TrafficCounts(
            **{name: getattr(self, name) + getattr(other, name) for name in TRAFFIC_FIELDS}
        )

    @property
    def cost_saved_net(self) -> float:
        """``large_cost - answer_cost - shadow_cost``: the saving after paying for shadowing."""
        return self.large_cost - self.answer_cost - self.shadow_cost


TRAFFIC_FIELDS = (
    "calls",
    "small",
    "shadowed",
    "dropped",
    "judge_errors",
    "shadow_errors",
    "shadow_cost",
    "answer_cost",
    "large_cost",
)
"""The counters of :class:`TrafficCounts`, in the order the stores keep them as columns."""


@dataclass(frozen=True)
class VersionRecord:
    """One retraining attempt: the candidate router, how it compared, whether it was swapped in.

    Attributes:
        version: The candidate's name (unique in the store).
        created_at: When it was fitted.
        path: Its router folder.
        parent: The version it was compared with.
        swapped: True when it became the current router.
        n_fit: Live rows the candidate's head was fitted on: every row the attempt used.
        n_holdout: Rows the comparison ran on, held out from the head that was compared (the
            same recipe fitted on the other rows) and fitted in the candidate's.
        gap_new: The compared head's gap recovered on the held-out rows.
        gap_current: The current router's gap recovered on the same rows.
        fit_row_ids: The ids of the rows the head was fitted on, ascending.
        fit_row_scores: The head's cross-fitted scores of those rows, in the same order
            (each row scored by a head of the cross-validation that was not fitted on it),
            which the live calibration may stand on; empty when there are none (those rows
            are then never calibrated on).
    """

    version: str
    created_at: float
    path: str
    parent: str
    swapped: bool
    n_fit: int
    n_holdout: int
    gap_new: float
    gap_current: float
    fit_row_ids: tuple[int, ...] = ()
    fit_row_scores: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.fit_row_scores and len(self.fit_row_scores) != len(self.fit_row_ids):
            raise ConfigurationError(
                f"fit_row_scores has {len(self.fit_row_scores)} scores for "
                f"{len(self.fit_row_ids)} fit_row_ids; give one score per row, or none"
            )

    def cross_fit_scores(self) -> dict[int, float]:
        """The cross-fitted score of each fitted row, by row id (empty when there are none)."""
        return dict(zip(self.fit_row_ids, self.fit_row_scores, strict=False))

    def as_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict, without the fitted rows' ids and scores."""
        return {
            "version": self.version,
            "created_at": self.created_at,
            "path": self.path,
            "parent": self.parent,
            "swapped": self.swapped,
            "n_fit": self.n_fit,
            "n_holdout": self.n_holdout,
            "gap_new": _json_number(self.gap_new),
            "gap_current": _json_number(self.gap_current),
        }

    def fit_ids_json(self) -> str:
        """The fitted row ids as a JSON list (how the store keeps them)."""
        return json.dumps(list(self.fit_row_ids))

    def fit_scores_json(self) -> str | None:
        """The cross-fitted scores as a JSON list, or None when there are none."""
        return json.dumps(list(self.fit_row_scores)) if self.fit_row_scores else None


def _json_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
