"""Shadow evaluation: unbiased draws, off the caller's path, judges, counters, nothing lost."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import pytest

from shared_router.errors import ConfigurationError, DataError
from shared_router.live.costs import ShadowCosts, TokenCosts
from shared_router.live.judges import (
    CallableJudge,
    PairScores,
    PairwiseJudge,
    PointwiseJudge,
    ShadowCase,
    pair_scores,
)
from shared_router.live.recalibration import LiveThreshold
from shared_router.live.shadow import ShadowEvaluator
from shared_router.live.store import ShadowStore, SQLiteStore, open_store
from shared_router.pipeline.quality_lexical import MatchMetric
from shared_router.routing.accounting import ModelPrices, TokenUsage
from shared_router.routing.live_hook import ShadowAnswer
from shared_router.types import RouteDecision

SMALL = RouteDecision("small", 0.9, 0.5, "threshold")
LARGE = RouteDecision("large", 0.1, 0.5, "threshold")


@pytest.fixture()
def store(tmp_path: Path) -> ShadowStore:
    return open_store(tmp_path / "live.sqlite")


def _fixed(case: ShadowCase) -> tuple[float, float]:
    return 0.0, 1.0


def _offer(evaluator: ShadowEvaluator, i: int, **changes: object) -> bool:
    decision = SMALL if i % 2 else LARGE
    arguments: dict[str, object] = {
        "request_id": f"r{i}",
        "routed_text": f"question {i}",
        "routed": decision,
        "answered_by": decision.model,
        "answer": "answer",
        "call_other": lambda: "other answer",
    }
    arguments.update(changes)
    return evaluator.maybe_shadow(**arguments)  # type: ignore[arg-type]


def test_the_shadowed_share_is_the_rate_and_independent_of_the_decision(
    store: ShadowStore,
) -> None:
    evaluator = ShadowEvaluator(
        store, CallableJudge(_fixed), shadow_rate=0.2, seed=1, queue_size=4000
    )
    drawn = [_offer(evaluator, i) for i in range(4000)]
    assert evaluator.drain(timeout=60)
    small = [d for i, d in enumerate(drawn) if i % 2]
    large = [d for i, d in enumerate(drawn) if not i % 2]
    # binomial(2000, 0.2): sd 0.009; 4 sd either side
    assert abs(sum(small) / len(small) - 0.2) < 0.036
    assert abs(sum(large) / len(large) - 0.2) < 0.036
    stats = evaluator.stats
    assert stats.calls == 4000 and stats.shadowed == sum(drawn) == stats.labelled
    assert store.count() == sum(drawn)
    evaluator.close()


def test_a_row_holds_the_decision_both_qualities_and_the_calibration(store: ShadowStore) -> None:
    calibration = LiveThreshold(0.6, "live", 412, 0.031, 0.05)
    evaluator = ShadowEvaluator(
        store,
        CallableJudge(lambda case: PairScores(0.25, 0.75)),
        shadow_rate=1.0,
        keep_answers=True,
    )
    _offer(evaluator, 1, reference="4", calibration=calibration)
    assert evaluator.drain(timeout=10)
    (stored,) = store.rows()
    row = stored.row
    assert (row.request_id, row.decision, row.text) == ("r1", "small", "question 1")
    assert (row.small_quality, row.large_quality) == (0.25, 0.75)
    assert (row.small_answer, row.large_answer) == ("answer", "other answer")
    assert (row.score, row.threshold) == (0.9, 0.6)
    assert (row.calibration_source, row.calibration_rows, row.calibration_bound) == (
        "live",
        412,
        0.031,
    )
    assert row.shadow_cost == pytest.approx(ShadowCosts().large)
    evaluator.close()


def test_token_costs_price_the_answered_and_the_shadow_call_by_their_tokens(
    store: ShadowStore, caplog: pytest.LogCaptureFixture
) -> None:
    small, large = ModelPrices(1.0, 2.0), ModelPrices(10.0, 30.0)
    evaluator = ShadowEvaluator(
        store,
        CallableJudge(_fixed),
        shadow_rate=1.0,
        costs=TokenCosts(small, large, judge=0.001),
    )
    shadow = ShadowAnswer("other answer", TokenUsage(input_tokens=100, output_tokens=50))
    _offer(evaluator, 1, usage=TokenUsage(100, 20), call_other=lambda: shadow)  # small answered
    _offer(evaluator, 2, call_other=lambda: "no usage reported")  # large answered, no counts
    assert evaluator.drain(timeout=10)
    traffic = evaluator.traffic
    assert traffic.answer_cost == pytest.approx(small.cost(100, 20))
    assert traffic.large_cost == pytest.approx(large.cost(100, 20))
    # the large shadow call of the first, the uncounted small one of the second, two judgements
    assert traffic.shadow_cost == pytest.approx(large.cost(100, 50) + 2 * 0.001)
    assert evaluator.stats.unpriced == 2  # the second call and its shadow call reported none
    assert "reported no token usage, so its token price is 0" in caplog.text
    rows = sorted(store.rows(), key=lambda r: r.row.request_id)
    assert [r.row.shadow_cost for r in rows] == pytest.approx([large.cost(100, 50) + 0.001, 0.001])
    # a call's own costs win over the evaluator's
    _offer(evaluator, 3, costs=ShadowCosts(small=0.5, large=2.0), call_other=lambda: shadow)
    assert evaluator.drain(timeout=10)
    assert evaluator.traffic.shadow_cost - traffic.shadow_cost == pytest.approx(2.0)
    evaluator.close()


def test_costs_must_be_prices_of_the_right_kind() -> None:
    with pytest.raises(ConfigurationError, match="ShadowCosts.small must be a finite number >= 0"):
        ShadowCosts(small=-1.0)
    with pytest.raises(ConfigurationError, match="TokenCosts.large must be a ModelPrices"):
        TokenCosts(ModelPrices(1.0, 2.0), 3.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="TokenCosts.judge must be a finite .* got 'free'"):
        TokenCosts(ModelPrices(1.0, 2.0), ModelPrices(1.0, 2.0), judge="free")  # type: ignore[arg-type]


def test_a_blocking_shadow_model_never_delays_the_caller(store: ShadowStore) -> None:
    release = threading.Event()

    def blocked() -> str:
        release.wait(30)
        return "late"

    evaluator = ShadowEvaluator(
        store, CallableJudge(_fixed), shadow_rate=1.0, queue_size=2, workers=1, shadow_timeout=0.3
    )
    started = time.perf_counter()
    for i in range(50):
        _offer(evaluator, i, call_other=blocked)
    assert time.perf_counter() - started < 1.0  # 50 offers return at once, no shadow waited for
    assert evaluator.stats.dropped > 0
    assert evaluator.drain(timeout=30)
    stats = evaluator.stats
    assert stats.shadowed + stats.dropped == 50
    assert stats.shadow_errors == stats.shadowed and stats.labelled == 0
    release.set()
    evaluator.close()


def test_a_raising_shadow_model_or_judge_is_counted_and_leaves_no_row(
    store: ShadowStore,
) -> None:
    def broken() -> str:
        raise ConnectionError("shadow model down")

    def bad_judge(case: ShadowCase) -> PairScores:
        raise DataError("judge could not score")

    evaluator = ShadowEvaluator(store, CallableJudge(_fixed), shadow_rate=1.0, worker="w1")
    for i in range(3):
        assert _offer(evaluator, i, call_other=broken) is True
    assert evaluator.drain(timeout=10)
    assert evaluator.stats.shadow_errors == 3
    judged = ShadowEvaluator(store, CallableJudge(bad_judge), shadow_rate=1.0, worker="w2")
    for i in range(3):
        _offer(judged, i)
    assert judged.drain(timeout=10)
    assert judged.stats.judge_errors == 3
    assert store.count() == 0
    assert store.traffic().judge_errors == 3 and store.traffic().shadow_errors == 3
    evaluator.close()
    judged.close()


def test_a_judge_returning_nonsense_is_a_judge_error(store: ShadowStore) -> None:
    evaluator = ShadowEvaluator(
        store,
        CallableJudge(lambda case: (1.5, 0.0)),
        shadow_rate=1.0,  # type: ignore[arg-type,return-value]
    )
    _offer(evaluator, 1)
    assert evaluator.drain(timeout=10)
    assert evaluator.stats.judge_errors == 1 and store.count() == 0
    evaluator.close()


@pytest.mark.parametrize(
    ("returned", "said"),
    [
        ({"small": 1.0, "large": 0.0}, "got dict {'small': 1.0, 'large': 0.0}"),
        ("10", "got str '10'"),
        ((1.0,), "got (1.0,)"),
    ],
)
def test_a_judge_result_is_read_as_a_pair_or_refused_by_what_it_was(
    returned: object, said: str
) -> None:
    assert pair_scores((1, 0.5)) == PairScores(1.0, 0.5)
    with pytest.raises(DataError, match=re.escape(f"(small_quality, large_quality), {said}")):
        pair_scores(returned)


def test_a_plain_function_is_a_judge_and_a_wrong_result_is_warned_about(
    store: ShadowStore, caplog: pytest.LogCaptureFixture
) -> None:
    plain = ShadowEvaluator(store, _fixed, shadow_rate=1.0, worker="w1")
    for i in range(2):
        _offer(plain, i)
    assert plain.drain(timeout=10)
    assert plain.stats.labelled == 2 and plain.stats.judge_errors == 0 and store.count() == 2
    wrong = ShadowEvaluator(store, lambda case: "small wins", shadow_rate=1.0, worker="w2")  # type: ignore[arg-type,return-value]
    with caplog.at_level(logging.WARNING, logger="shared_router.live.shadow"):
        for i in range(2, 5):
            _offer(wrong, i)
        assert wrong.drain(timeout=10)
    assert wrong.stats.judge_errors == 3 and store.count() == 2
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "(small_quality, large_quality), got str 'small wins'" in warning.getMessage()
    plain.close()
    wrong.close()


def test_the_match_judge_scores_against_the_reference_and_needs_one() -> None:
    judge = PointwiseJudge(MatchMetric())
    case = ShadowCase("r", "What is 2 + 2?", "The answer is 5", "The answer is 4", "4")
    assert judge(case) == PairScores(0.0, 1.0)
    with pytest.raises(DataError, match="needs a reference answer"):
        judge(ShadowCase("r", "q", "a", "b"))


def test_the_pairwise_judge_randomises_the_order() -> None:
    prompts: list[str] = []

    def prefers_the_first(prompt: str) -> str:
        prompts.append(prompt)
        return "Both are fine, but\nWinner: A"

    judge = PairwiseJudge(prefers_the_first, seed=0)
    verdicts = [judge(ShadowCase(f"r{i}", "q", "SMALL", "LARGE")) for i in range(400)]
    small_wins = sum(v == PairScores(1.0, 0.0) for v in verdicts)
    assert 150 < small_wins < 250  # a first-position bias favours each model about equally
    assert all(v in (PairScores(1.0, 0.0), PairScores(0.0, 1.0)) for v in verdicts)
    first_small = sum(p.index("SMALL") < p.index("LARGE") for p in prompts)
    assert first_small == small_wins


def test_the_pairwise_judge_reads_a_tie_and_fails_clearly_without_a_verdict() -> None:
    assert PairwiseJudge(lambda p: "Winner: tie")(ShadowCase("r", "q", "a", "b")) == PairScores(
        1.0, 1.0
    )
    with pytest.raises(DataError, match="named no winner for request 'r' after 2 tries"):
        PairwiseJudge(lambda p: "I cannot decide")(ShadowCase("r", "q", "a", "b"))


def test_bad_settings_are_clear_errors(store: ShadowStore) -> None:
    with pytest.raises(ConfigurationError, match="shadow_rate must lie in"):
        ShadowEvaluator(store, CallableJudge(_fixed), shadow_rate=1.5)
    with pytest.raises(ConfigurationError, match="needs the router's encoder"):
        ShadowEvaluator(store, CallableJudge(_fixed), shadow_rate=0.1, keep="embedding")


def test_an_unreachable_store_never_fails_the_caller_and_rows_are_kept(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    unreachable = SQLiteStore(blocker / "live.sqlite")  # every connection attempt fails
    evaluator = ShadowEvaluator(
        unreachable, CallableJudge(_fixed), shadow_rate=1.0, buffer_capacity=5, workers=1
    )
    assert all(_offer(evaluator, i) for i in range(8))
    assert evaluator.drain(timeout=10)
    stats = evaluator.stats
    assert stats.labelled == 8
    assert (stats.rows_written, stats.rows_buffered, stats.rows_lost) == (0, 5, 3)
    assert [row.request_id for row in evaluator.writer.pending] == [f"r{i}" for i in range(5)]
    evaluator.close()


def test_rows_the_store_never_took_are_counted_lost_and_warned_about_at_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    evaluator = ShadowEvaluator(
        SQLiteStore(blocker / "live.sqlite"), CallableJudge(_fixed), shadow_rate=1.0, workers=1
    )
    assert all(_offer(evaluator, i) for i in range(4))
    with caplog.at_level(logging.WARNING, logger="shared_router.live.store_writer"):
        evaluator.close()
    assert "still fails: 4 buffered shadow rows are dropped as the live loop closes" in caplog.text
    stats = evaluator.stats
    assert (stats.rows_written, stats.rows_buffered, stats.rows_lost) == (0, 0, 4)


def test_evaluators_sharing_a_worker_name_add_their_traffic_up(store: ShadowStore) -> None:
    evaluators = [
        ShadowEvaluator(store, CallableJudge(_fixed), shadow_rate=0.0, worker="api-1")
        for _ in range(2)  # two loops in one process, or a restart under the same name
    ]
    for count, evaluator in zip((3, 5), evaluators, strict=True):
        for i in range(count):
            _offer(evaluator, i)
        assert evaluator.drain(timeout=10)
        evaluator.close()
    assert store.traffic().calls == 8


def test_keep_embedding_stores_the_vector_and_not_the_text(store: ShadowStore) -> None:
    from shared_router.routing.router import Router

    encoder = Router.load("default").encoder_
    evaluator = ShadowEvaluator(
        store, CallableJudge(_fixed), shadow_rate=1.0, keep="embedding", encoder=encoder
    )
    _offer(evaluator, 1)
    assert evaluator.drain(timeout=60)
    (stored,) = store.rows()
    assert stored.row.text is None and stored.row.encoder_identity == encoder.identity
    assert stored.row.embedding is not None
    assert stored.row.embedding.shape == (encoder.dim,)
    evaluator.close()
