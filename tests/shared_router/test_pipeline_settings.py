"""The pipeline's settings objects, its optional-dependency gates and its error classes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from shared_router.errors import (
    ConfigurationError,
    HybridLLMError,
    MissingDependencyError,
    UsageError,
)
from shared_router.pipeline.collect import collect
from shared_router.pipeline.journal import Journal
from shared_router.pipeline.judge import judge_file
from shared_router.pipeline.quality_base import ScoreItem
from shared_router.pipeline.quality_model_based import BartScoreMetric
from shared_router.pipeline.queries import read_queries
from shared_router.pipeline.ray_engine import run_on_ray
from shared_router.pipeline.settings import DEFAULT_ENGINE, EngineSettings, InputFields
from shared_router.pipeline.sources import RetryPolicy

STANDINS = "tests.shared_router.pipeline_standins"


def test_engine_settings_defaults_are_the_cli_defaults() -> None:
    assert EngineSettings("local", 8, RetryPolicy(), True, None, None) == DEFAULT_ENGINE
    assert DEFAULT_ENGINE.retry.attempts == 3 + 1  # --retries 3
    assert DEFAULT_ENGINE.retry.timeout == 120.0  # --timeout 120
    assert InputFields() == InputFields("query", "reference", "id")


def test_engine_settings_reject_what_no_engine_can_run() -> None:
    with pytest.raises(ConfigurationError, match="engine must be 'local' or 'ray', got 'spark'"):
        EngineSettings(kind="spark")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="concurrency must be >= 1, got 0"):
        EngineSettings(concurrency=0)


def test_out_of_range_arguments_are_configuration_errors(tmp_path: Path) -> None:
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"query": "hi"}) + "\n", encoding="utf-8")
    quiet = EngineSettings(progress=False)
    with pytest.raises(ConfigurationError, match="samples must be >= 1"):
        collect(queries, tmp_path / "o.jsonl", {"m": f"{STANDINS}:echo_source"}, samples=0)
    with pytest.raises(ConfigurationError, match="no models given"):
        collect(queries, tmp_path / "o.jsonl", {}, engine=quiet)
    with pytest.raises(ConfigurationError, match="batch_size must be >= 1"):
        judge_file(queries, "rouge", batch_size=0, engine=quiet)
    with pytest.raises(ConfigurationError, match="workers must be >= 1"):
        run_on_ray(list, [[1]], print, workers=0)


def test_input_fields_rename_to_the_data_contract(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"q": "What?", "gold": "42", "key": 7}) + "\n", encoding="utf-8")
    (row,) = read_queries(path, fields=InputFields(query="q", reference="gold", id="key"))
    assert row.id == "7" and row.query == "What?"
    assert {k: v for k, v in row.row.items() if k != "split"} == {
        "id": 7,
        "query": "What?",
        "reference": "42",
    }


def test_a_journal_used_outside_its_block_is_a_usage_error(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.journal", kind="collect")
    with pytest.raises(UsageError, match="not open") as error:
        journal.append({"n": 1})
    assert isinstance(error.value, RuntimeError)


def test_the_ray_engine_without_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(MissingDependencyError) as error:
        run_on_ray(list, [[1]], print)
    assert isinstance(error.value, ImportError) and isinstance(error.value, HybridLLMError)
    assert "engine 'ray' needs ray" in str(error.value)
    assert 'pip install "hybrid-llm[ray]"' in str(error.value)


def test_bartscore_without_transformers_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependencyError, match=r"the bartscore metric needs") as error:
        BartScoreMetric().score_batch([ScoreItem("q", "a")])
    assert 'pip install "hybrid-llm[train]"' in str(error.value)
