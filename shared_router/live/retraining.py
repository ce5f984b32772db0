"""Retraining on live rows: refit the head, compare on held-out rows, swap only if better.

:meth:`Retrainer.retrain` takes the store's lock (so that of several workers one retrains),
holds out a share of the rows the current router has an out-of-sample score for (rows it was
not fitted on, and rows it was fitted on by their cross-fitted scores), fits the exact numpy
logistic head on the rest with the current encoder's (cached) embeddings
(:func:`~shared_router.live.head_fit.fit_live_head`: its labels, ``det`` or ``diff``, and its
L2 strength chosen by K-fold cross-validation on those rows), and compares it with the current
router by gap recovered on the held-out rows
(:func:`~shared_router.evaluation.curves.gap_recovered`). The candidate then serves fitted on
*every* row, held-out ones included, with the recipe that was compared
(:func:`~shared_router.live.head_fit.refit_live_head`): on 1,000 dcrouter labels the head fitted
on 700 of them recovered 0.102 of the gap on held-out rows, the same recipe fitted on all
1,000 0.123 (``benchmarks/live_learning_curve.py``). It is saved as a router folder in the store's
``versions_dir`` (written to a temporary folder, then renamed, so a kill leaves no half
router) with a calibration table from every row by its out-of-fold score (cross-fitting: each
row scored by a head of a cross-validation that did not see it), recorded in the store with
the comparison and those scores, and becomes current only when the compared head's gap
recovered is higher.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared_router.encoders.encoder import Encoder
from shared_router.errors import ConfigurationError, TrainingError
from shared_router.evaluation.curves import gap_recovered_by_scores
from shared_router.live.head_fit import (
    LiveLabels,
    checked_live_labels,
    fit_live_head,
    refit_live_head,
)
from shared_router.live.rows import StoredRow, VersionRecord
from shared_router.live.settings import (
    MIN_RETRAIN_HOLDOUT,
    MIN_RETRAIN_ROWS,
    MIN_RETRAIN_SIDE,
)
from shared_router.live.store import ShadowStore, default_worker
from shared_router.model.calibration import CalibrationTable
from shared_router.routing.router import Router
from shared_router.training.logistic import DEFAULT_L2_GRID

__all__ = [
    "ENCODE_CHUNK",
    "RETRAIN_LOCK",
    "RetrainOutcome",
    "Retrainer",
    "row_scores",
    "row_vectors",
]

logger = logging.getLogger(__name__)

RETRAIN_LOCK = "retrain"
"""The store lock a retraining worker holds."""

ENCODE_CHUNK = 256
"""Texts a stoppable retraining encodes between two looks at whether it was stopped."""


@dataclass(frozen=True, eq=False)
class RetrainOutcome:
    """One retraining attempt.

    Attributes:
        record: What the store keeps of it (comparison, sizes, folder).
        router: The candidate router (swapped in or not).
    """

    record: VersionRecord
    router: Router

    @property
    def swapped(self) -> bool:
        """Whether the candidate became the current router."""
        return self.record.swapped


class _Stopped(Exception):
    """The retrainer was stopped while it encoded rows."""


def row_vectors(
    rows: Sequence[StoredRow], encoder: Encoder, *, stop: threading.Event | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's vectors of rows: stored embeddings where they match, else the texts encoded.

    Args:
        rows: The rows.
        encoder: The encoder whose vectors are wanted.
        stop: When given, the texts are encoded in chunks of :data:`ENCODE_CHUNK`, and the
            encoding ends early, raising an internal exception, once it is set.

    Returns:
        ``(X, usable)``: one vector per usable row, and the boolean mask of usable rows (a row
        with only an embedding of another encoder is not).
    """
    identity = encoder.identity
    usable = np.zeros(len(rows), dtype=bool)
    vectors: list[np.ndarray | None] = [None] * len(rows)
    to_encode: list[int] = []
    for i, stored in enumerate(rows):
        row = stored.row
        if row.embedding is not None and row.encoder_identity == identity:
            vectors[i] = row.embedding
            usable[i] = True
        elif row.text is not None:
            to_encode.append(i)
            usable[i] = True
    step = ENCODE_CHUNK if stop is not None else max(1, len(to_encode))
    for start in range(0, len(to_encode), step):
        if stop is not None and stop.is_set():
            raise _Stopped
        chunk = to_encode[start : start + step]
        encoded = encoder.encode([rows[i].row.text or "" for i in chunk])
        for i, vector in zip(chunk, encoded, strict=True):
            vectors[i] = vector
    kept = [v for v in vectors if v is not None]
    dim = kept[0].shape[0] if kept else 0
    return (np.vstack(kept) if kept else np.zeros((0, dim), dtype=np.float32)), usable


