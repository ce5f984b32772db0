"""Tests of ``collect``'s per-model sample counts and its token log-probabilities."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest

from shared_router.cli.app import main
from shared_router.errors import ConfigurationError
from shared_router.pipeline.collect import collect, samples_per_model
from shared_router.pipeline.settings import EngineSettings
from shared_router.pipeline.sources import Generation, RetryPolicy, SourceSpec
from shared_router.pipeline.token_logprobs import token_logprobs
from tests.shared_router.pipeline_standins import make_queries

STANDINS = "tests.shared_router.pipeline_standins"
SMALL = f"{STANDINS}:small_model"
LARGE = f"{STANDINS}:large_model"
SURE = f"{__name__}:SureSource"
QUIET = EngineSettings(retry=RetryPolicy(attempts=1, timeout=5.0), progress=False)


class SureSource:
    """A blocking source whose replies carry log-probabilities, except for chosen samples.

    Counts its calls (per instance) so a test can see what a rerun asked for again.

    Args:
        without_logprobs: Calls (0-based, in call order) answered without log-probabilities.
    """

    calls_made: int = 0

    def __init__(self, without_logprobs: tuple[int, ...] = ()) -> None:
        self.without_logprobs = without_logprobs
        self._lock = threading.Lock()

    def generate_sync(self, prompt: str) -> Generation:
        with self._lock:
            call = SureSource.calls_made
            SureSource.calls_made += 1
        values = None if call in self.without_logprobs else (-0.25, -1.5, -0.0)
        return Generation(f"echo {prompt}", 4, 3, token_logprobs=values)


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    SureSource.calls_made = 0


def write_queries(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def queries(tmp_path: Path) -> Path:
    return write_queries(tmp_path / "queries.jsonl", make_queries(4))


def test_each_model_gets_its_own_number_of_samples(queries: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    summary = collect(queries, out, {"s": SMALL, "l": LARGE}, samples={"s": 3}, engine=QUIET)
    assert (summary.requests, summary.completed, summary.errors) == (16, 16, 0)
    for row in read_rows(out):
        small, large = row["models"]["s"], row["models"]["l"]
        assert len(small["responses"]) == len(small["latency_s"]) == len(small["usage"]) == 3
        assert len(large["responses"]) == len(large["latency_s"]) == len(large["usage"]) == 1


def test_a_rerun_with_more_samples_asks_only_for_the_new_ones(
    queries: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data.jsonl"
    models: dict[str, SourceSpec | str] = {"s": SourceSpec(SURE), "l": LARGE}
    collect(queries, out, models, samples={"s": 2, "l": 1}, engine=QUIET)
    assert SureSource.calls_made == 8
    summary = collect(queries, out, models, samples={"s": 3, "l": 1}, engine=QUIET)
    assert SureSource.calls_made == 12
    assert (summary.requests, summary.skipped, summary.completed) == (16, 12, 4)
    assert all(len(row["models"]["s"]["responses"]) == 3 for row in read_rows(out))


def test_one_count_still_applies_to_every_model(queries: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    summary = collect(queries, out, {"s": SMALL, "l": LARGE}, samples=2, engine=QUIET)
    assert summary.requests == 16
    assert all(len(m["responses"]) == 2 for row in read_rows(out) for m in row["models"].values())


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ({"x": 2}, "unknown models ['x']"),
        ({"s": 0}, "got 0 for model 's'"),
        ({"s": 1.5}, "got 1.5 for model 's'"),
        (0, "got 0 for model 's'"),
        (True, "got True for model 's'"),
    ],
)
def test_bad_sample_counts_say_what_was_received(samples: Any, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected.replace("[", r"\[")):
        samples_per_model(samples, ["s", "l"])


def test_a_model_left_out_of_the_counts_gets_one_sample() -> None:
    assert samples_per_model({"s": 4}, ["s", "l"]) == {"s": 4, "l": 1}
    assert samples_per_model(2, ["s", "l"]) == {"s": 2, "l": 2}


def test_token_logprobs_are_recorded_per_sample_where_the_model_gives_them(
    queries: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data.jsonl"
    models: dict[str, SourceSpec | str] = {
        "s": SourceSpec(SURE, {"without_logprobs": (1,)}),
        "l": LARGE,
    }
    collect(queries, out, models, samples={"s": 2}, engine=QUIET)
    rows = read_rows(out)
    small = [row["models"]["s"] for row in rows]
    assert [len(entry["token_logprobs"]) for entry in small] == [2, 2, 2, 2]
    recorded = [values for entry in small for values in entry["token_logprobs"]]
    assert recorded.count(None) == 1  # the second call of the run had none
    assert [-0.25, -1.5, -0.0] in recorded
    assert all("token_logprobs" not in row["models"]["l"] for row in rows)
    journal = (tmp_path / "data.jsonl.journal").read_text(encoding="utf-8").splitlines()[1:]
    with_values = [json.loads(line) for line in journal if "token_logprobs" in line]
    assert len(with_values) == 7


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (
            {"logprobs": {"content": [{"token": "a", "logprob": -0.5}, {"logprob": -1}]}},
            (-0.5, -1.0),
        ),
        ({"logprobs": {"tokens": ["a", "b"], "token_logprobs": [-0.1, -0.2]}}, (-0.1, -0.2)),
        ({"logprobs": [{"logprob": -0.3}, {"logprob": None}, {"logprob": -math.inf}]}, (-0.3,)),
        ({"logprobs": [-0.4, True, "x", -2]}, (-0.4, -2.0)),
        ({"logprobs": {"content": []}}, ()),
        ({"logprobs": None}, None),
        ({"logprobs": {"refusal": None}}, None),
        ({"logprobs": "-0.1"}, None),
        ({"finish_reason": "stop"}, None),
        (None, None),
    ],
)
def test_token_logprobs_read_the_shapes_models_report(
    metadata: dict[str, Any] | None, expected: tuple[float, ...] | None
) -> None:
    assert token_logprobs(metadata) == expected


def cli_collect(queries: Path, out: Path, *extra: str) -> None:
    main(
        [
            "collect", str(queries), "--small", SMALL, "--large", LARGE,
            "--small-name", "tiny", "--large-name", "huge", "-o", str(out), "--no-progress",
            *extra,
        ]
    )  # fmt: skip


def test_cli_samples_per_model(queries: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    cli_collect(queries, out, "--samples", "small=3, large=1")
    models = read_rows(out)[0]["models"]
    assert (len(models["tiny"]["responses"]), len(models["huge"]["responses"])) == (3, 1)


def test_cli_samples_n_still_applies_to_both_models(queries: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    cli_collect(queries, out, "--samples", "2")
    models = read_rows(out)[0]["models"]
    assert (len(models["tiny"]["responses"]), len(models["huge"]["responses"])) == (2, 2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "whole numbers >= 1"),
        ("two", "whole numbers >= 1"),
        ("small=0", "whole numbers >= 1"),
        ("medium=2", "'medium' in 'medium=2' is neither"),
        ("small=2,small=3", "names 'small' twice"),
    ],
)
def test_cli_bad_samples_exit_2_with_one_line(
    queries: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, expected: str
) -> None:
    with pytest.raises(SystemExit) as done:
        cli_collect(queries, tmp_path / "o.jsonl", "--samples", value)
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and expected in err and "\n" not in err
    assert not (tmp_path / "o.jsonl").exists()
