"""Score the collected responses of a data file with a quality metric, resumably.

``judge_file`` reads a data file written by ``collect`` (or any file whose model entries have
``responses`` or ``response``), scores every response with an answer-quality metric named in
:mod:`shared_router.pipeline.quality_metrics`, and writes per model ``scores`` (one per
response, in order), ``score`` (their mean) and ``metric`` — the fields the router's labels
are made from. The file is rewritten atomically (in place unless an output is given).

Every finished score goes to a journal (``OUTPUT.judge.journal``) keyed by a hash of the
metric, query, response and reference, so a rerun, or a rerun after ``collect`` added
responses, scores only what is new. A response the metric could not score (an unreadable
LLM-judge reply, a failing user function) is recorded with its error; its model entry then
gets ``score: null`` and ``score_errors`` (so training skips the row) and a rerun retries it.

A lone surrogate in a query, response or reference (``"\ud800"``, valid JSON that cannot be
encoded as UTF-8) is replaced by U+FFFD, the policy of
:func:`shared_router._internal.validation.encodable_text`, in what the metric sees, in the
cache key and in the file written: one such text never fails the run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from shared_router._internal.progress import ProgressBar
from shared_router._internal.validation import encodable_text
from shared_router.data import read_jsonl
from shared_router.errors import ConfigurationError, DataError, ModelNotInDataError
from shared_router.pipeline.journal import Journal, write_jsonl_atomic
from shared_router.pipeline.quality_base import Judgement, QualityMetric, ScoreItem
from shared_router.pipeline.quality_metrics import MetricSpec
from shared_router.pipeline.ray_engine import run_on_ray
from shared_router.pipeline.settings import DEFAULT_ENGINE, EngineSettings

__all__ = ["JudgeSummary", "ScoreJob", "ScoreRunner", "judge_file"]

Record = dict[str, Any]


@dataclass(frozen=True)
class ScoreJob:
    """One response to score, under its cache key."""

    key: str
    item: ScoreItem


class ScoreRunner:
    """Scores batches of jobs with one metric (the local engine and each Ray worker).

    Args:
        spec: The metric to build.
    """

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec
        self.metric: QualityMetric = spec.build()

    def __call__(self, jobs: Sequence[ScoreJob]) -> list[Record]:
        """Score the jobs and return their journal records."""
        judgements = self.metric.score_batch([job.item for job in jobs])
        return [_record(job, judgement) for job, judgement in zip(jobs, judgements, strict=True)]


def _record(job: ScoreJob, judgement: Judgement) -> Record:
    score = judgement.score
    if score is None:
        return {"key": job.key, "error": judgement.error or "no score"}
    if not 0.0 <= score <= 1.0:
        return {"key": job.key, "error": f"metric returned {score!r}, outside [0, 1]"}
    return {"key": job.key, "score": score}


@dataclass(frozen=True)
class JudgeSummary:
    """What a judge run did.

    Attributes:
        output: The data file written.
        journal: The score journal.
        rows: Rows in the file.
        responses: Responses in the file that were to be scored.
        skipped: Distinct responses already scored by an earlier run.
        scored: Distinct responses scored in this run.
        errors: Distinct responses left without a score (a rerun retries them).
    """

    output: Path
    journal: Path
    rows: int
    responses: int
    skipped: int
    scored: int
    errors: int


def judge_file(
    data: str | Path,
    metric: MetricSpec | str,
    *,
    output: str | Path | None = None,
    models: Sequence[str] | None = None,
    reference_field: str = "reference",
    journal: str | Path | None = None,
    batch_size: int = 16,
    engine: EngineSettings = DEFAULT_ENGINE,
) -> JudgeSummary:
    """Fill in ``scores`` and ``score`` for every model's responses in a data file.

    Args:
        data: The data file (see the module docstring).
        metric: The metric, or its name without arguments.
        output: Where to write; None rewrites ``data`` in place (atomically).
        models: Only these models (default: every model with responses).
        reference_field: The row field holding the reference answer.
        journal: The score journal; defaults to ``OUTPUT.judge.journal``.
        batch_size: Responses per metric call (and per Ray task).
        engine: Local or Ray (the same output either way) and whether a progress bar with
            ETA is shown on stderr; its request settings are collect's (an LLM judge takes
            its own as metric arguments).

    Returns:
        What was done.

    Raises:
        ConfigurationError: If ``batch_size`` is below 1.
        DataError: If the file is empty or malformed, holds no responses, the metric is
            unknown, or the metric needs a reference a row lacks (the message names the
            metric, the field and the line).
        ModelNotInDataError: If a model in ``models`` has no responses in the file.
    """
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
    spec = MetricSpec(metric) if isinstance(metric, str) else metric
    target = Path(output) if output is not None else Path(data)
    journal_path = Path(journal) if journal is not None else Path(str(target) + ".judge.journal")
    rows = list(read_jsonl(data))
    if not rows:
        raise DataError("no rows in the file; collect responses first", path=str(data))
    runner = ScoreRunner(spec)
    scores = _Scores()
    try:
        wanted = _wanted_models(rows, models, data)
        keys = _response_keys(rows, wanted, spec, runner.metric, reference_field, data)
        jobs_by_key = {
            job.key: job for row_jobs in keys for jobs in row_jobs.values() for job in jobs
        }
        with Journal(journal_path, kind="judge") as log:
            for record in log.records:
                scores.add(record)
            skipped = sum(key in scores.done for key in jobs_by_key)
            pending = [job for key, job in jobs_by_key.items() if key not in scores.done]
            batches = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
            _run_scoring(batches, runner, engine, log, scores)
    finally:
        runner.metric.close()
    out_rows = [
        _assemble(obj, row_jobs, spec, scores)
        for (_, obj), row_jobs in zip(rows, keys, strict=True)
    ]
    write_jsonl_atomic(target, out_rows)
    return JudgeSummary(
        output=target,
        journal=journal_path,
        rows=len(rows),
        responses=sum(len(jobs) for row_jobs in keys for jobs in row_jobs.values()),
        skipped=skipped,
        scored=sum(key in scores.done for key in jobs_by_key) - skipped,
        errors=sum(key not in scores.done for key in jobs_by_key),
    )


@dataclass
class _Scores:
    """What the journal says: the score or the latest error per response key."""

    done: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def add(self, record: Record) -> None:
        key = str(record["key"])
        if "score" in record:
            self.done.setdefault(key, float(record["score"]))
        else:
            self.failed[key] = str(record["error"])


def _run_scoring(
    batches: Sequence[Sequence[ScoreJob]],
    runner: ScoreRunner,
    engine: EngineSettings,
    log: Journal,
    scores: _Scores,
) -> None:
    """Score the batches with ``runner`` (the local engine) or on Ray, journaling each record."""
    total = sum(len(batch) for batch in batches)
    with ProgressBar(total, f"judge ({runner.spec.name})", enabled=engine.progress) as bar:

        def on_records(records: list[Record]) -> None:
            for record in records:
                log.append(record)
                scores.add(record)
            bar.advance(len(records))

        if engine.kind == "local":
            for batch in batches:
                on_records(runner(batch))
        elif batches:
            run_on_ray(
                partial(ScoreRunner, runner.spec),
                batches,
                on_records,
                address=engine.ray_address,
                workers=engine.ray_workers,
            )


def _responses(entry: Any) -> list[str] | None:
    if not isinstance(entry, dict):
        return None
    responses = entry.get("responses")
    if isinstance(responses, list) and all(isinstance(r, str) for r in responses):
        return list(responses)
    response = entry.get("response")
    return [response] if isinstance(response, str) else None


def _wanted_models(
    rows: list[tuple[int, dict[str, Any]]], models: Sequence[str] | None, data: str | Path
) -> set[str]:
    with_responses: set[str] = set()
    every: set[str] = set()
    for _, obj in rows:
        entries = obj.get("models")
        if isinstance(entries, dict):
            every.update(entries)
            with_responses.update(n for n, e in entries.items() if _responses(e) is not None)
    if models is None:
        if not with_responses:
            raise DataError(
                "no model has responses to score; run `hybrid-llm collect` first", path=str(data)
            )
        return with_responses
    for name in models:
        if name not in with_responses:
            raise ModelNotInDataError(name, sorted(with_responses or every), path=str(data))
    return set(models)


def _response_keys(
    rows: list[tuple[int, dict[str, Any]]],
    wanted: set[str],
    spec: MetricSpec,
    metric: QualityMetric,
    reference_field: str,
    data: str | Path,
) -> list[dict[str, list[ScoreJob]]]:
    """Per row, per model to score, the score job of each response (in response order)."""
    out: list[dict[str, list[ScoreJob]]] = []
    for line, obj in rows:
        models = obj.get("models")
        entries: dict[str, Any] = models if isinstance(models, dict) else {}
        per_model: dict[str, list[ScoreJob]] = {}
        for name in sorted(wanted & set(entries)):
            responses = _responses(entries[name])
            if responses is None:
                continue
            query = obj.get("query")
            if not isinstance(query, str):
                raise DataError(
                    f"'query' must be a string, got {query!r:.60}", path=str(data), line=line
                )
            query = encodable_text(query)
            reference = _reference(obj, reference_field, spec, metric, data, line)
            per_model[name] = [
                ScoreJob(_key(spec, query, text, reference), ScoreItem(query, text, reference))
                for text in map(encodable_text, responses)
            ]
        out.append(per_model)
    return out


def _reference(
    obj: Mapping[str, Any],
    field_name: str,
    spec: MetricSpec,
    metric: QualityMetric,
    data: str | Path,
    line: int,
) -> str | None:
    value = obj.get(field_name)
    if value is None:
        if metric.needs_reference:
            raise DataError(
                f"metric {spec.name!r} needs a reference answer, but this row has no "
                f"{field_name!r} field; add it or name another field with --reference-field",
                path=str(data),
                line=line,
            )
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(
            f"reference field {field_name!r} must be a string or a number, got {value!r:.60}",
            path=str(data),
            line=line,
        )
    return encodable_text(str(value))


def _key(spec: MetricSpec, query: str, response: str, reference: str | None) -> str:
    digest = hashlib.sha256()
    for part in (spec.identity, query, response, "\x00none" if reference is None else reference):
        raw = encodable_text(part).encode("utf-8")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()[:32]


def _assemble(
    obj: dict[str, Any],
    row_jobs: Mapping[str, list[ScoreJob]],
    spec: MetricSpec,
    scores: _Scores,
) -> dict[str, Any]:
    if not row_jobs:
        return obj
    out = dict(obj)
    models = dict(out["models"])
    for name, jobs in row_jobs.items():
        entry = dict(models[name])
        entry["metric"] = spec.name
        errors = [
            {"sample": i, "error": scores.failed[job.key]}
            for i, job in enumerate(jobs)
            if job.key not in scores.done
        ]
        entry.pop("score_errors", None)
        entry.pop("scores", None)
        if errors or not jobs:
            entry["score"] = None
            if errors:
                entry["score_errors"] = errors
        else:
            entry["scores"] = [scores.done[job.key] for job in jobs]
            entry["score"] = sum(entry["scores"]) / len(entry["scores"])
        models[name] = entry
    out["models"] = models
    return out
