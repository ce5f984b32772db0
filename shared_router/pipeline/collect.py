"""Collect sampled responses of several models to a file of queries, resumably.

``collect`` asks every model for ``samples`` responses to every query, with bounded
concurrency, per-request timeouts and retries with exponential backoff and jitter (see
:class:`shared_router.pipeline.settings.EngineSettings`). Each finished request (a response
or, after the last retry, an error) is appended to a journal and fsynced at once (see
:mod:`shared_router.pipeline.journal`); the output file is assembled from the journal at the
end and written atomically. Rerunning the same command skips every (query id, model, sample)
that already has a response, retries the ones that failed, and rebuilds the output: a killed
run loses at most its in-flight requests, and rows are never lost or duplicated.

Output rows follow the data contract: the input row (query under ``query``, reference under
``reference``, id under ``id``, every other field kept; a row without ``split`` gets one
from a hash of its id, :func:`split_for_id`, so that ``hybrid-llm train`` can use the file
as it is) plus, per model name::

    "models": {NAME: {"spec": SPEC, "responses": [...], "response": first or null,
                      "latency_s": [...], "usage": [{"input_tokens", "output_tokens"}, ...],
                      "errors": [{"sample", "error", "attempts"}, ...]}}

``responses`` holds the successful samples in sample order; ``errors`` the samples that have
none yet (a rerun retries them).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from shared_router._internal.progress import ProgressBar
from shared_router.data import read_jsonl
from shared_router.errors import ConfigurationError, DataError
from shared_router.pipeline.journal import Journal, write_jsonl_atomic
from shared_router.pipeline.ray_engine import run_on_ray
from shared_router.pipeline.settings import (
    DEFAULT_ENGINE,
    DEFAULT_FIELDS,
    EngineSettings,
    InputFields,
)
from shared_router.pipeline.sources import (
    ResponseSource,
    RetryPolicy,
    SourceSpec,
    TimedGeneration,
    generate_with_retries,
)

__all__ = [
    "CollectSummary",
    "QueryRow",
    "RequestJob",
    "RequestRunner",
    "collect",
    "read_queries",
    "split_for_id",
    "stable_id",
]

Record = dict[str, Any]
_Key = tuple[str, str, int, str]


def stable_id(query: str) -> str:
    """A stable id for a query that has none: ``"q-"`` and 16 hex digits of its sha256."""
    return "q-" + _digest(query)


SPLITS = (("train", 80), ("val", 90), ("test", 100))
"""Split names with the cumulative share (in %) of the id-hash buckets they take."""


def split_for_id(row_id: str) -> str:
    """The split of a row by a hash of its id: 80% ``train``, 10% ``val``, 10% ``test``."""
    bucket = int(hashlib.sha256(row_id.encode("utf-8")).hexdigest()[:8], 16) % 100
    return next(name for name, upper in SPLITS if bucket < upper)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class QueryRow:
    """One input query.

    Attributes:
        id: The query id (as a string; the row keeps the original value).
        query: The prompt.
        row: The output row without collected results: ``id``, ``query``, ``reference``
            (when present), ``split`` and every other input field, including any ``models``
            already there.
        line: The input line number.
    """

    id: str
    query: str
    row: Mapping[str, Any]
    line: int


def read_queries(path: str | Path, *, fields: InputFields = DEFAULT_FIELDS) -> list[QueryRow]:
    """Read a JSONL file of queries.

    Rows without an id get :func:`stable_id`; rows without a ``split`` get
    :func:`split_for_id`.

    Args:
        path: One JSON object per line.
        fields: The fields holding the prompt, the reference answer and the id.

    Returns:
        The queries in file order.

    Raises:
        DataError: If the file is missing or empty, a line is malformed, a query is missing
            or blank, or two rows have the same id (file and line named).
    """
    rows: list[QueryRow] = []
    seen: dict[str, int] = {}
    for line, obj in read_jsonl(path):
        query, raw_id = _query_and_id(obj, fields, path, line)
        key = str(raw_id)
        if key in seen:
            raise DataError(
                f"id {key!r} also on line {seen[key]}; ids must be unique (rows without an id "
                "get a hash of the query, so identical queries collide: drop duplicates)",
                path=str(path),
                line=line,
            )
        seen[key] = line
        row = _contract_row(obj, {"id": raw_id, "query": query}, fields, path, line)
        row.setdefault("split", split_for_id(key))
        rows.append(QueryRow(id=key, query=query, row=row, line=line))
    if not rows:
        raise DataError("no queries in the file; give one JSON object per line", path=str(path))
    return rows


def _query_and_id(
    obj: Mapping[str, Any], fields: InputFields, path: str | Path, line: int
) -> tuple[str, str | int]:
    """The prompt of an input line and its id (a hash of the prompt where it has none)."""
    query = obj.get(fields.query)
    if not isinstance(query, str) or not query.strip():
        raise DataError(
            f"field {fields.query!r} must be a non-empty string, got {query!r:.80}; "
            "choose the field with --query-field",
            path=str(path),
            line=line,
        )
    raw_id = obj.get(fields.id)
    if raw_id is None:
        return query, stable_id(query)
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise DataError(
            f"field {fields.id!r} must be a string or an integer, got {raw_id!r}",
            path=str(path),
            line=line,
        )
    return query, raw_id


def _contract_row(
    obj: Mapping[str, Any], row: dict[str, Any], fields: InputFields, path: str | Path, line: int
) -> dict[str, Any]:
    """``row`` (id and query) with the reference and every other field of the input line."""
    if obj.get(fields.reference) is not None:
        row["reference"] = obj[fields.reference]
    for name, value in obj.items():
        if name in (fields.query, fields.reference, fields.id):
            continue
        if name in row:
            raise DataError(
                f"field {name!r} clashes with the renamed {name!r} field; rename one of them",
                path=str(path),
                line=line,
            )
        row[name] = value
    if not isinstance(row.get("models", {}), dict):
        raise DataError(
            f"'models' must be an object of model name -> result, got {row['models']!r:.60}",
            path=str(path),
            line=line,
        )
    return row


@dataclass(frozen=True)
class RequestJob:
    """One request: sample ``sample`` of model ``model`` for query ``id``."""

    id: str
    model: str
    sample: int
    prompt: str


class RequestRunner:
    """Runs request jobs against resolved sources on one persistent event loop.

    The loop lives as long as the runner, so clients that bind to a loop (HTTP connection
    pools) can be reused across batches. Used by the local engine and by each Ray worker.

    Args:
        specs: Model name -> SPEC.
        policy: Tries, delays and timeout per request.
        concurrency: Requests in flight at once.
    """

    def __init__(
        self, specs: Mapping[str, SourceSpec], policy: RetryPolicy, concurrency: int
    ) -> None:
        self.policy = policy
        self.concurrency = concurrency
        self.sources: dict[str, ResponseSource] = {
            name: spec.resolve() for name, spec in specs.items()
        }
        self._loop = asyncio.new_event_loop()
        self._rng = random.Random()

    def run(self, jobs: Sequence[RequestJob], on_record: Callable[[Record], None]) -> None:
        """Run the jobs, handing each finished one to ``on_record`` as soon as it is done.

        Args:
            jobs: The requests.
            on_record: Called with each journal record (a response or an error).
        """
        self._loop.run_until_complete(self._run(jobs, on_record))

    def __call__(self, jobs: Sequence[RequestJob]) -> list[Record]:
        """Run the jobs and return their journal records (the Ray workers' entry point)."""
        records: list[Record] = []
        self.run(jobs, records.append)
        return records

    def close(self) -> None:
        """Cancel whatever is still running (after an interrupt) and close the loop."""
        loop = self._loop
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            # A task stopped by Ctrl-C re-raises KeyboardInterrupt when cancelled; that
            # interrupt is already on its way up, so the clean-up goes on.
            with contextlib.suppress(KeyboardInterrupt):
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            for task in pending:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: asyncio logs no "never retrieved" warning
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    async def _run(self, jobs: Sequence[RequestJob], on_record: Callable[[Record], None]) -> None:
        queue = iter(jobs)

        async def worker() -> None:
            for job in queue:
                outcome = await generate_with_retries(
                    self.sources[job.model], job.prompt, self.policy, self._rng
                )
                on_record(_record(job, outcome))

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(jobs)))))


