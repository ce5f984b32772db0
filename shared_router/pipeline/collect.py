"""Collect sampled responses of several models to a file of queries, resumably.

``collect`` asks every model for ``samples`` responses to every query (one count for
every model, or one per model: several samples of a small model at a temperature above 0
beside one answer of a large model), with bounded concurrency, per-request timeouts and
retries with exponential backoff and jitter (see
:class:`shared_router.pipeline.settings.EngineSettings`). Each finished request (a response
or, after the last retry, an error) is appended to a journal and fsynced at once (see
:mod:`shared_router.pipeline.journal`); the output file is assembled from the journal at the
end and written atomically. Rerunning the same command skips every (query id, model, sample)
that already has a response, retries the ones that failed, and rebuilds the output: a killed
run loses at most its in-flight requests, and rows are never lost or duplicated.

Output rows follow the data contract: the input row (query under ``query``, reference under
``reference``, id under ``id``, every other field kept; a row without ``split`` gets one
from a hash of its id, :func:`~shared_router.pipeline.queries.split_for_id`, so that
``hybrid-llm train`` can use the file as it is) plus, per model name::

    "models": {NAME: {"spec": SPEC, "responses": [...], "response": first or null,
                      "latency_s": [...], "usage": [{"input_tokens", "output_tokens"}, ...],
                      "token_logprobs": [[...] or null, ...],
                      "errors": [{"sample", "error", "attempts"}, ...]}}

``responses`` holds the successful samples in sample order; ``latency_s``, ``usage`` and
``token_logprobs`` are aligned with it. ``token_logprobs`` (each generated token's
log-probability, see :mod:`shared_router.pipeline.token_logprobs`) is there only for a model
that reported them for at least one sample, with null for a sample without them. ``errors``
holds the samples that have no response yet (a rerun retries them).

Blocking model calls run on each model's own threads, never on the event loop's default
executor (see :mod:`shared_router._internal.model_threads`): a call still blocked after its
timeout is abandoned and its thread written off as hung, named in the request's error and in
:attr:`CollectSummary.hung`, and logged; the other requests go on, and ``collect`` returns
without waiting for hung threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from shared_router._internal.model_threads import LoopExecutor, ModelThreads
from shared_router._internal.progress import ProgressBar
from shared_router._internal.validation import encodable_text
from shared_router.errors import ConfigurationError
from shared_router.pipeline.journal import Journal, write_jsonl_atomic
from shared_router.pipeline.queries import QueryRow, read_queries
from shared_router.pipeline.queries import text_digest as _digest
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
    "RequestJob",
    "RequestRunner",
    "collect",
    "samples_per_model",
]

Record = dict[str, Any]
_Key = tuple[str, str, int, str]

logger = logging.getLogger(__name__)


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
    Each model gets its own :class:`~shared_router._internal.model_threads.ModelThreads` of
    ``concurrency`` threads for blocking calls, also serving as the loop's default executor
    for that model's calls; :meth:`close` never waits for a hung one.

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
        self.threads = {name: ModelThreads(name, concurrency) for name in self.sources}
        self._loop = asyncio.new_event_loop()
        self._loop.set_default_executor(LoopExecutor(ModelThreads("collect loop", concurrency)))
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
        """Cancel whatever is still running (after an interrupt) and close the loop.

        Blocking calls still running are not waited for: their threads are daemon threads.
        """
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
        finally:
            for threads in self.threads.values():
                threads.shutdown(wait=False)
            loop.close()  # shuts the default executor down without waiting

    async def _run(self, jobs: Sequence[RequestJob], on_record: Callable[[Record], None]) -> None:
        queue = iter(jobs)

        async def worker() -> None:
            for job in queue:
                outcome = await generate_with_retries(
                    self.sources[job.model],
                    job.prompt,
                    self.policy,
                    self._rng,
                    threads=self.threads[job.model],
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
    if outcome.hung:
        record["hung"] = list(outcome.hung)
    if outcome.generation is None:
        record["error"] = outcome.error
        return record
    record.update(
        text=outcome.generation.text,
        latency_s=round(outcome.latency_s or 0.0, 6),
        input_tokens=outcome.generation.input_tokens,
        output_tokens=outcome.generation.output_tokens,
    )
    if outcome.generation.token_logprobs is not None:
        record["token_logprobs"] = [round(v, 6) for v in outcome.generation.token_logprobs]
    return record


@dataclass
class _Results:
    """What the journal says: the response or the latest error per request key."""

    done: dict[_Key, Record] = field(default_factory=dict)
    failed: dict[_Key, Record] = field(default_factory=dict)
    hung: dict[_Key, Record] = field(default_factory=dict)

    def add(self, record: Record, *, new: bool = False) -> None:
        key = (str(record["id"]), str(record["model"]), int(record["sample"]), record["prompt_sha"])
        if new and record.get("hung"):
            self.hung[key] = record
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
        requests: Requests the output asks for (rows x each model's samples).
        skipped: Requests already done by an earlier run.
        completed: Requests answered in this run.
        errors: Requests without a response after this run (a rerun retries them).
        hung: Requests of this run with a try that timed out while its blocking call went
            on (the thread is abandoned, not waited for), in input order; their records
            name the threads.
    """

    output: Path
    journal: Path
    rows: int
    requests: int
    skipped: int
    completed: int
    errors: int
    hung: tuple[RequestJob, ...] = ()


