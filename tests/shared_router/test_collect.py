"""Tests of ``collect``: SPECs, concurrency, retries, timeouts, journal, resume after a crash."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shared_router.cli.app import main
from shared_router.errors import DataError
from shared_router.pipeline.collect import collect
from shared_router.pipeline.journal import Journal, write_jsonl_atomic
from shared_router.pipeline.queries import read_queries, split_for_id, stable_id
from shared_router.pipeline.settings import EngineSettings, InputFields
from shared_router.pipeline.sources import (
    RetryPolicy,
    SourceSpec,
    generate_with_retries,
    parse_settings,
    resolve_source,
)
from tests.shared_router import pipeline_standins
from tests.shared_router.pipeline_standins import make_queries

REPO = Path(__file__).resolve().parents[2]
STANDINS = "tests.shared_router.pipeline_standins"
SMALL = f"{STANDINS}:small_model"
LARGE = f"{STANDINS}:large_model"
FAST = RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0, timeout=5.0)
QUIET = EngineSettings(retry=FAST, progress=False)


def spec_with(spec: str, **settings: Any) -> SourceSpec:
    return SourceSpec(spec, settings)


def write_queries(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def journal_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[1:]]


def response_keys(records: list[dict[str, Any]]) -> Counter[tuple[str, str, int]]:
    return Counter((r["id"], r["model"], r["sample"]) for r in records if "text" in r)


@pytest.fixture
def queries(tmp_path: Path) -> Path:
    return write_queries(tmp_path / "queries.jsonl", make_queries(12))


def test_collect_writes_every_sample_with_latency_and_usage(queries: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    summary = collect(queries, out, {"s": SMALL, "l": LARGE}, samples=2, engine=QUIET)
    assert (summary.rows, summary.requests, summary.completed, summary.errors) == (12, 48, 48, 0)
    rows = read_rows(out)
    first = rows[0]
    assert first["query"] == "What is 3 plus 2?"
    assert first["reference"] == "5"
    assert first["id"] == stable_id("What is 3 plus 2?")
    small, large = first["models"]["s"], first["models"]["l"]
    assert small["responses"] == ["The answer is 6.", "The answer is 6."]
    assert small["response"] == "The answer is 6."
    assert large["response"] == "The answer is 5."
    assert small["spec"] == SMALL
    # 5 words in the query, 4 in the answer (the stand-in counts words as tokens)
    assert small["usage"] == [{"input_tokens": 5, "output_tokens": 4}] * 2
    assert len(small["latency_s"]) == 2 and all(t >= 0 for t in small["latency_s"])
    assert small["errors"] == []
    assert rows[1]["models"]["s"]["response"] == "The answer is Paris."


def test_collect_renames_fields_keeps_others_and_hashes_missing_ids(tmp_path: Path) -> None:
    src = write_queries(
        tmp_path / "q.jsonl",
        [
            {"question": "What is 2 plus 2?", "answer": 4, "qid": "a", "split": "test"},
            {"question": "What is the capital of Peru?", "answer": "Lima", "topic": "geo"},
        ],
    )
    out = tmp_path / "out.jsonl"
    collect(
        src,
        out,
        {"big": LARGE},
        engine=QUIET,
        fields=InputFields(query="question", reference="answer", id="qid"),
    )
    first, second = read_rows(out)
    assert {k: v for k, v in first.items() if k != "models"} == {
        "id": "a",
        "query": "What is 2 plus 2?",
        "reference": 4,
        "split": "test",
    }
    assert second["id"] == stable_id("What is the capital of Peru?")
    assert second["topic"] == "geo"
    assert second["split"] == split_for_id(second["id"])
    assert second["models"]["big"]["response"] == "The answer is Lima."


def test_stable_id_is_a_hash_of_the_query() -> None:
    assert stable_id("hello") == "q-2cf24dba5fb0a30e"  # sha256("hello")[:16]
    assert stable_id("hello") != stable_id("hello ")


def test_missing_splits_come_from_a_hash_of_the_id() -> None:
    # first 8 hex digits of sha256(id) mod 100: row-1 0x0f719b1f -> 19 (train),
    # row-8 0x85228170 -> 88 (val), row-7 0x5259b5ef -> 91 (test)
    assert [split_for_id(f"row-{i}") for i in (1, 8, 7)] == ["train", "val", "test"]
    counts = Counter(split_for_id(f"row-{i}") for i in range(2000))
    assert abs(counts["train"] - 1600) < 80
    assert abs(counts["val"] - 200) < 45 and abs(counts["test"] - 200) < 45


def test_collect_keeps_existing_models_of_a_row(tmp_path: Path) -> None:
    src = write_queries(
        tmp_path / "q.jsonl",
        [{"query": "What is 2 plus 3?", "models": {"old": {"score": 0.5}}}],
    )
    out = tmp_path / "out.jsonl"
    collect(src, out, {"new": LARGE}, engine=QUIET)
    models = read_rows(out)[0]["models"]
    assert models["old"] == {"score": 0.5}
    assert models["new"]["response"] == "The answer is 5."


def test_errors_are_recorded_per_row_and_retried_on_the_next_run(
    queries: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data.jsonl"
    models = {
        "s": spec_with(SMALL, fail_on="capital"),
        "l": LARGE,
    }
    first = collect(queries, out, models, engine=QUIET)
    # make_queries(12): the word questions at odd positions 1..11 are capitals 0..5
    assert first.errors == 6
    rows = read_rows(out)
    failed = rows[1]["models"]["s"]
    assert failed["responses"] == [] and failed["response"] is None
    assert failed["errors"] == [
        {
            "sample": 0,
            "error": "RuntimeError: stand-in failure for 'What is the capital of France?'",
            "attempts": 2,
        }
    ]
    assert rows[1]["models"]["l"]["response"] == "The answer is Paris."
    assert rows[0]["models"]["s"]["errors"] == []

    second = collect(queries, out, {"s": SMALL, "l": LARGE}, engine=QUIET)
    assert (second.skipped, second.completed, second.errors) == (18, 6, 0)
    assert read_rows(out)[1]["models"]["s"]["response"] == "The answer is Paris."
    records = journal_records(Path(str(out) + ".journal"))
    assert sum("error" in r for r in records) == 6
    assert max(response_keys(records).values()) == 1


def test_retries_with_backoff_record_the_attempts(tmp_path: Path) -> None:
    src = write_queries(tmp_path / "q.jsonl", [{"query": "ping"}])
    out = tmp_path / "out.jsonl"
    policy = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.002, timeout=5.0)
    summary = collect(
        src,
        out,
        {"flaky": spec_with(f"{STANDINS}:FlakySource", failures=2)},
        engine=EngineSettings(retry=policy, progress=False),
    )
    assert summary.errors == 0
    assert read_rows(out)[0]["models"]["flaky"]["responses"] == ["echo: ping"]
    (record,) = journal_records(Path(str(out) + ".journal"))
    assert record["attempts"] == 3


def test_a_slow_model_times_out_and_the_run_goes_on(tmp_path: Path) -> None:
    src = write_queries(tmp_path / "q.jsonl", [{"query": "ping"}, {"query": "pong"}])
    out = tmp_path / "out.jsonl"
    policy = RetryPolicy(attempts=1, base_delay=0.0, timeout=0.05)
    summary = collect(
        src,
        out,
        {"slow": spec_with(f"{STANDINS}:SlowSource", seconds=5.0), "ok": LARGE},
        engine=EngineSettings(retry=policy, progress=False),
    )
    assert summary.errors == 2
    entry = read_rows(out)[0]["models"]["slow"]
    assert entry["errors"] == [
        {"sample": 0, "error": "TimeoutError: no answer within 0.05 s", "attempts": 1}
    ]
    assert read_rows(out)[0]["models"]["ok"]["errors"] == []


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    rng = random.Random(0)
    caps = {1: 1.0, 2: 2.0, 3: 4.0, 4: 5.0, 5: 5.0}
    for retry, cap in caps.items():
        delays = [policy.delay(retry, rng) for _ in range(50)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_generate_with_retries_reports_a_wrong_return_type() -> None:
    class Wrong:
        async def generate(self, prompt: str) -> Any:
            return "plain text"

    outcome = asyncio.run(generate_with_retries(Wrong(), "x", FAST, random.Random(0)))
    assert outcome.generation is None
    assert outcome.error == "TypeError: generate() returned str, not Generation"


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    src = write_queries(tmp_path / "q.jsonl", [{"query": f"q{i}"} for i in range(20)])
    pipeline_standins.GaugeSource.most_in_flight = 0
    collect(
        src,
        tmp_path / "o.jsonl",
        {"g": f"{STANDINS}:GaugeSource"},
        engine=EngineSettings(concurrency=3, retry=FAST, progress=False),
    )
    assert pipeline_standins.GaugeSource.most_in_flight == 3


def test_interrupt_loses_nothing_finished_and_resume_duplicates_nothing(
    queries: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data.jsonl"
    journal = Path(str(out) + ".journal")
    with pytest.raises(KeyboardInterrupt):
        collect(
            queries,
            out,
            {"m": spec_with(f"{STANDINS}:InterruptingSource", after=7)},
            samples=2,
            engine=EngineSettings(concurrency=2, retry=FAST, progress=False),
        )
    assert not out.exists()
    saved = len(journal_records(journal))
    assert 0 < saved <= 7  # the call that was in flight at the interrupt is lost, no more
    summary = collect(queries, out, {"m": f"{STANDINS}:echo_source"}, samples=2, engine=QUIET)
    assert (summary.skipped, summary.completed, summary.errors) == (saved, 24 - saved, 0)
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [q.id for q in read_queries(queries)]
    assert all(len(r["models"]["m"]["responses"]) == 2 for r in rows)
    assert set(response_keys(journal_records(journal)).values()) == {1}


def test_a_killed_process_resumes_without_lost_or_duplicated_rows(
    queries: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data.jsonl"
    journal = Path(str(out) + ".journal")
    command = [
        sys.executable,
        "-c",
        "from shared_router.cli.app import main; main()",
        "collect",
        str(queries),
        "--small",
        SMALL,
        "--large",
        LARGE,
        "--samples",
        "3",
        "--concurrency",
        "4",
        "--retries",
        "0",
        "-o",
        str(out),
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run(
        [*command, "--small-param", "crash_after=20"], env=env, capture_output=True, text=True
    )
    assert killed.returncode == 3, killed.stderr
    assert not out.exists()
    done_before = len(response_keys(journal_records(journal)))
    assert 0 < done_before < 72
    with journal.open("ab") as handle:  # a record torn by the kill
        handle.write(b'{"id": "q-1", "model": "s", "sam')

    resumed = subprocess.run(command, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{72 - done_before} responses now, {done_before} from earlier runs, 0 failed" in (
        resumed.stdout
    )
    rows = read_rows(out)
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12
    for row in rows:
        for name in (SMALL, LARGE):
            assert len(row["models"][name]["responses"]) == 3
    records = journal_records(journal)  # every line parses: the torn one was cut off
    assert set(response_keys(records).values()) == {1}
    assert len(response_keys(records)) == 72


def test_journal_cuts_a_torn_last_line_and_rejects_other_journals(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    with Journal(path, kind="collect") as journal:
        journal.append({"n": 1})
    with path.open("ab") as handle:
        handle.write(b'{"n": 2')
    with Journal(path, kind="collect") as journal:
        assert journal.records == [{"n": 1}]
        assert journal.dropped_torn_line
        journal.append({"n": 3})
    with Journal(path, kind="collect") as journal:
        assert journal.records == [{"n": 1}, {"n": 3}]
    with pytest.raises(DataError, match="not a 'judge' journal"):
        Journal(path, kind="judge").__enter__()


def test_journal_refuses_a_second_writer(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    with Journal(path, kind="collect"), pytest.raises(DataError, match="another process"):
        Journal(path, kind="collect").__enter__()


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    write_jsonl_atomic(path, [{"a": 1}])

    def rows() -> Any:
        yield {"a": 2}
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(path, rows())
    assert read_rows(path) == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]


def test_a_module_level_model_and_a_llamaindex_llm_work_as_sources(tmp_path: Path) -> None:
    src = write_queries(tmp_path / "q.jsonl", [{"query": "What is 20 times 3?"}])
    out = tmp_path / "out.jsonl"
    collect(
        src,
        out,
        {"lc": f"{STANDINS}:LARGE_INSTANCE", "li": f"{STANDINS}:llamaindex_echo"},
        engine=QUIET,
    )
    models = read_rows(out)[0]["models"]
    assert models["lc"]["response"] == "The answer is 60."
    assert "What is 20 times 3?" in models["li"]["response"]  # MockLLM echoes the prompt


def test_unknown_spec_lists_the_accepted_forms() -> None:
    with pytest.raises(DataError) as error:
        resolve_source("no_such_module_xyz:make")
    message = str(error.value)
    assert "neither a known provider nor an importable module" in message
    assert "'provider:model'" in message and "'module:callable'" in message
    assert "openai" in message and "anthropic" in message
    with pytest.raises(DataError, match="accepted forms"):
        resolve_source("gpt-4o")


def test_provider_spec_without_its_package_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("langchain")
    from langchain.chat_models import base as chat_model_base

    for name in [m for m in sys.modules if m.partition(".")[0] == "langchain_openai"] + [
        "langchain_openai"
    ]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed (submodules too)
    # init_chat_model remembers each provider's class once it has imported it (lru_cache).
    creator = chat_model_base._get_chat_model_creator
    creator.cache_clear()
    try:
        with pytest.raises(DataError, match="langchain-openai"):
            resolve_source("openai:gpt-4o-mini", {"temperature": 0.7})
    finally:
        creator.cache_clear()


def test_a_callable_that_gives_no_model_is_rejected() -> None:
    with pytest.raises(DataError, match="must give a LangChain chat model"):
        resolve_source(f"{STANDINS}:not_a_model")
    with pytest.raises(DataError, match="has no attribute"):
        resolve_source(f"{STANDINS}:missing_factory")
    with pytest.raises(DataError, match="unusable model: expected a LangChain BaseChatModel"):
        resolve_source("langchain_core.embeddings:DeterministicFakeEmbedding", {"size": 3})
    with pytest.raises(DataError, match="takes no settings"):
        resolve_source(f"{STANDINS}:LARGE_INSTANCE", {"temperature": 0.5})


def test_parse_settings_reads_json_and_key_values() -> None:
    settings = parse_settings(
        ["temperature=0.7", 'stop=["\\n"]', "name=gpt"],
        '{"max_tokens": 5, "temperature": 0}',
        option="--small-param",
    )
    assert settings == {"max_tokens": 5, "temperature": 0.7, "stop": ["\n"], "name": "gpt"}
    with pytest.raises(DataError, match="key=value"):
        parse_settings(["temperature"], option="--small-param")
    with pytest.raises(DataError, match="JSON object"):
        parse_settings([], "[1]", option="--small-kwargs")


def test_bad_query_files_are_one_line_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="no queries"):
        read_queries(empty)
    blank = write_queries(tmp_path / "blank.jsonl", [{"query": "  "}])
    with pytest.raises(DataError, match=r"blank.jsonl:1: field 'query' must be a non-empty"):
        read_queries(blank)
    twice = write_queries(tmp_path / "twice.jsonl", [{"query": "a"}, {"query": "a"}])
    with pytest.raises(DataError, match="also on line 1"):
        read_queries(twice)
    odd = write_queries(tmp_path / "odd.jsonl", [{"query": "a", "models": ["x"]}])
    with pytest.raises(DataError, match="odd.jsonl:1: 'models' must be an object"):
        read_queries(odd)


def test_cli_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    queries = write_queries(tmp_path / "q.jsonl", [{"query": "hi"}])
    cases = [
        (["collect", str(empty), "--small", SMALL, "--large", LARGE], "no queries"),
        (["collect", str(queries), "--small", "nope:x", "--large", LARGE], "accepted forms"),
        (["collect", str(queries), "--small", SMALL, "--large", SMALL], "--small-name"),
        (
            ["collect", str(queries), "--small", SMALL, "--large", LARGE, "--engine", "spark"],
            "--engine",
        ),
    ]
    for args, expected in cases:
        with pytest.raises(SystemExit) as done:
            main([*args, "-o", str(tmp_path / "o.jsonl"), "--no-progress"])
        assert done.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and expected in err and "\n" not in err


def test_cli_collect_passes_settings_and_names(tmp_path: Path) -> None:
    queries = write_queries(tmp_path / "q.jsonl", [{"query": "What is 4 plus 4?"}])
    out = tmp_path / "o.jsonl"
    main(
        [
            "collect",
            str(queries),
            "--small",
            SMALL,
            "--large",
            LARGE,
            "--small-name",
            "tiny",
            "--large-name",
            "huge",
            "--large-kwargs",
            '{"fail_on": "4 plus"}',
            "--retries",
            "0",
            "-o",
            str(out),
            "--no-progress",
        ]
    )
    models = read_rows(out)[0]["models"]
    assert models["tiny"]["response"] == "The answer is 9."
    assert models["huge"]["errors"][0]["error"].startswith("RuntimeError: stand-in failure")