def _record(job: RequestJob, outcome: TimedGeneration) -> Record:
    record: Record = {
        "id": job.id,
        "model": job.model,
        "sample": job.sample,
        "prompt_sha": _digest(job.prompt),
        "attempts": outcome.attempts,
    }
    if outcome.generation is None:
        record["error"] = outcome.error
        return record
    record.update(
        text=outcome.generation.text,
        latency_s=round(outcome.latency_s or 0.0, 6),
        input_tokens=outcome.generation.input_tokens,
        output_tokens=outcome.generation.output_tokens,
    )
    return record


@dataclass
class _Results:
    """What the journal says: the response or the latest error per request key."""

    done: dict[_Key, Record] = field(default_factory=dict)
    failed: dict[_Key, Record] = field(default_factory=dict)

    def add(self, record: Record) -> None:
        key = (str(record["id"]), str(record["model"]), int(record["sample"]), record["prompt_sha"])
        if "text" in record:
            self.done.setdefault(key, record)
        else:
            self.failed[key] = record


@dataclass(frozen=True)
class CollectSummary:
    """What a collect run did.

    Attributes:
        output: The data file written.
        journal: The journal it was assembled from.
        rows: Queries in the output.
        requests: Requests the output asks for (rows x models x samples).
        skipped: Requests already done by an earlier run.
        completed: Requests answered in this run.
        errors: Requests without a response after this run (a rerun retries them).
    """

    output: Path
    journal: Path
    rows: int
    requests: int
    skipped: int
    completed: int
    errors: int


