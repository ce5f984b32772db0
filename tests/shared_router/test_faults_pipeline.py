"""Fault cases of the collect / judge pipeline (issue 15): blocking models, NaN settings, text.

The blocking stand-ins wait on :data:`RELEASE`, an event no test sets: the ``release`` fixture
sets it at teardown, so the threads a test leaves hung end with it. Each run that could hang
(before the fixes it did) goes through :func:`finishes`, which runs it in a daemon thread
and fails the test if it has not returned after a generous bound (a hang guard, not a timing
assertion).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from shared_router._internal.model_threads import ModelThreads
from shared_router.errors import ConfigurationError, DataError, UsageError
from shared_router.pipeline.collect import collect
from shared_router.pipeline.judge import judge_file
from shared_router.pipeline.quality_metrics import MetricSpec
from shared_router.pipeline.settings import EngineSettings
from shared_router.pipeline.sources import Generation, RetryPolicy, generate_with_retries

THIS = "tests.shared_router.test_faults_pipeline"
# SPECs name this module; make the import they do find this very module (and its RELEASE).
sys.modules.setdefault(THIS, sys.modules[__name__])

RELEASE = threading.Event()
"""Set only at teardown: every blocked stand-in call waits on it."""

HANG = "HANG"
HANG_GUARD_S = 60.0
# Long enough that a steady call on a loaded 2-core machine never times out (0.1 s did, once in
# a CI run), short enough that the blocked ones give up quickly.
QUICK = RetryPolicy(attempts=1, base_delay=0.0, max_delay=0.0, timeout=0.5)

T = TypeVar("T")


@pytest.fixture(autouse=True)
def release() -> Iterator[None]:
    """Let every blocked stand-in call return when the test ends."""
    RELEASE.clear()
    yield
    RELEASE.set()


def finishes(run: Callable[[], T]) -> T:
    """``run()``, failing the test if it has not returned within :data:`HANG_GUARD_S`."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = run()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), "the run did not finish: it waits for a blocked model call"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def engine(concurrency: int = 4) -> EngineSettings:
    return EngineSettings(concurrency=concurrency, retry=QUICK, progress=False)


# --------------------------------------------------------------------- blocking stand-ins


class BlockingChat(BaseChatModel):
    """A sync-only LangChain chat model (no ``_agenerate``): blocks on prompts with ``HANG``."""

    hangs: bool = True

    @property
    def _llm_type(self) -> str:
        return "blocking-stand-in"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = messages[-1].text
        if self.hangs and HANG in prompt:
            RELEASE.wait()
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=f"re {prompt}"))])


def blocking_chat() -> BlockingChat:
    return BlockingChat(hangs=True)


def steady_chat() -> BlockingChat:
    return BlockingChat(hangs=False)


class LoopBlockingSource:
    """A source whose ``generate`` blocks the event loop itself (as LlamaIndex's ``CustomLLM``
    does: its ``achat`` calls ``chat``), with the blocking call also offered as
    ``generate_sync``."""

    native_async = False

    def generate_sync(self, prompt: str) -> Generation:
        if HANG in prompt:
            RELEASE.wait()
        return Generation(f"sync {prompt}")

    async def generate(self, prompt: str) -> Generation:
        return self.generate_sync(prompt)


class SyncOnlySource:
    """A plain source with nothing but a blocking ``generate_sync``."""

    def generate_sync(self, prompt: str) -> Generation:
        if HANG in prompt:
            RELEASE.wait()
        return Generation(f"only sync {prompt}")


def blocking_metric(query: str, response: str, reference: str | None) -> float:
    """A user metric that blocks on responses with ``HANG``."""
    if HANG in response:
        RELEASE.wait()
    return 1.0


# -------------------------------------------------------- item 1: blocking models in collect

# More blocked calls than the stdlib's default executor has threads (min(32, cpus + 4)).
HUNG_PROMPTS = 34


