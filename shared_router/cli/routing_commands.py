"""The commands that use a trained router: ``demo``, ``route``, ``score`` and ``info``."""

from __future__ import annotations

from pathlib import Path

import typer

from shared_router.cli.options import CacheOption, RouterOption, embedding_cache

__all__ = ["DEMO_LEVELS", "DEMO_QUERIES", "demo", "info", "route", "score"]

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
    console.print(
        "large_share is the share of the router's calibration traffic that scores below the "
        "threshold; on a handful of queries the share sent large differs."
    )


def route(
    texts: list[str] = typer.Argument(..., help="Texts to route."),
    router: str = RouterOption,
    max_quality_drop: float | None = typer.Option(None, help="Most relative quality drop."),
    large_share: float | None = typer.Option(None, help="Share of calls for the large model."),
    threshold: float | None = typer.Option(None, help="Raw threshold on p (p >= t: small)."),
) -> None:
    """Route texts and print one JSON decision per line.

    A text whose bytes were not UTF-8 (the shell passes them on as lone surrogates) is routed
    with each such character replaced by U+FFFD, the library's policy for unencodable text
    (:func:`~shared_router._internal.validation.encodable_text`); the printed ``"text"`` is
    the text that was routed.
    """
    import json

    from shared_router._internal.validation import encodable_text
    from shared_router.routing.router import Router
    from shared_router.types import QualityKnobs

    loaded = Router.load(router)
    knobs = (
        QualityKnobs(max_quality_drop, large_share, threshold).set_knobs()
        or loaded.default_knobs.set_knobs()
    )
    routed = [encodable_text(text) for text in texts]
    for text, decision in zip(routed, loaded.route_batch(routed, **knobs), strict=True):
        typer.echo(json.dumps({"text": text, **decision.as_dict()}))


def score(
    input_path: Path = typer.Argument(..., help="JSONL with a query per line."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the scored JSONL."),
    router: str = RouterOption,
    query_field: str = typer.Option("query", help="The field holding the text."),
    cache: bool = CacheOption,
) -> None:
    """Write each input line back with a "score" field: p(small is good enough)."""
    import json

    from shared_router._internal.atomic import atomic_path
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
    loaded = Router.load(router, cache=embedding_cache(cache))
    scores = loaded.score([row[query_field] for row in rows])
    with atomic_path(output) as temporary, temporary.open("w", encoding="utf-8") as out:
        for row, value in zip(rows, scores, strict=True):
            out.write(json.dumps({**row, "score": round(float(value), 6)}) + "\n")
    typer.echo(f"scored {len(rows)} rows -> {output}")


def info(router: str = RouterOption) -> None:
    """Show a router's configuration and calibration summary."""
    import json

    from shared_router.routing.router import Router

    loaded = Router.load(router)
    typer.echo(json.dumps(loaded.describe(), indent=2, default=str))