def row_scores(router: Router, rows: Sequence[StoredRow]) -> tuple[np.ndarray, np.ndarray]:
    """``router``'s scores of rows (see :func:`row_vectors`), with the usable-row mask."""
    X, usable = row_vectors(rows, router.encoder_)
    scores = router.head_.predict_proba(X) if X.shape[0] else np.zeros(0)
    return scores, usable


_STOPPED = "stopped: the live loop was closed"

_LABEL_TEXT = {"det": "1[q_small >= q_large]", "diff": "(1 + q_small - q_large) / 2"}


def _chosen(gaps: dict[str, float]) -> str:
    if not gaps:
        return ""
    compared = ", ".join(f"{kind} {gap:.4f}" for kind, gap in gaps.items())
    return f" (chosen by out-of-fold gap recovered: {compared})"


class Retrainer:
    """Refits the head on live rows and swaps it in when it recovers more of the gap.

    Args:
        store: The live store (rows, lock, version records).
        min_rows: Rows needed before the first retraining (at least
            :data:`~shared_router.live.settings.MIN_RETRAIN_ROWS`).
        every: New rows needed between two retrainings.
        holdout_share: Share of the rows the current router has an out-of-sample score for
            that is held out for the comparison (the candidate then serves fitted on them too).
        folds: Folds of the cross-validations that choose the L2 strength and the labels on
            the fitting rows (:func:`~shared_router.live.head_fit.fit_live_head`).
        l2: L2 strengths to choose from.
        labels: What the head is fitted on: ``"det"`` labels ``1[q_small >= q_large]``,
            ``"diff"`` labels ``(1 + q_small - q_large) / 2``, or ``"auto"``: the kind whose
            out-of-fold scores recover more of the gap on the fitting rows.
        min_gain: How much higher the candidate's gap recovered must be to swap.
        lock_ttl_s: Seconds after which a lock of a killed worker expires.
        seed: Seed of the splits.
        owner: This worker's name for the lock (default ``host:pid``).
        versions_dir: Where router folders go (default: the store's). A relative folder is
            made absolute here, so that the paths the store records load from any
            worker's working folder.

    Attributes:
        skipped: Why the last :meth:`retrain` that returned None did not retrain (None
            before any did).

    Raises:
        ConfigurationError: For a share outside (0, 1), fewer than 2 folds, an unknown label
            kind, ``min_rows`` below
            :data:`~shared_router.live.settings.MIN_RETRAIN_ROWS`, or no folder for versions.
    """

    def __init__(
        self,
        store: ShadowStore,
        *,
        min_rows: int = 200,
        every: int = 200,
        holdout_share: float = 0.3,
        folds: int = 5,
        l2: Sequence[float] = DEFAULT_L2_GRID,
        labels: LiveLabels = "auto",
        min_gain: float = 0.0,
        lock_ttl_s: float = 900.0,
        seed: int = 0,
        owner: str | None = None,
        versions_dir: str | Path | None = None,
    ) -> None:
        if not 0.0 < holdout_share < 1.0:
            raise ConfigurationError(f"holdout_share must lie in (0, 1), got {holdout_share!r}")
        if folds < 2:
            raise ConfigurationError(f"folds must be >= 2, got {folds!r}")
        labels = checked_live_labels(labels)
        folder = Path(versions_dir) if versions_dir is not None else store.versions_dir
        if folder is None:
            raise ConfigurationError(
                f"store {store.url!r} has no folder for router versions (a PostgreSQL store "
                "has none of its own); pass Retrainer(..., versions_dir=DIR)"
            )
        if min_rows < MIN_RETRAIN_ROWS or every < 1:
            raise ConfigurationError(
                f"min_rows must be >= {MIN_RETRAIN_ROWS} ({MIN_RETRAIN_HOLDOUT} rows are held "
                f"out for the comparison at the least, and {MIN_RETRAIN_SIDE} fit) and every "
                f">= 1, got {min_rows!r}, {every!r}"
            )
        self.store = store
        self.min_rows = min_rows
        self.every = every
        self.holdout_share = holdout_share
        self.folds = folds
        self.l2 = tuple(l2)
        self.labels: LiveLabels = labels
        self.min_gain = min_gain
        self.lock_ttl_s = lock_ttl_s
        self.seed = seed
        self.owner = owner or f"{default_worker()}:{uuid.uuid4().hex[:8]}"
        self.versions_dir = folder.expanduser().absolute()
        self.skipped: str | None = None
        self._stopped = threading.Event()

    def due(self, n_rows: int, rows_at_last: int) -> bool:
        """Whether ``n_rows`` rows (``rows_at_last`` at the last attempt) call for retraining."""
        return n_rows >= self.min_rows and n_rows - rows_at_last >= self.every

    def retrain(
        self,
        current: Router,
        current_version: str,
        current_fit_ids: frozenset[int],
        rows: Sequence[StoredRow] | None = None,
        *,
        current_fit_scores: Mapping[int, float] | None = None,
    ) -> RetrainOutcome | None:
        """Fit a candidate on the rows, compare, save and record it (under the store's lock).

        Args:
            current: The router in use.
            current_version: Its version name.
            current_fit_ids: The rows its head was fitted on.
            rows: The rows to use (default: all the store's).
            current_fit_scores: Cross-fitted scores of rows in ``current_fit_ids``, by row id
                (``VersionRecord.cross_fit_scores()``): the current router's out-of-sample
                scores of them, so that they can be held out too. A fitted row without one
                is never held out.

        Returns:
            The outcome, or None when another worker holds the lock or the rows cannot train
            a head (too few, or one label only).
        """
        if self._stopped.is_set():
            self._skip(_STOPPED)
            return None
        if not self.store.try_lock(RETRAIN_LOCK, self.owner, self.lock_ttl_s):
            reason = "another worker holds the store's retraining lock"
            holder = self.store.lock_holder(RETRAIN_LOCK)
            if holder is not None:
                until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder[1]))
                reason += f" ({holder[0]}, until {until}, when it expires if that worker is gone)"
            self._skip(reason)
            return None
        try:
            return self._retrain(
                current,
                current_version,
                current_fit_ids,
                dict(current_fit_scores or {}),
                rows or self.store.rows(),
            )
        finally:
            self.store.release_lock(RETRAIN_LOCK, self.owner)

    def _retrain(
        self,
        current: Router,
        current_version: str,
        current_fit_ids: frozenset[int],
        current_fit_scores: dict[int, float],
        rows: Sequence[StoredRow],
    ) -> RetrainOutcome | None:
        encoder = current.encoder_
        try:
            X_all, usable = row_vectors(rows, encoder, stop=self._stopped)
        except _Stopped:
            self._skip(_STOPPED)
            return None
        kept = [r for r, ok in zip(rows, usable, strict=True) if ok]
        if len(kept) < self.min_rows:
            self._skip(
                f"{len(kept)} usable rows (with a text, or an embedding of this encoder) of "
                f"the {len(rows)} read; min_rows is {self.min_rows}"
            )
            return None
        ids = np.array([r.row_id for r in kept])
        small = np.array([r.row.small_quality for r in kept])
        large = np.array([r.row.large_quality for r in kept])
        fitted_by_current = np.isin(ids, list(current_fit_ids))
        scored_by_current = np.isin(ids, list(current_fit_scores))
        rng = np.random.default_rng([self.seed, len(kept)])
        eligible = np.flatnonzero(~fitted_by_current | scored_by_current)
        rng.shuffle(eligible)
        n_holdout = max(
            int(round(self.holdout_share * eligible.size)), min(eligible.size, MIN_RETRAIN_HOLDOUT)
        )
        holdout = np.sort(eligible[:n_holdout])
        fit = np.setdiff1d(np.arange(len(kept)), holdout)
        if holdout.size < MIN_RETRAIN_SIDE or fit.size < MIN_RETRAIN_SIDE:
            self._skip(
                f"{holdout.size} held-out and {fit.size} fitting rows; each needs "
                f"{MIN_RETRAIN_SIDE} (rows the current version was fitted on are never held "
                "out); wait for more new rows"
            )
            return None
        try:
            compared = fit_live_head(
                X_all[fit],
                small[fit],
                large[fit],
                labels=self.labels,
                l2=self.l2,
                folds=self.folds,
                seed=self.seed,
            )
        except TrainingError as exc:
            self._skip(str(exc))
            return None
        if self._stopped.is_set():
            self._skip(_STOPPED)
            return None
        new_scores = compared.head.predict_proba(X_all[holdout])
        current_scores = current.head_.predict_proba(X_all[holdout])
        by_cross_fit = fitted_by_current[holdout]
        current_scores[by_cross_fit] = [current_fit_scores[i] for i in ids[holdout][by_cross_fit]]
        q_small, q_large = small[holdout], large[holdout]
        gap_new, gap_current = (
            gap_recovered_by_scores(new_scores, q_small, q_large),
            gap_recovered_by_scores(current_scores, q_small, q_large),
        )
        served = refit_live_head(
            X_all, small, large, recipe=compared, folds=self.folds, seed=self.seed
        )
        if served.out_of_fold is None:
            self._skip(
                f"a fold of the {len(kept)} rows has one label only, so not every row gets "
                "an out-of-fold score to calibrate on"
            )
            return None
        swapped = bool(np.isfinite(gap_new)) and (
            not np.isfinite(gap_current) or gap_new > gap_current + self.min_gain
        )
        version = f"live-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        candidate = Router(encoder, head_type="logistic", l2=self.l2, progress=False, name=version)
        candidate.encoder_ = encoder
        candidate.head_ = served.head
        candidate.pair_ = current.pair_
        candidate.label_type_ = served.labels
        candidate.metadata_ = {
            "n_train": len(kept),
            "n_val": 0,
            "l2_chosen": served.l2,
            "base_encoder": encoder.name,
            "fine_tuned": False,
            "metrics": {
                "live_holdout": {
                    "n": int(holdout.size),
                    "gap_recovered": float(gap_new),
                    "gap_recovered_parent": float(gap_current),
                    "parent": current_version,
                    "labels": served.labels,
                    "label_gaps_out_of_fold": {
                        kind: (gap if np.isfinite(gap) else None)
                        for kind, gap in served.label_gaps.items()
                    },
                }
            },
            "description": (
                f"Fitted on {len(kept)} live shadow rows (exact logistic head on "
                f"{_LABEL_TEXT[served.labels]} labels{_chosen(served.label_gaps)}, L2 by "
                f"{self.folds}-fold cross-validation, both chosen on {fit.size} of the rows); "
                f"the same head fitted on those {fit.size} rows was compared with "
                f"{current_version} on the other {holdout.size}; calibrated on all "
                f"{len(kept)} rows by their out-of-fold scores."
            ),
        }
        if float(large.sum()) > 0.0:
            candidate.calibration_ = CalibrationTable.from_scores(served.out_of_fold, small, large)
        folder = self._save(candidate, version)
        in_id_order = np.argsort(ids, kind="stable")
        record = VersionRecord(
            version=version,
            created_at=time.time(),
            path=str(folder),
            parent=current_version,
            swapped=swapped,
            n_fit=len(kept),
            n_holdout=int(holdout.size),
            gap_new=float(gap_new),
            gap_current=float(gap_current),
            fit_row_ids=tuple(int(i) for i in ids[in_id_order]),
            fit_row_scores=tuple(float(x) for x in served.out_of_fold[in_id_order]),
        )
        self.store.add_version(record)
        logger.info(
            "retrained %s on %d live rows: gap recovered %.4f (fitted on %d of them) vs %.4f "
            "for %s on the other %d: %s",
            version,
            len(kept),
            gap_new,
            fit.size,
            gap_current,
            current_version,
            holdout.size,
            "swapped in" if swapped else "kept the current router",
        )
        return RetrainOutcome(record, candidate)

    def stop(self) -> None:
        """Make a retraining in progress give up at its next step, and later ones skip.

        A live loop that closes stops its retrainer, so that its thread ends before the
        interpreter does (a thread still inside the encoder at exit aborts the process).
        """
        self._stopped.set()

    def release(self) -> None:
        """Release the store's retraining lock if this retrainer holds it (a worker that stops
        mid-retraining: the others need not wait for the lock to expire)."""
        self.store.release_lock(RETRAIN_LOCK, self.owner)

    def _skip(self, reason: str) -> None:
        """Note and log why this attempt did not retrain."""
        self.skipped = reason
        logger.info("retraining skipped: %s", reason)

    def _save(self, router: Router, version: str) -> Path:
        """Save into a temporary folder, then rename it: a kill leaves no half router."""
        final = self.versions_dir / version
        temporary = self.versions_dir / f".{version}.partial"
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        try:
            router.save(temporary)
            os.replace(temporary, final)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        return final