def test_blocking_sync_model_does_not_starve_the_other_models(tmp_path: Path) -> None:
    """Issue 15, item 1: 6 of 200 prompts blocking failed 200/200 small-model requests."""
    queries = [{"id": f"h{i}", "query": f"{HANG} {i}"} for i in range(HUNG_PROMPTS)]
    queries += [{"id": f"q{i}", "query": f"fine {i}"} for i in range(10)]
    src = write_rows(tmp_path / "q.jsonl", queries)
    out = tmp_path / "out.jsonl"
    models = {"small": f"{THIS}:steady_chat", "large": f"{THIS}:blocking_chat"}

    summary = finishes(lambda: collect(src, out, models, engine=engine()))

    rows = read_rows(out)
    assert all(row["models"]["small"]["errors"] == [] for row in rows)  # never starved
    assert all(row["models"]["small"]["response"] == f"re {row['query']}" for row in rows)
    failed = {row["id"] for row in rows if row["models"]["large"]["errors"]}
    assert failed == {f"h{i}" for i in range(HUNG_PROMPTS)}
    assert summary.errors == HUNG_PROMPTS
    hung = {job.id for job in summary.hung}
    assert hung == failed and len(summary.hung) == HUNG_PROMPTS
    assert {job.model for job in summary.hung} == {"large"}
    first = rows[0]["models"]["large"]["errors"][0]["error"]
    assert first.startswith(
        f"TimeoutError: no answer within {QUICK.timeout:g} s; the call is still blocked"
    )
    assert "'hybrid-llm large-" in first and first.endswith("(hung)")
    records = [json.loads(line) for line in Path(f"{out}.journal").read_text().splitlines()[1:]]
    assert sum(bool(record.get("hung")) for record in records) == len(summary.hung)


def test_collect_says_which_prompts_hung(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = write_rows(tmp_path / "q.jsonl", [{"id": "a", "query": "ok"}, {"id": "b", "query": HANG}])
    with caplog.at_level("WARNING", logger="shared_router.pipeline.collect"):
        summary = finishes(
            lambda: collect(
                src, tmp_path / "o.jsonl", {"m": f"{THIS}:blocking_chat"}, engine=engine()
            )
        )
    assert [(job.id, job.model, job.sample) for job in summary.hung] == [("b", "m", 0)]
    assert "1 requests timed out while their model call went on blocking" in caplog.text
    assert "b (m, sample 0)" in caplog.text


def test_a_source_that_blocks_the_loop_is_called_through_its_sync_method(tmp_path: Path) -> None:
    """A ``generate`` that blocks the loop (LlamaIndex ``CustomLLM.achat``) hung ``collect``."""
    rows = [{"id": "h", "query": HANG}, *({"id": f"q{i}", "query": f"q{i}"} for i in range(6))]
    src = write_rows(tmp_path / "q.jsonl", rows)
    out = tmp_path / "out.jsonl"
    models = {"loop": f"{THIS}:LoopBlockingSource", "steady": f"{THIS}:steady_chat"}

    summary = finishes(lambda: collect(src, out, models, engine=engine(concurrency=2)))

    by_id = {row["id"]: row["models"] for row in read_rows(out)}
    assert [(job.id, job.model) for job in summary.hung] == [("h", "loop")]
    assert by_id["q3"]["loop"]["response"] == "sync q3"
    assert by_id["h"]["steady"]["response"] == f"re {HANG}"
    assert summary.errors == 1


def test_a_plain_source_may_offer_only_a_blocking_generate_sync(tmp_path: Path) -> None:
    src = write_rows(tmp_path / "q.jsonl", [{"id": "h", "query": HANG}, {"id": "a", "query": "a"}])
    out = tmp_path / "out.jsonl"
    summary = finishes(
        lambda: collect(src, out, {"only": f"{THIS}:SyncOnlySource"}, engine=engine())
    )
    assert [(job.id, job.model) for job in summary.hung] == [("h", "only")]
    assert read_rows(out)[1]["models"]["only"]["response"] == "only sync a"


def test_a_retry_of_a_hung_call_gets_a_fresh_thread() -> None:
    policy = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0, timeout=0.05)
    threads = ModelThreads("m", 1)
    try:
        outcome = finishes(
            lambda: asyncio.run(
                generate_with_retries(
                    SyncOnlySource(), HANG, policy, random.Random(0), threads=threads
                )
            )
        )
    finally:
        threads.shutdown(wait=False)
    assert outcome.generation is None
    assert outcome.hung == ("hybrid-llm m-1", "hybrid-llm m-2", "hybrid-llm m-3")
    assert threads.hung == outcome.hung


