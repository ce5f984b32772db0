"""The commands that train a router for your own model pair: ``collect``, ``judge``, ``build``.

Each command reads its flags into the pipeline's settings objects
(:class:`~shared_router.pipeline.settings.EngineSettings`,
:class:`~shared_router.pipeline.settings.InputFields`, SPECs and metric specs) and calls the
library function of the same name. An interrupt leaves the finished work in the journal and
exits with code 130.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from shared_router.cli.options import (
    CacheOption,
    EncoderOption,
    EpochsOption,
    HeadOption,
    HiddenOption,
    LabelsOption,
    PrecisionOption,
    RouterFlags,
    SeedOption,
    fail,
    label_type,
)

if TYPE_CHECKING:
    from shared_router.pipeline.settings import Engine, EngineSettings

__all__ = ["build", "collect", "judge"]

SPEC_HELP = "provider:model (LangChain init_chat_model, e.g. openai:gpt-4o) or module:callable."
SmallSpecOption = typer.Option(..., help=f"Small model SPEC: {SPEC_HELP}")
LargeSpecOption = typer.Option(..., help=f"Large model SPEC: {SPEC_HELP}")
SmallNameOption = typer.Option(None, help="Small model's name in the data.")
LargeNameOption = typer.Option(None, help="Large model's name in the data.")
SmallKwargsOption = typer.Option(None, help="Small model settings as JSON.")
SmallParamOption = typer.Option([], help="Small model setting key=value (repeatable).")
LargeKwargsOption = typer.Option(None, help="Large model settings as JSON.")
LargeParamOption = typer.Option([], help="Large model setting key=value (repeatable).")
QueriesArgument = typer.Argument(..., help="JSONL queries ('query', optional 'reference').")
EngineOption = typer.Option("local", help="'local' (asyncio) or 'ray' (needs hybrid-llm[ray]).")
RayAddressOption = typer.Option(None, help="Ray cluster address (default: a local Ray).")
WorkersOption = typer.Option(None, help="Ray workers (default: one per CPU).")
ProgressOption = typer.Option(True, "--progress/--no-progress", help="Show a progress bar.")
QueryFieldOption = typer.Option("query", help="Input field holding the prompt.")
ReferenceFieldOption = typer.Option("reference", help="Field holding the reference answer.")
IdFieldOption = typer.Option("id", help="Input field holding the id (missing: hash of query).")
ConcurrencyOption = typer.Option(8, min=1, help="Model requests in flight at once.")


def _seconds(value: float) -> float:
    """The ``--timeout`` value, checked: a finite number of seconds above 0 (not nan or inf)."""
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"must be a finite number of seconds > 0, got {value}")
    return value


TimeoutOption = typer.Option(120.0, callback=_seconds, help="Seconds one request may take.")
RetriesOption = typer.Option(3, min=0, help="Retries per request (exponential backoff, jitter).")


def _sample_counts(text: str) -> int | dict[str, int]:
    """``--samples``: one count, or ``small=N,large=M`` as role -> count.

    Raises:
        typer.BadParameter: If it is neither, or a count is not a whole number >= 1.
    """
    if "=" not in text:
        return _count(text, text)
    counts: dict[str, int] = {}
    for part in text.split(","):
        role, _, value = part.partition("=")
        role = role.strip()
        if role not in ("small", "large"):
            raise typer.BadParameter(f"takes N or small=N,large=M; {role!r} in {text!r} is neither")
        if role in counts:
            raise typer.BadParameter(f"names {role!r} twice in {text!r}")
        counts[role] = _count(value, text)
    return counts


def _count(value: str, text: str) -> int:
    try:
        count = int(value.strip())
    except ValueError:
        count = 0
    if count < 1:
        raise typer.BadParameter(f"needs whole numbers >= 1 (N or small=N,large=M), got {text!r}")
    return count


def _checked_samples(text: str) -> str:
    _sample_counts(text)
    return text


SamplesOption = typer.Option(
    "1",
    callback=_checked_samples,
    help="Responses per model and query: N for both models, or per model as "
    "small=N,large=M (a model left out gets 1), e.g. small=5,large=1.",
)
MetricArgOption = typer.Option(
    [], "--metric-arg", help="key=value argument of the metric (repeatable), e.g. mode=numeric."
)


def _engine_kind(engine: str) -> Engine:
    if engine not in ("local", "ray"):
        fail(f"--engine must be 'local' or 'ray', got {engine!r}")
    return "ray" if engine == "ray" else "local"


def _collect_engine(
    engine: str,
    concurrency: int,
    timeout: float,
    retries: int,
    progress: bool,
    ray_address: str | None,
    workers: int | None,
) -> EngineSettings:
    """The engine and request flags of ``collect`` and ``build`` as settings."""
    from shared_router.pipeline.settings import EngineSettings
    from shared_router.pipeline.sources import RetryPolicy

    retry = RetryPolicy(attempts=retries + 1, timeout=timeout)
    return EngineSettings(
        kind=_engine_kind(engine),
        concurrency=concurrency,
        retry=retry,
        progress=progress,
        ray_address=ray_address,
        ray_workers=workers,
    )


def _samples(text: str, small_name: str, large_name: str) -> int | dict[str, int]:
    """The checked ``--samples`` value for ``collect``: one count or model name -> count."""
    counts = _sample_counts(text)
    if isinstance(counts, int):
        return counts
    names = {"small": small_name, "large": large_name}
    return {names[role]: count for role, count in counts.items()}


def _source_specs(
    small: str,
    large: str,
    small_name: str | None,
    large_name: str | None,
    settings: tuple[str | None, list[str], str | None, list[str]],
) -> dict[str, Any]:
    """The models as {name: SourceSpec}, small first."""
    from shared_router.pipeline.sources import SourceSpec, parse_settings

    small_kwargs, small_param, large_kwargs, large_param = settings
    names = (small_name or small, large_name or large)
    if names[0] == names[1]:
        fail(f"both models are named {names[0]!r}; give --small-name and --large-name")
    return {
        names[0]: SourceSpec(
            small, parse_settings(small_param, small_kwargs, option="--small-kwargs/--small-param")
        ),
        names[1]: SourceSpec(
            large, parse_settings(large_param, large_kwargs, option="--large-kwargs/--large-param")
        ),
    }


def _interrupted(what: str) -> NoReturn:
    typer.echo(
        f"interrupted: finished {what} are saved in the journal; rerun the command to resume",
        err=True,
    )
    raise typer.Exit(130)


def collect(
    queries: Path = QueriesArgument,
    small: str = SmallSpecOption,
    large: str = LargeSpecOption,
    output: Path = typer.Option(..., "--output", "-o", help="The JSONL data file to write."),
    samples: str = SamplesOption,
    small_name: str | None = SmallNameOption,
    large_name: str | None = LargeNameOption,
    small_kwargs: str | None = SmallKwargsOption,
    small_param: list[str] = SmallParamOption,
    large_kwargs: str | None = LargeKwargsOption,
    large_param: list[str] = LargeParamOption,
    concurrency: int = ConcurrencyOption,
    timeout: float = TimeoutOption,
    retries: int = RetriesOption,
    query_field: str = QueryFieldOption,
    reference_field: str = ReferenceFieldOption,
    id_field: str = IdFieldOption,
    journal: Path | None = typer.Option(None, help="Journal file (default: OUTPUT.journal)."),
    engine: str = EngineOption,
    ray_address: str | None = RayAddressOption,
    workers: int | None = WorkersOption,
    progress: bool = ProgressOption,
) -> None:
    """Collect sampled responses of a small and a large model; rerun to resume or retry.

    Each response's token log-probabilities are recorded too where the model reports them.
    """
    from shared_router.pipeline.collect import collect as run_collect
    from shared_router.pipeline.settings import InputFields

    models = _source_specs(
        small, large, small_name, large_name, (small_kwargs, small_param, large_kwargs, large_param)
    )
    counts = _samples(samples, *models)
    try:
        engine_settings = _collect_engine(
            engine, concurrency, timeout, retries, progress, ray_address, workers
        )
        summary = run_collect(
            queries,
            output,
            models,
            samples=counts,
            engine=engine_settings,
            fields=InputFields(query_field, reference_field, id_field),
            journal=journal,
        )
    except KeyboardInterrupt:
        _interrupted("requests")
    typer.echo(
        f"collected {summary.rows} rows -> {summary.output} ({summary.completed} responses now, "
        f"{summary.skipped} from earlier runs, {summary.errors} failed)"
    )
    if summary.errors:
        typer.echo(f"{summary.errors} requests failed; rerun the command to retry them", err=True)


def judge(
    data: Path = typer.Argument(..., help="JSONL data with responses (from `collect`)."),
    metric: str = typer.Option(
        ..., help="bartscore, match, rouge, embedding, judge, or module:function."
    ),
    metric_arg: list[str] = MetricArgOption,
    output: Path | None = typer.Option(None, "--output", "-o", help="Default: DATA in place."),
    model: list[str] = typer.Option([], help="Score only this model (repeatable)."),
    reference_field: str = ReferenceFieldOption,
    journal: Path | None = typer.Option(None, help="Journal (default: OUTPUT.judge.journal)."),
    batch_size: int = typer.Option(16, min=1, help="Responses per metric call."),
    engine: str = EngineOption,
    ray_address: str | None = RayAddressOption,
    workers: int | None = WorkersOption,
    progress: bool = ProgressOption,
) -> None:
    """Score every response in [0, 1] ('scores' per sample, 'score' their mean) per model."""
    from shared_router.pipeline.judge import judge_file
    from shared_router.pipeline.quality_metrics import MetricSpec
    from shared_router.pipeline.settings import EngineSettings
    from shared_router.pipeline.sources import parse_settings

    spec = MetricSpec(metric, parse_settings(metric_arg, option="--metric-arg"))
    try:
        engine_settings = EngineSettings(
            kind=_engine_kind(engine),
            progress=progress,
            ray_address=ray_address,
            ray_workers=workers,
        )
        summary = judge_file(
            data,
            spec,
            output=output,
            models=model or None,
            reference_field=reference_field,
            journal=journal,
            batch_size=batch_size,
            engine=engine_settings,
        )
    except KeyboardInterrupt:
        _interrupted("scores")
    typer.echo(
        f"judged {summary.responses} responses in {summary.rows} rows with {metric} -> "
        f"{summary.output} (distinct responses: {summary.scored} scored now, {summary.skipped} "
        f"from earlier runs, {summary.errors} without a score)"
    )
    if summary.errors:
        typer.echo(f"{summary.errors} responses have no score; rerun to retry them", err=True)


def build(
    queries: Path = QueriesArgument,
    small: str = SmallSpecOption,
    large: str = LargeSpecOption,
    output: Path = typer.Option(..., "--output", "-o", help="Folder for data, router, report."),
    samples: str = SamplesOption,
    metric: str = typer.Option("bartscore", help="Quality metric (see `hybrid-llm judge`)."),
    metric_arg: list[str] = MetricArgOption,
    labels: str = LabelsOption,
    small_name: str | None = SmallNameOption,
    large_name: str | None = LargeNameOption,
    small_kwargs: str | None = SmallKwargsOption,
    small_param: list[str] = SmallParamOption,
    large_kwargs: str | None = LargeKwargsOption,
    large_param: list[str] = LargeParamOption,
    encoder: str = EncoderOption,
    head: str = HeadOption,
    hidden: str = HiddenOption,
    epochs: int = EpochsOption,
    seed: int = SeedOption,
    concurrency: int = ConcurrencyOption,
    timeout: float = TimeoutOption,
    retries: int = RetriesOption,
    query_field: str = QueryFieldOption,
    reference_field: str = ReferenceFieldOption,
    id_field: str = IdFieldOption,
    engine: str = EngineOption,
    ray_address: str | None = RayAddressOption,
    workers: int | None = WorkersOption,
    progress: bool = ProgressOption,
    precision: str = PrecisionOption,
    cache: bool = CacheOption,
) -> None:
    """Collect, judge, train, calibrate and evaluate a router for your model pair."""
    from shared_router.pipeline.build import build as run_build
    from shared_router.pipeline.quality_metrics import MetricSpec
    from shared_router.pipeline.settings import InputFields
    from shared_router.pipeline.sources import parse_settings

    label_kind = label_type(labels)
    models = _source_specs(
        small, large, small_name, large_name, (small_kwargs, small_param, large_kwargs, large_param)
    )
    (small_label, small_spec), (large_label, large_spec) = models.items()
    counts = _samples(samples, small_label, large_label)
    flags = RouterFlags(encoder, precision, cache, head, hidden, epochs, seed)
    try:
        metric_spec = MetricSpec(metric, parse_settings(metric_arg, option="--metric-arg"))
        router = flags.router(name=f"{small_label}-vs-{large_label}", progress=progress)
        engine_settings = _collect_engine(
            engine, concurrency, timeout, retries, progress, ray_address, workers
        )
        result = run_build(
            queries,
            output,
            small=small_spec,
            large=large_spec,
            small_name=small_label,
            large_name=large_label,
            samples=counts,
            metric=metric_spec,
            label_type=label_kind,
            router=router,
            engine=engine_settings,
            fields=InputFields(query_field, reference_field, id_field),
        )
    except KeyboardInterrupt:
        _interrupted("requests and scores")
    typer.echo(result.report_markdown.read_text(encoding="utf-8"))
    typer.echo(
        f"router -> {result.router}\nreport -> {result.report_json}, {result.report_markdown}\n"
        f"plot -> {result.plot}"
    )