def collect(
    queries: str | Path,
    output: str | Path,
    models: Mapping[str, SourceSpec | str],
    *,
    samples: int = 1,
    engine: EngineSettings = DEFAULT_ENGINE,
    fields: InputFields = DEFAULT_FIELDS,
    journal: str | Path | None = None,
) -> CollectSummary:
    """Collect ``samples`` responses of every model to every query; resumable.

    Args:
        queries: JSONL input (see :func:`read_queries`).
        output: JSONL output (see the module docstring); written atomically at the end.
        models: Output model name -> SPEC (a :class:`SourceSpec` or a SPEC string).
        samples: Responses per model and query (sampling needs a temperature > 0 in the
            model's settings).
        engine: Where the requests run (local asyncio or Ray workers, the same output
            either way), how many are in flight, their retries and timeout, and whether a
            progress bar with ETA is shown on stderr.
        fields: The input fields holding the prompt, the reference answer and the id.
        journal: The journal file; defaults to ``OUTPUT.journal``.

    Returns:
        What was done.

    Raises:
        ConfigurationError: If no model is given or ``samples`` is below 1.
        DataError: For bad input (empty or malformed query file, unknown SPEC, bad settings)
            or a journal held by another run.
    """
    if not models:
        raise ConfigurationError("no models given; name at least one SPEC")
    if samples < 1:
        raise ConfigurationError(f"samples must be >= 1, got {samples}")
    specs = {name: SourceSpec(s) if isinstance(s, str) else s for name, s in models.items()}
    rows = read_queries(queries, fields=fields)
    journal_path = Path(journal) if journal is not None else Path(str(output) + ".journal")
    runner = (
        RequestRunner(specs, engine.retry, engine.concurrency) if engine.kind == "local" else None
    )
    if runner is None:  # resolve every SPEC here too, so that a bad one fails before any work
        for spec in specs.values():
            spec.resolve()
    results = _Results()
    try:
        with Journal(journal_path, kind="collect") as log:
            for record in log.records:
                results.add(record)
            jobs = [
                RequestJob(row.id, name, sample, row.query)
                for row in rows
                for name in specs
                for sample in range(samples)
                if (row.id, name, sample, _digest(row.query)) not in results.done
            ]
            _run_requests(jobs, runner, specs, engine, log, results)
    finally:
        if runner is not None:
            runner.close()
    out_rows = [_assemble(row, results, specs, samples) for row in rows]
    write_jsonl_atomic(output, out_rows)
    total = len(rows) * len(specs) * samples
    answered = sum(len(row["models"][name]["responses"]) for row in out_rows for name in specs)
    return CollectSummary(
        output=Path(output),
        journal=journal_path,
        rows=len(rows),
        requests=total,
        skipped=total - len(jobs),
        completed=answered - (total - len(jobs)),
        errors=total - answered,
    )


def _run_requests(
    jobs: Sequence[RequestJob],
    runner: RequestRunner | None,
    specs: Mapping[str, SourceSpec],
    engine: EngineSettings,
    log: Journal,
    results: _Results,
) -> None:
    """Run the jobs on ``runner`` (the local engine) or on Ray, journaling each record."""
    with ProgressBar(len(jobs), "collect", enabled=engine.progress) as bar:

        def on_record(record: Record) -> None:
            log.append(record)
            results.add(record)
            bar.advance()

        def on_records(records: list[Record]) -> None:
            for record in records:
                on_record(record)

        if runner is not None:
            runner.run(jobs, on_record)
        elif jobs:
            size = engine.concurrency
            run_on_ray(
                partial(RequestRunner, specs, engine.retry, engine.concurrency),
                [jobs[i : i + size] for i in range(0, len(jobs), size)],
                on_records,
                address=engine.ray_address,
                workers=engine.ray_workers,
            )


def _assemble(
    row: QueryRow, results: _Results, specs: Mapping[str, SourceSpec], samples: int
) -> Record:
    out = dict(row.row)
    models = dict(out.get("models") or {})
    digest = _digest(row.query)
    for name, spec in specs.items():
        entry: Record = {
            "spec": spec.spec,
            "responses": [],
            "response": None,
            "latency_s": [],
            "usage": [],
            "errors": [],
        }
        for sample in range(samples):
            key = (row.id, name, sample, digest)
            answer = results.done.get(key)
            if answer is not None:
                entry["responses"].append(answer["text"])
                entry["latency_s"].append(answer["latency_s"])
                entry["usage"].append(
                    {
                        "input_tokens": answer["input_tokens"],
                        "output_tokens": answer["output_tokens"],
                    }
                )
                continue
            failure = results.failed[key]
            entry["errors"].append(
                {"sample": sample, "error": failure["error"], "attempts": failure["attempts"]}
            )
        entry["response"] = entry["responses"][0] if entry["responses"] else None
        models[name] = entry
    out["models"] = models
    return out