# ------------------------------------------------------------------- the per-model threads


def test_model_threads_cap_the_hung_threads_and_never_wait_for_them() -> None:
    threads = ModelThreads("m", 2, max_hung=2)
    blocked = [threads.submit(RELEASE.wait) for _ in range(2)]
    for future in blocked:
        with pytest.raises(TimeoutError):
            future.result(timeout=0.01)
    assert sorted(filter(None, map(threads.abandon, blocked))) == list(threads.hung)
    assert len(threads.hung) == 2
    with pytest.raises(UsageError, match="2 calls of 'm' are still blocked after their timeout"):
        threads.submit(int, "1")
    finishes(lambda: threads.shutdown(wait=True))  # hung threads are not joined
    with pytest.raises(UsageError, match="shut down"):
        threads.submit(int, "1")


def test_model_threads_run_calls_on_daemon_threads_bounded_by_max_workers() -> None:
    threads = ModelThreads("m", 2)
    gate = threading.Barrier(2, timeout=HANG_GUARD_S)
    seen: list[threading.Thread] = []

    def work(value: int) -> int:
        seen.append(threading.current_thread())
        gate.wait()
        return value

    futures = [threads.submit(work, i) for i in range(6)]
    assert [f.result(timeout=HANG_GUARD_S) for f in futures] == list(range(6))
    assert len(set(seen)) == 2 and all(t.daemon for t in seen)
    waiting = threads.submit(RELEASE.wait)
    queued = threads.submit(RELEASE.wait)
    extra = threads.submit(int, "7")  # queued behind two blocked calls
    assert threads.abandon(extra) is None and extra.cancelled()
    threads.abandon(waiting)
    threads.abandon(queued)
    threads.shutdown(wait=False)


# --------------------------------------------------------- item 1: a blocking judge metric


def test_a_blocking_metric_function_times_out_and_the_rest_is_scored(tmp_path: Path) -> None:
    """Issue 15: a ``module:function`` metric in ``judge`` had no timeout."""
    rows = [
        {"id": "a", "query": "q", "models": {"m": {"responses": ["fine", HANG, "good"]}}},
        {"id": "b", "query": "q2", "models": {"m": {"responses": ["fine too"]}}},
    ]
    data = write_rows(tmp_path / "d.jsonl", rows)
    spec = MetricSpec(f"{THIS}:blocking_metric", {"timeout": 0.1})

    summary = finishes(lambda: judge_file(data, spec, engine=EngineSettings(progress=False)))

    assert (summary.scored, summary.errors) == (3, 1)
    first, second = read_rows(data)
    (error,) = first["models"]["m"]["score_errors"]
    assert error["sample"] == 1
    assert error["error"].startswith(f"{THIS}:blocking_metric gave no score within 0.1 s")
    assert "still blocked in thread 'hybrid-llm metric " in error["error"]
    assert second["models"]["m"]["score"] == 1.0


def test_metric_function_timeout_must_be_finite() -> None:
    for bad in (float("nan"), float("inf"), 0, -1, "soon"):
        with pytest.raises(DataError, match="timeout must be a finite number > 0"):
            MetricSpec(f"{THIS}:blocking_metric", {"timeout": bad}).build()


# --------------------------------------------------------------- NaN / inf settings refused


