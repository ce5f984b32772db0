"""The commands that fit a router to labelled data: ``train``, ``calibrate`` and ``evaluate``."""

from __future__ import annotations

from pathlib import Path

import typer

from shared_router._internal.atomic import write_text_atomic
from shared_router.cli.options import (
    CacheOption,
    EncoderOption,
    EpochsOption,
    HeadOption,
    HiddenOption,
    LabelsOption,
    LargeInDataOption,
    PrecisionOption,
    RouterFlags,
    RouterOption,
    ScoreFieldOption,
    SeedOption,
    SmallInDataOption,
    embedding_cache,
    fail,
    label_type,
    read_pair,
    require_plot_extra,
)

__all__ = ["calibrate", "evaluate", "train"]


def train(
    data: list[Path] = typer.Argument(..., help="JSONL file(s) in the data contract."),
    small: str = SmallInDataOption,
    large: str = LargeInDataOption,
    output: Path = typer.Option(..., "--output", "-o", help="The router folder to write."),
    labels: str = LabelsOption,
    encoder: str = EncoderOption,
    head: str = HeadOption,
    hidden: str = HiddenOption,
    epochs: int = EpochsOption,
    seed: int = SeedOption,
    score_field: str = ScoreFieldOption,
    fine_tune: bool = typer.Option(False, help="Fine-tune the encoder too (slow on CPU)."),
    name: str | None = typer.Option(None, help="The router's name."),
    precision: str = PrecisionOption,
    cache: bool = CacheOption,
) -> None:
    """Train a router on split 'train', early-stop and calibrate on 'val'."""
    from shared_router.routing.train_router import train_router

    label_kind = label_type(labels)
    pair = read_pair(data, small, large, score_field)
    flags = RouterFlags(encoder, precision, cache, head, hidden, epochs, seed)
    model = flags.router(name=name or f"{small}-vs-{large}", fine_tune=fine_tune)
    trained = train_router(pair, label_type=label_kind, router=model)
    trained.save(output)
    typer.echo(f"trained on {len(pair.split('train'))} rows -> {output}")


def calibrate(
    data: list[Path] = typer.Argument(..., help="Labelled JSONL in the data contract."),
    router: str = RouterOption,
    small: str = SmallInDataOption,
    large: str = LargeInDataOption,
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the router."),
    split: str | None = typer.Option(
        None,
        help="Use only this split (default: every row; refused where those hold the 'train' "
        "rows the router was trained on).",
    ),
    score_field: str = ScoreFieldOption,
    cache: bool = CacheOption,
) -> None:
    """Recalibrate an existing router on your own labelled data, without retraining."""
    from shared_router.routing.router import Router

    pair = read_pair(data, small, large, score_field)
    rows = pair.split(split) if split is not None else pair
    loaded = Router.load(router, cache=embedding_cache(cache))
    if "train" in rows.split_names and loaded.metadata_.get("training_data_hash") == (
        pair.data_hash
    ):
        fail(
            f"router {router} was trained on the 'train' rows of this data, and a calibration "
            "on rows it was fitted on promises more than it keeps; pass --split val or --split "
            "test, or data it was not trained on"
        )
    loaded.calibrate(list(rows.queries), rows.small_quality, rows.large_quality)
    loaded.save(output)
    typer.echo(f"calibrated on {len(rows)} rows -> {output}")


def evaluate(
    data: list[Path] = typer.Argument(..., help="JSONL in the data contract."),
    router: str = RouterOption,
    small: str = SmallInDataOption,
    large: str = LargeInDataOption,
    split: str | None = typer.Option("test", help="Evaluate on this split ('' for all rows)."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the JSON report here."),
    plot: Path | None = typer.Option(None, help="Write a PNG plot here."),
    markdown: Path | None = typer.Option(None, help="Write a markdown report here."),
    score_field: str = ScoreFieldOption,
    cache: bool = CacheOption,
) -> None:
    """Evaluate a router beside random, oracle and the length heuristic."""
    from shared_router.evaluation.plots import plot_curves
    from shared_router.evaluation.report import evaluate_scores
    from shared_router.routing.router import Router

    require_plot_extra(plot)
    pair = read_pair(data, small, large, score_field)
    rows = pair.split(split) if split else pair
    loaded = Router.load(router, cache=embedding_cache(cache))
    scores = loaded.score(list(rows.queries))
    report = evaluate_scores(
        {loaded.name: scores}, rows.small_quality, rows.large_quality, queries=list(rows.queries)
    )
    if json_path is not None:
        report.to_json(json_path)
    if markdown is not None:
        write_text_atomic(markdown, report.to_markdown())
    if plot is not None:
        plot_curves(report, plot)
    typer.echo(report.to_markdown())
