"""The ``hybrid-llm`` command line.

Every command turns bad input into a one-line error on stderr and exit code 2, never a
traceback. Heavy libraries are imported inside the commands that need them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TextIO

import typer

from shared_router.errors import HybridLLMError

if TYPE_CHECKING:
    from shared_router.encoders.cache import EmbeddingCache

__all__ = ["app", "main"]

app = typer.Typer(
    name="hybrid-llm",
    help="Route each LLM query to a small or a large model by predicted difficulty.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXIT_BAD_INPUT = 2


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit with code 2.

    Args:
        message: What went wrong and how to fix it.
    """
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, mapping library errors to a one-line message and exit code 2.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.
    """
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="hybrid-llm", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (HybridLLMError, FileNotFoundError, IsADirectoryError, PermissionError) as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as error:  # click usage errors carry their own exit code
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(EXIT_BAD_INPUT)
        raise


# --- core commands (demo, route, score, train, calibrate, evaluate, info) ---

DEMO_QUERIES = (
    "What is 15 + 27?",
    "What is the capital of Japan?",
    "Translate 'good morning' into Spanish.",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "Write a Python function that checks whether a string is a palindrome.",
    "Prove that there are infinitely many prime numbers.",
    "Explain the difference between a Roth IRA and a traditional IRA for a 30-year-old.",
    "Draft a legal memo on liability for a data breach under the GDPR, with counterarguments.",
    "Derive the closed form of the sum of k^3 for k = 1..n and prove it by induction.",
    "Design a distributed rate limiter for a global API and discuss its failure modes.",
)
DEMO_LEVELS: tuple[tuple[str, float], ...] = (
    ("max_quality_drop", 0.0),
    ("max_quality_drop", 0.01),
    ("max_quality_drop", 0.05),
    ("max_quality_drop", 0.10),
    ("large_share", 0.5),
)

RouterOption = typer.Option("default", "--router", "-r", help="'default' or a router folder.")
CacheOption = typer.Option(
    True,
    "--cache/--no-cache",
    help="Cache embeddings on disk ($HYBRID_LLM_CACHE or ~/.cache/hybrid-llm).",
)
HeadOption = typer.Option(
    "mlp",
    help="Head: mlp (trained with AdamW; --hidden sets its layers) or logistic (exact L2-"
    "regularised logistic regression, strength chosen on val; numpy only, no torch).",
)
PrecisionOption = typer.Option(
    "int8",
    help="Encoder precision: int8 (as the bundled router: as good on the benchmarks, ~2x "
    "faster to train and ~2x faster to route than fp32) or fp32. A router routes at the "
    "precision it was trained on.",
)


def _head_type(head: str) -> str:
    if head not in ("mlp", "logistic"):
        fail(f"--head must be mlp or logistic, got {head!r}")
    return head


def _cache(enabled: bool) -> EmbeddingCache | None:
    from shared_router.encoders.cache import EmbeddingCache

    return EmbeddingCache() if enabled else None


def _knob_args(
    max_quality_drop: float | None, large_share: float | None, threshold: float | None
) -> dict[str, float]:
    from shared_router.types import QualityKnobs

    return QualityKnobs(max_quality_drop, large_share, threshold).set_knobs()


@app.command()
def demo(router: str = RouterOption) -> None:
    """Route a handful of example queries at several quality levels."""
    from rich.console import Console
    from rich.table import Table

    from shared_router.routing.router import Router

    loaded = Router.load(router)
    scores = loaded.score(list(DEMO_QUERIES))
    table = Table(title=f"hybrid-llm demo: router {loaded.name!r}")
    table.add_column("query", ratio=3)
    table.add_column("p(small ok)", justify="right")
    for name, value in DEMO_LEVELS:
        label = f"drop<={value:.0%}" if name == "max_quality_drop" else f"large {value:.0%}"
        table.add_column(label, justify="center")
    decisions = {
        level: loaded.route_batch(list(DEMO_QUERIES), **{level[0]: level[1]})
        for level in DEMO_LEVELS
    }
    for i, (query, score) in enumerate(zip(DEMO_QUERIES, scores, strict=True)):
        cells = [decisions[level][i].model for level in DEMO_LEVELS]
        table.add_row(query, f"{score:.3f}", *cells)
    console = Console(width=max(Console().width, 110))
    console.print(table)
    for level in DEMO_LEVELS:
        routed = decisions[level]
        small = sum(d.model == "small" for d in routed)
        console.print(
            f"{level[0]}={level[1]:g}: threshold {routed[0].threshold:.3f}, "
            f"{small}/{len(routed)} to the small model"
        )


@app.command()
def route(
    texts: list[str] = typer.Argument(..., help="Texts to route."),
    router: str = RouterOption,
    max_quality_drop: float | None = typer.Option(None, help="Most relative quality drop."),
    large_share: float | None = typer.Option(None, help="Share of calls for the large model."),
    threshold: float | None = typer.Option(None, help="Raw threshold on p (p >= t: small)."),
) -> None:
    """Route texts and print one JSON decision per line."""
    import json

    from shared_router.routing.router import Router

    loaded = Router.load(router)
    knobs = _knob_args(max_quality_drop, large_share, threshold) or loaded.default_knobs.set_knobs()
    for text, decision in zip(texts, loaded.route_batch(texts, **knobs), strict=True):
        typer.echo(json.dumps({"text": text, **decision.as_dict()}))


@app.command()
def score(
    input_path: Path = typer.Argument(..., help="JSONL with a query per line."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the scored JSONL."),
    router: str = RouterOption,
    query_field: str = typer.Option("query", help="The field holding the text."),
    cache: bool = CacheOption,
) -> None:
    """Write each input line back with a "score" field: p(small is good enough)."""
    import json

    from shared_router.data import read_jsonl
    from shared_router.errors import DataError
    from shared_router.routing.router import Router

    rows = []
    for line_no, row in read_jsonl(input_path):
        if not isinstance(row.get(query_field), str):
            raise DataError(f"no string field {query_field!r}", path=str(input_path), line=line_no)
        rows.append(row)
    if not rows:
        raise DataError("no rows to score", path=str(input_path))
    scores = Router.load(router, cache=_cache(cache)).score([row[query_field] for row in rows])
    with _atomic_writer(output) as out:
        for row, value in zip(rows, scores, strict=True):
            out.write(json.dumps({**row, "score": round(float(value), 6)}) + "\n")
    typer.echo(f"scored {len(rows)} rows -> {output}")


@app.command()
def train(
    data: list[Path] = typer.Argument(..., help="JSONL file(s) in the data contract."),
    small: str = typer.Option(..., help="The small model's name in the data."),
    large: str = typer.Option(..., help="The large model's name in the data."),
    output: Path = typer.Option(..., "--output", "-o", help="The router folder to write."),
    labels: str = typer.Option("trans", help="Label type: det, prob or trans."),
    encoder: str = typer.Option("default", help="Sentence-transformers model name or path."),
    head: str = HeadOption,
    hidden: str = typer.Option("256", help="Hidden sizes, comma-separated; '' is linear."),
    epochs: int = typer.Option(100, help="Most epochs (early stopping on val)."),
    seed: int = typer.Option(0, help="Random seed."),
    score_field: str = typer.Option("score", help="Per-model quality field."),
    fine_tune: bool = typer.Option(False, help="Fine-tune the encoder too (slow on CPU)."),
    name: str | None = typer.Option(None, help="The router's name."),
    precision: str = PrecisionOption,
    cache: bool = CacheOption,
) -> None:
    """Train a router on split 'train', early-stop and calibrate on 'val'."""
    from shared_router.data import load_pair
    from shared_router.encoders.encoder import Encoder
    from shared_router.routing.router import Router, train_router

    if labels not in ("det", "prob", "trans"):
        fail(f"--labels must be det, prob or trans, got {labels!r}")
    pair = load_pair(data, small, large, score_field=score_field)
    model = Router(
        Encoder(encoder, precision=precision, cache=_cache(cache)),  # type: ignore[arg-type]
        head_type=_head_type(head),  # type: ignore[arg-type]
        hidden_sizes=() if head == "logistic" else _parse_hidden(hidden),
        epochs=epochs,
        seed=seed,
        fine_tune=fine_tune,
        name=name or f"{small}-vs-{large}",
    )
    trained = train_router(pair, label_type=labels, router=model)  # type: ignore[arg-type]
    trained.save(output)
    typer.echo(f"trained on {len(pair.split('train'))} rows -> {output}")


@app.command()
def calibrate(
    data: list[Path] = typer.Argument(..., help="Labelled JSONL in the data contract."),
    router: str = RouterOption,
    small: str = typer.Option(..., help="The small model's name in the data."),
    large: str = typer.Option(..., help="The large model's name in the data."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the router."),
    split: str | None = typer.Option(None, help="Use only this split (default: every row)."),
    score_field: str = typer.Option("score", help="Per-model quality field."),
    cache: bool = CacheOption,
) -> None:
    """Recalibrate an existing router on your own labelled data, without retraining."""
    from shared_router.data import load_pair
    from shared_router.routing.router import Router

    pair = load_pair(data, small, large, score_field=score_field)
    rows = pair.split(split) if split is not None else pair
    loaded = Router.load(router, cache=_cache(cache))
    loaded.calibrate(list(rows.queries), rows.small_quality, rows.large_quality)
    loaded.save(output)
    typer.echo(f"calibrated on {len(rows)} rows -> {output}")


@app.command()
def evaluate(
    data: list[Path] = typer.Argument(..., help="JSONL in the data contract."),
    router: str = RouterOption,
    small: str = typer.Option(..., help="The small model's name in the data."),
    large: str = typer.Option(..., help="The large model's name in the data."),
    split: str | None = typer.Option("test", help="Evaluate on this split ('' for all rows)."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the JSON report here."),
    plot: Path | None = typer.Option(None, help="Write a PNG plot here."),
    markdown: Path | None = typer.Option(None, help="Write a markdown report here."),
    score_field: str = typer.Option("score", help="Per-model quality field."),
    cache: bool = CacheOption,
) -> None:
    """Evaluate a router beside random, oracle and the length heuristic."""
    from shared_router.data import load_pair
    from shared_router.evaluation.plots import plot_curves
    from shared_router.evaluation.report import evaluate_scores
    from shared_router.routing.router import Router

    pair = load_pair(data, small, large, score_field=score_field)
    rows = pair.split(split) if split else pair
    loaded = Router.load(router, cache=_cache(cache))
    scores = loaded.score(list(rows.queries))
    report = evaluate_scores(
        {loaded.name: scores}, rows.small_quality, rows.large_quality, queries=list(rows.queries)
    )
    if json_path is not None:
        report.to_json(json_path)
    if markdown is not None:
        markdown.write_text(report.to_markdown(), encoding="utf-8")
    if plot is not None:
        plot_curves(report, plot)
    typer.echo(report.to_markdown())


@app.command()
def info(router: str = RouterOption) -> None:
    """Show a router's configuration and calibration summary."""
    import json

    from shared_router.routing.router import Router

    loaded = Router.load(router)
    typer.echo(json.dumps(loaded.describe(), indent=2, default=str))