@pytest.mark.parametrize("name", ["timeout", "base_delay", "max_delay"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_retry_policy_refuses_non_finite_seconds(name: str, value: float) -> None:
    with pytest.raises(DataError, match=f"{name} must be a finite number of seconds"):
        RetryPolicy(**{name: value})


def test_settings_refuse_non_numbers_and_non_integers() -> None:
    with pytest.raises(DataError, match="timeout must be a number of seconds"):
        RetryPolicy(timeout="60")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="attempts must be a whole number"):
        RetryPolicy(attempts=2.5)  # type: ignore[arg-type]
    for bad in (float("nan"), 2.5, True):
        with pytest.raises(ConfigurationError, match="concurrency must be a whole number"):
            EngineSettings(concurrency=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ray_workers must be a whole number"):
        EngineSettings(ray_workers=float("nan"))  # type: ignore[arg-type]
    with pytest.raises(DataError, match="timeout must be a finite number"):
        MetricSpec("judge", {"model": f"{THIS}:steady_chat", "timeout": float("nan")}).build()


# ------------------------------------------------- item 5: lone surrogates in queries/answers

LONE = "\ud800"
"""A lone surrogate: valid in JSON (``"\\ud800"``) and in a ``str``, not encodable as UTF-8."""


def write_escaped(path: Path, rows: list[dict[str, Any]]) -> Path:
    """JSONL as another tool writes it: ASCII with ``\\uXXXX`` escapes (lone surrogates too)."""
    path.write_text("".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows), "ascii")
    return path


def test_collect_repairs_a_query_with_a_lone_surrogate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [
        {"query": f"bad {LONE} query", "note": f"x{LONE}"},
        {"id": f"id{LONE}", "query": "fine"},
        {"query": "also fine"},
    ]
    src = write_escaped(tmp_path / "q.jsonl", rows)
    out = tmp_path / "out.jsonl"
    models = {"m": f"{THIS}:steady_chat"}
    with caplog.at_level("WARNING", logger="shared_router.pipeline.collect"):
        summary = collect(src, out, models, engine=engine())
    assert (summary.rows, summary.errors) == (3, 0)
    first, second, _ = read_rows(out)  # the output is UTF-8 text again
    assert first["query"] == "bad \ufffd query" and first["note"] == "x\ufffd"
    assert first["models"]["m"]["response"] == "re bad \ufffd query"
    assert second["id"] == "id\ufffd"
    assert "lone surrogates" in caplog.text and "U+FFFD" in caplog.text
    again = collect(src, out, models, engine=engine())  # the journal matches the repaired rows
    assert (again.skipped, again.completed) == (3, 0)


class SurrogateSource:
    """A plain source whose answers carry a lone surrogate."""

    async def generate(self, prompt: str) -> Generation:
        return Generation(f"answer {LONE}")


def test_collect_repairs_a_response_with_a_lone_surrogate(tmp_path: Path) -> None:
    src = write_rows(tmp_path / "q.jsonl", [{"query": "a"}, {"query": "b"}])
    out = tmp_path / "out.jsonl"
    summary = collect(src, out, {"m": f"{THIS}:SurrogateSource"}, engine=engine())
    assert summary.errors == 0
    assert [row["models"]["m"]["response"] for row in read_rows(out)] == ["answer \ufffd"] * 2


def test_judge_repairs_texts_with_lone_surrogates_per_item(tmp_path: Path) -> None:
    rows = [
        {
            "query": f"q{LONE}",
            "reference": f"ref{LONE}",
            "models": {"m": {"responses": [f"ref{LONE}", "other"]}},
        },
        {"query": "fine", "reference": "yes", "models": {"m": {"responses": ["yes"]}}},
    ]
    data = write_escaped(tmp_path / "d.jsonl", rows)
    summary = judge_file(data, "rouge", engine=EngineSettings(progress=False))
    assert (summary.scored, summary.errors) == (3, 0)
    first, second = read_rows(data)
    assert first["query"] == "q\ufffd"
    assert first["models"]["m"]["responses"] == ["ref\ufffd", "other"]
    assert first["models"]["m"]["scores"][0] == 1.0
    assert second["models"]["m"]["score"] == 1.0
    again = judge_file(data, "rouge", engine=EngineSettings(progress=False))
    assert (again.skipped, again.scored) == (3, 0)