def samples_per_model(samples: int | Mapping[str, int], names: Sequence[str]) -> dict[str, int]:
    """Responses to ask each model for, per query.

    Args:
        samples: One count for every model, or model name -> count (a model left out
            gets 1).
        names: The models' names.

    Returns:
        Model name -> count, for every name in ``names``.

    Raises:
        ConfigurationError: If a count is not a whole number >= 1, or the mapping names a
            model that is not in ``names``.
    """
    if isinstance(samples, Mapping):
        unknown = sorted(set(samples) - set(names))
        if unknown:
            raise ConfigurationError(
                f"samples names unknown models {unknown}; the models are {list(names)}"
            )
        counts = {name: samples.get(name, 1) for name in names}
    else:
        counts = dict.fromkeys(names, samples)
    for name, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigurationError(
                f"samples must be >= 1 (a whole number), got {count!r} for model {name!r}"
            )
    return counts


def collect(
    queries: str | Path,
    output: str | Path,
    models: Mapping[str, SourceSpec | str],
    *,
    samples: int | Mapping[str, int] = 1,
    engine: EngineSettings = DEFAULT_ENGINE,
    fields: InputFields = DEFAULT_FIELDS,
    journal: str | Path | None = None,
) -> CollectSummary:
    """Collect ``samples`` responses of every model to every query; resumable.

    Args:
        queries: JSONL input (see :func:`~shared_router.pipeline.queries.read_queries`).
        output: JSONL output (see the module docstring); written atomically at the end.
        models: Output model name -> SPEC (a :class:`SourceSpec` or a SPEC string).
        samples: Responses per model and query: one count for every model, or model
            name -> count (a model left out gets 1), e.g. ``{"small": 5, "large": 1}``.
            Sampling needs a temperature > 0 in the model's settings.
        engine: Where the requests run (local asyncio or Ray workers, the same output
            either way), how many are in flight, their retries and timeout, and whether a
            progress bar with ETA is shown on stderr.
        fields: The input fields holding the prompt, the reference answer and the id.
        journal: The journal file; defaults to ``OUTPUT.journal``.

    Returns:
        What was done.

    Raises:
        ConfigurationError: If no model is given, a count of ``samples`` is below 1 or it
            names a model that is not in ``models``.
        DataError: For bad input (empty or malformed query file, unknown SPEC, bad settings)
            or a journal held by another run.
    """
    if not models:
        raise ConfigurationError("no models given; name at least one SPEC")
    specs = {
        encodable_text(name): SourceSpec(s) if isinstance(s, str) else s
        for name, s in models.items()
    }
    if isinstance(samples, Mapping):
        samples = {encodable_text(name): count for name, count in samples.items()}
    counts = samples_per_model(samples, list(specs))
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
                for sample in range(counts[name])
                if (row.id, name, sample, _digest(row.query)) not in results.done
            ]
            _run_requests(jobs, runner, specs, engine, log, results)
    finally:
        if runner is not None:
            runner.close()
    out_rows = [_assemble(row, results, specs, counts) for row in rows]
    write_jsonl_atomic(output, out_rows)
    total = len(rows) * sum(counts.values())
    answered = sum(len(row["models"][name]["responses"]) for row in out_rows for name in specs)
    hung = tuple(
        job for job in jobs if (job.id, job.model, job.sample, _digest(job.prompt)) in results.hung
    )
    if hung:
        _warn_hung(hung)
    return CollectSummary(
        output=Path(output),
        journal=journal_path,
        rows=len(rows),
        requests=total,
        skipped=total - len(jobs),
        completed=answered - (total - len(jobs)),
        errors=total - answered,
        hung=hung,
    )


def _warn_hung(hung: Sequence[RequestJob]) -> None:
    shown = ", ".join(f"{job.id} ({job.model}, sample {job.sample})" for job in hung[:10])
    more = f" and {len(hung) - 10} more" if len(hung) > 10 else ""
    logger.warning(
        "%d requests timed out while their model call went on blocking its thread: %s%s. "
        "The threads were abandoned (the run did not wait for them); check those models "
        "(a client without its own timeout?), then rerun to retry what failed",
        len(hung),
        shown,
        more,
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
            results.add(record, new=True)
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
    row: QueryRow, results: _Results, specs: Mapping[str, SourceSpec], counts: Mapping[str, int]
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
        logprobs: list[list[float] | None] = []
        for sample in range(counts[name]):
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
                logprobs.append(answer.get("token_logprobs"))
                continue
            failure = results.failed[key]
            entry["errors"].append(
                {"sample": sample, "error": failure["error"], "attempts": failure["attempts"]}
            )
        entry["response"] = entry["responses"][0] if entry["responses"] else None
        if any(values is not None for values in logprobs):
            entry["token_logprobs"] = logprobs
        models[name] = entry
    out["models"] = models
    return out
