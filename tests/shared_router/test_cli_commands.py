"""The command line's shape: its commands, in order, and the flags the pipeline commands take."""

from __future__ import annotations

from pathlib import Path

import typer

from shared_router.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"

COMMANDS = [
    "demo",
    "route",
    "score",
    "train",
    "calibrate",
    "evaluate",
    "info",
    "collect",
    "judge",
    "build",
    "replay",
    "retrain",
    "report",
]
ENGINE_FLAGS = {"--engine", "--ray-address", "--workers", "--progress"}
REQUEST_FLAGS = {"--concurrency", "--timeout", "--retries"}
FIELD_FLAGS = {"--query-field", "--reference-field", "--id-field"}
ROUTER_FLAGS = {"--labels", "--encoder", "--head", "--hidden", "--epochs", "--seed"}


def _flags(name: str) -> dict[str, object]:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {opt: param.default for param in command.params for opt in param.opts}


def test_the_commands_are_listed_in_their_order() -> None:
    assert list(typer.main.get_command(app).commands) == COMMANDS  # type: ignore[attr-defined]


def test_the_readme_table_has_a_row_for_every_command() -> None:
    table = [
        line
        for line in README.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `hybrid-llm ")
    ]
    assert [line.split("`hybrid-llm ")[1].split()[0].rstrip("`") for line in table] == COMMANDS


def test_the_pipeline_commands_keep_their_flags_and_defaults() -> None:
    collect, judge, build = _flags("collect"), _flags("judge"), _flags("build")
    assert set(collect) >= ENGINE_FLAGS | REQUEST_FLAGS | FIELD_FLAGS
    assert ENGINE_FLAGS | {"--reference-field", "--batch-size", "--metric-arg"} <= set(judge)
    assert set(build) >= ENGINE_FLAGS | REQUEST_FLAGS | FIELD_FLAGS | ROUTER_FLAGS
    assert ROUTER_FLAGS | {"--fine-tune", "--precision"} <= set(_flags("train"))
    for flags in (collect, build):
        assert (flags["--concurrency"], flags["--timeout"], flags["--retries"]) == (8, 120.0, 3)
        assert (flags["--engine"], flags["--query-field"], flags["--id-field"]) == (
            "local",
            "query",
            "id",
        )
    assert (build["--labels"], build["--hidden"], build["--epochs"]) == ("trans", "256", 100)
    assert (build["--precision"], build["--metric"]) == ("int8", "bartscore")
    assert judge["--batch-size"] == 16