def _parse_hidden(hidden: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in hidden.split(",") if part.strip())
    except ValueError:
        fail(
            f"--hidden must be comma-separated integers such as '256' or '512,128', got {hidden!r}"
        )


@contextmanager
def _atomic_writer(path: Path) -> Iterator[TextIO]:
    """Write a text file atomically: to a temporary file beside it, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            yield out
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


# --- pipeline commands (collect, judge, build) ---

SPEC_HELP = "provider:model (LangChain init_chat_model, e.g. openai:gpt-4o) or module:callable."
EngineOption = typer.Option("local", help="'local' (asyncio) or 'ray' (needs hybrid-llm[ray]).")
RayAddressOption = typer.Option(None, help="Ray cluster address (default: a local Ray).")
WorkersOption = typer.Option(None, help="Ray workers (default: one per CPU).")
ProgressOption = typer.Option(True, "--progress/--no-progress", help="Show a progress bar.")
QueryFieldOption = typer.Option("query", help="Input field holding the prompt.")
ReferenceFieldOption = typer.Option("reference", help="Field holding the reference answer.")
IdFieldOption = typer.Option("id", help="Input field holding the id (missing: hash of query).")
ConcurrencyOption = typer.Option(8, min=1, help="Model requests in flight at once.")
TimeoutOption = typer.Option(120.0, help="Seconds one request may take.")
RetriesOption = typer.Option(3, min=0, help="Retries per request (exponential backoff, jitter).")
SamplesOption = typer.Option(1, min=1, help="Responses per model and query.")
MetricArgOption = typer.Option(
    [], "--metric-arg", help="key=value argument of the metric (repeatable), e.g. mode=numeric."
)


def _engine(engine: str) -> Literal["local", "ray"]:
    if engine not in ("local", "ray"):
        fail(f"--engine must be 'local' or 'ray', got {engine!r}")
    return "ray" if engine == "ray" else "local"


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


@app.command()
def collect(
    queries: Path = typer.Argument(..., help="JSONL queries ('query', optional 'reference')."),
    small: str = typer.Option(..., help=f"Small model SPEC: {SPEC_HELP}"),
    large: str = typer.Option(..., help=f"Large model SPEC: {SPEC_HELP}"),
    output: Path = typer.Option(..., "--output", "-o", help="The JSONL data file to write."),
    samples: int = SamplesOption,
    small_name: str | None = typer.Option(None, help="Small model's name in the data."),
    large_name: str | None = typer.Option(None, help="Large model's name in the data."),
    small_kwargs: str | None = typer.Option(None, help="Small model settings as JSON."),
    small_param: list[str] = typer.Option([], help="Small model setting key=value (repeatable)."),
    large_kwargs: str | None = typer.Option(None, help="Large model settings as JSON."),
    large_param: list[str] = typer.Option([], help="Large model setting key=value (repeatable)."),
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
    """Collect sampled responses of a small and a large model; rerun to resume or retry."""
    from shared_router.pipeline.collect import collect as run_collect
    from shared_router.pipeline.sources import RetryPolicy

    models = _source_specs(
        small, large, small_name, large_name, (small_kwargs, small_param, large_kwargs, large_param)
    )
    try:
        summary = run_collect(
            queries,
            output,
            models,
            samples=samples,
            concurrency=concurrency,
            retry=RetryPolicy(attempts=retries + 1, timeout=timeout),
            engine=_engine(engine),
            journal=journal,
            query_field=query_field,
            reference_field=reference_field,
            id_field=id_field,
            progress=progress,
            ray_address=ray_address,
            ray_workers=workers,
        )
    except KeyboardInterrupt:
        _interrupted("requests")
    typer.echo(
        f"collected {summary.rows} rows -> {summary.output} ({summary.completed} responses now, "
        f"{summary.skipped} from earlier runs, {summary.errors} failed)"
    )
    if summary.errors:
        typer.echo(f"{summary.errors} requests failed; rerun the command to retry them", err=True)


@app.command()
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
    from shared_router.pipeline.sources import parse_settings

    spec = MetricSpec(metric, parse_settings(metric_arg, option="--metric-arg"))
    try:
        summary = judge_file(
            data,
            spec,
            output=output,
            models=model or None,
            reference_field=reference_field,
            journal=journal,
            batch_size=batch_size,
            engine=_engine(engine),
            progress=progress,
            ray_address=ray_address,
            ray_workers=workers,
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


@app.command()
def build(
    queries: Path = typer.Argument(..., help="JSONL queries ('query', optional 'reference')."),
    small: str = typer.Option(..., help=f"Small model SPEC: {SPEC_HELP}"),
    large: str = typer.Option(..., help=f"Large model SPEC: {SPEC_HELP}"),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for data, router, report."),
    samples: int = SamplesOption,
    metric: str = typer.Option("bartscore", help="Quality metric (see `hybrid-llm judge`)."),
    metric_arg: list[str] = MetricArgOption,
    labels: str = typer.Option("trans", help="Label type: det, prob or trans."),
    small_name: str | None = typer.Option(None, help="Small model's name in the data."),
    large_name: str | None = typer.Option(None, help="Large model's name in the data."),
    small_kwargs: str | None = typer.Option(None, help="Small model settings as JSON."),
    small_param: list[str] = typer.Option([], help="Small model setting key=value (repeatable)."),
    large_kwargs: str | None = typer.Option(None, help="Large model settings as JSON."),
    large_param: list[str] = typer.Option([], help="Large model setting key=value (repeatable)."),
    encoder: str = typer.Option("default", help="Sentence-transformers model name or path."),
    head: str = HeadOption,
    hidden: str = typer.Option("256", help="Hidden sizes, comma-separated; '' is linear."),
    epochs: int = typer.Option(100, help="Most epochs (early stopping on val)."),
    seed: int = typer.Option(0, help="Random seed."),
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
    from shared_router.encoders.encoder import Encoder
    from shared_router.pipeline.build import build as run_build
    from shared_router.pipeline.quality_metrics import MetricSpec
    from shared_router.pipeline.sources import RetryPolicy, parse_settings
    from shared_router.routing.router import Router

    if labels not in ("det", "prob", "trans"):
        fail(f"--labels must be det, prob or trans, got {labels!r}")
    models = _source_specs(
        small, large, small_name, large_name, (small_kwargs, small_param, large_kwargs, large_param)
    )
    (small_label, small_spec), (large_label, large_spec) = models.items()
    try:
        result = run_build(
            queries,
            output,
            small=small_spec,
            large=large_spec,
            small_name=small_label,
            large_name=large_label,
            samples=samples,
            metric=MetricSpec(metric, parse_settings(metric_arg, option="--metric-arg")),
            label_type=labels,  # type: ignore[arg-type]
            router=Router(
                Encoder(encoder, precision=precision, cache=_cache(cache)),  # type: ignore[arg-type]
                head_type=_head_type(head),  # type: ignore[arg-type]
                hidden_sizes=() if head == "logistic" else _parse_hidden(hidden),
                epochs=epochs,
                seed=seed,
                progress=progress,
                name=f"{small_label}-vs-{large_label}",
            ),
            concurrency=concurrency,
            retry=RetryPolicy(attempts=retries + 1, timeout=timeout),
            engine=_engine(engine),
            query_field=query_field,
            reference_field=reference_field,
            id_field=id_field,
            progress=progress,
            ray_address=ray_address,
            ray_workers=workers,
        )
    except KeyboardInterrupt:
        _interrupted("requests and scores")
    typer.echo(result.report_markdown.read_text(encoding="utf-8"))
    typer.echo(
        f"router -> {result.router}\nreport -> {result.report_json}, {result.report_markdown}\n"
        f"plot -> {result.plot}"
    )
