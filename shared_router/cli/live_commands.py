"""The commands of the live loop: ``replay``, ``retrain`` and ``report``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from shared_router.cli.options import (
    CacheOption,
    embedding_cache,
    fail,
    read_pair,
    require_plot_extra,
)
from shared_router.live.settings import MIN_RETRAIN_HOLDOUT, MIN_RETRAIN_ROWS, MIN_RETRAIN_SIDE

__all__ = ["replay", "report", "retrain"]

StoreOption = typer.Option(
    ..., "--store", help="The live store: a SQLite file path or postgresql://user@host/db."
)


def _json_ready(value: Any) -> Any:
    """NaN and infinity as null, so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def replay(
    data: Path = typer.Argument(..., help="A JSONL file of the ../shared/data format."),
    small: str = typer.Option(..., help="The small model's name in the data."),
    large: str = typer.Option(..., help="The large model's name in the data."),
    max_quality_drop: float = typer.Option(..., help="The quality level asked for (0.05: 5%)."),
    shadow_rate: float = typer.Option(..., help="Share of calls shadowed (0.05: 5%)."),
    router: str = typer.Option("default", help="'default' or a router folder to start from."),
    seed: int = typer.Option(0, help="Seed of the shuffle and the shadow draws."),
    warmup: int = typer.Option(0, help="Rows streamed before the measurement starts."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the summary here."),
    decisions: Path | None = typer.Option(None, help="Write one JSON line per row here."),
    plot: Path | None = typer.Option(None, help="Draw the learning curve to this PNG."),
    small_cost: float = typer.Option(
        0.1, help="Price of a small call as a share of a large one's, in [0, 1]."
    ),
    retrain: bool = typer.Option(True, "--retrain/--no-retrain", help="Retrain on live rows."),
    score_field: str = typer.Option("score", help="Per-model quality field."),
    cache: bool = CacheOption,
) -> None:
    """Stream logged rows through the live loop; print the summary as JSON."""
    from shared_router.live.replay import ReplaySettings
    from shared_router.live.replay import replay as run_replay
    from shared_router.live.report import plot_live_report

    require_plot_extra(plot)
    settings = ReplaySettings(
        max_quality_drop=max_quality_drop,
        shadow_rate=shadow_rate,
        seed=seed,
        warmup=warmup,
        small_cost=small_cost,
        retrain=retrain,
    )
    pair = read_pair(data, small, large, score_field)
    if warmup >= len(pair):
        fail(f"--warmup {warmup} leaves no row of the {len(pair)} to measure; lower it")
    result = run_replay(pair, settings, router=router, cache=embedding_cache(cache))
    summary = _json_ready(result.summary)
    text = json.dumps(summary, indent=2)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n", encoding="utf-8")
    if decisions is not None:
        decisions.parent.mkdir(parents=True, exist_ok=True)
        with decisions.open("w", encoding="utf-8") as out:
            for row in result.decisions:
                out.write(json.dumps(_json_ready(row)) + "\n")
    if plot is not None:
        plot_live_report(summary, plot)
    typer.echo(text)


def retrain(
    store: str = StoreOption,
    output: Path = typer.Option(..., "-o", "--output", help="Folder of the router versions."),
    router: str = typer.Option(
        "default", help="The current router when the store has no version yet."
    ),
    min_rows: int = typer.Option(
        200,
        min=MIN_RETRAIN_ROWS,
        help=f"Live rows needed to retrain (>= {MIN_RETRAIN_ROWS}: {MIN_RETRAIN_HOLDOUT} are held "
        f"out to compare, {MIN_RETRAIN_SIDE} fit).",
    ),
    labels: str = typer.Option(
        "auto",
        help="What the head is fitted on: det (1[q_small >= q_large]), diff "
        "((1 + q_small - q_large) / 2), or auto (the one whose out-of-fold scores recover "
        "more of the gap).",
    ),
    force: bool = typer.Option(
        False, help="Retrain even when no row came in since the newest version was fitted."
    ),
    cache: bool = CacheOption,
) -> None:
    """Refit the head on the store's live rows; swap it in only if it recovers more of the gap."""
    from shared_router.errors import ConfigurationError
    from shared_router.live.head_fit import LIVE_LABELS, checked_live_labels
    from shared_router.live.retraining import Retrainer
    from shared_router.live.store import open_store
    from shared_router.routing.router import Router

    try:  # before the store, which may be the next thing to fix
        label_kind = checked_live_labels(labels)
    except ConfigurationError:
        fail(f"--labels must be one of {', '.join(LIVE_LABELS)}, got {labels!r}")
    live = open_store(store, versions_dir=output, create=False)
    retrainer = Retrainer(live, min_rows=min_rows, every=1, labels=label_kind, versions_dir=output)
    held = live.count()
    if held < min_rows:
        fail(
            f"the store holds {held} rows and retraining needs at least --min-rows {min_rows}; "
            f"wait for more shadowed calls, or lower --min-rows ({MIN_RETRAIN_ROWS} at the least)"
        )
    versions = live.versions()
    if versions and not force:
        newest = versions[-1]
        if not live.rows(after_id=max(newest.fit_row_ids, default=0), limit=1):
            fail(
                f"no new rows since version {newest.version} was fitted on {newest.n_fit} "
                "rows, so retraining would fit the same head again; wait for more shadowed "
                "calls, or pass --force"
            )
    current = live.current_version()
    cached = embedding_cache(cache)
    if current is not None:
        current_router = Router.load(current.path, cache=cached)
        version, fit_ids = current.version, frozenset(current.fit_row_ids)
        fit_scores = current.cross_fit_scores()
    else:
        current_router = Router.load(router, cache=cached)
        version, fit_ids, fit_scores = current_router.name, frozenset(), {}
    outcome = retrainer.retrain(current_router, version, fit_ids, current_fit_scores=fit_scores)
    if outcome is None:
        fail(f"no retraining: {retrainer.skipped} (the store holds {held} rows)")
    typer.echo(json.dumps(_json_ready(outcome.record.as_dict()), indent=2))


def report(
    store: str = StoreOption,
    max_quality_drop: float | None = typer.Option(
        None, help="The level the traffic was routed at: the summary says if it was kept."
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write the full report here as JSON ('-': print it instead)."
    ),
    plot: Path | None = typer.Option(None, help="Draw the learning curve to this PNG."),
) -> None:
    """Summarise a live store: realised quality drop, small share, net savings, retraining."""
    from shared_router.live.report import live_report, plot_live_report, report_summary
    from shared_router.live.store import open_store

    require_plot_extra(plot)
    summary = _json_ready(
        live_report(open_store(store, create=False), requested_drop=max_quality_drop)
    )
    text = json.dumps(summary, indent=2)
    if json_out is not None and str(json_out) != "-":
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n", encoding="utf-8")
    if plot is not None:
        plot_live_report(summary, plot)
    typer.echo(text if str(json_out) == "-" else report_summary(summary))
