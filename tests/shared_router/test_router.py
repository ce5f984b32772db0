"""Router: knobs, routing rules, batches, threads, save/load, training on a planted pattern."""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from shared_router.data import PairData
from shared_router.encoders.cache import EmbeddingCache
from shared_router.encoders.encoder import Encoder
from shared_router.errors import (
    ArtifactError,
    CalibrationError,
    KnobError,
    RoutingError,
    TrainingError,
)
from shared_router.routing.router import Router
from shared_router.routing.train_router import train_router
from shared_router.training.labels import make_labels
from shared_router.types import ModelPair, QualityKnobs, RouteDecision

ARITHMETIC = [
    f"What is {a} {op} {b}?"
    for a, b, op in itertools.product((3, 8, 14, 27, 61, 95), (2, 7, 12), ("plus", "times"))
]
LAW = [
    f"Explain how {doctrine} applies to {case} under {law}."
    for doctrine, case, law in itertools.product(
        ("promissory estoppel", "vicarious liability", "the parol evidence rule"),
        ("a construction contract", "an employment dispute", "a commercial lease"),
        ("English law", "New York law", "Scots law", "Australian law"),
    )
]


@pytest.fixture(scope="module")
def easy(planted_queries: tuple[list[str], list[str]]) -> list[str]:
    return planted_queries[0]


@pytest.fixture(scope="module")
def texts(planted_queries: tuple[list[str], list[str]]) -> list[str]:
    return planted_queries[0] + planted_queries[1]


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC: the share of (positive, negative) pairs ranked right (ties half)."""
    pos, neg = scores[positive], scores[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


def test_auc_helper_on_hand_computed_cases() -> None:
    assert _auc(np.array([0.9, 0.8, 0.1]), np.array([True, True, False])) == 1.0
    assert _auc(np.array([0.1, 0.5, 0.5]), np.array([True, False, True])) == 0.25


@pytest.mark.torch
def test_router_learns_a_planted_pattern_on_held_out_texts(tmp_cache: EmbeddingCache) -> None:
    # Arithmetic questions are labelled "small is enough", law questions "needs large";
    # every other text of each kind is held out.
    texts = ARITHMETIC + LAW
    y = np.array([1.0] * len(ARITHMETIC) + [0.0] * len(LAW))
    train = np.arange(len(texts)) % 2 == 0
    router = Router(
        Encoder("default", cache=tmp_cache), hidden_sizes=(), epochs=200, lr=0.05, progress=False
    )
    router.fit([t for t, k in zip(texts, train, strict=True) if k], y[train])
    held_out = [t for t, k in zip(texts, train, strict=True) if not k]
    scores = router.score(held_out)
    assert _auc(scores, y[~train] == 1.0) > 0.9


@pytest.mark.torch
def test_fit_records_validation_loss_and_clears_calibration(
    tmp_cache: EmbeddingCache, texts: list[str], easy: list[str]
) -> None:
    router = Router(Encoder("default", cache=tmp_cache), hidden_sizes=(), epochs=30, lr=0.05)
    router.progress = False
    y = np.array([1.0] * len(easy) + [0.0] * (len(texts) - len(easy)))
    router.fit(texts[::2], y[::2], val_texts=texts[1::2], val_y=y[1::2])
    assert router.metadata_["n_train"] == len(texts[::2])
    assert router.metadata_["n_val"] == len(texts[1::2])
    p = router.score(texts[1::2])
    q = np.clip(p, 1e-7, 1 - 1e-7)
    expected = float(np.mean(-(y[1::2] * np.log(q) + (1 - y[1::2]) * np.log(1 - q))))
    assert router.metadata_["metrics"]["val_bce"] == pytest.approx(expected)
    assert router.calibration_ is None
    assert router.default_knobs == QualityKnobs(threshold=0.5)


def test_scores_and_probabilities(
    planted_router: Router, texts: list[str], easy: list[str]
) -> None:
    scores = planted_router.score(texts)
    assert scores.shape == (len(texts),) and scores.dtype == np.float64
    assert np.all((scores >= 0) & (scores <= 1))
    assert scores[: len(easy)].min() > scores[len(easy) :].max()
    one = planted_router.score(texts[0])
    assert one.shape == (1,)
    assert one[0] == pytest.approx(scores[0], abs=1e-6)
    proba = planted_router.predict_proba(texts[:3])
    assert proba.shape == (3, 2)
    np.testing.assert_allclose(proba[:, 1], scores[:3], atol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert planted_router.score([]).shape == (0,)


@pytest.mark.parametrize(
    "knobs",
    [
        {},
        {"max_quality_drop": 0.01, "threshold": 0.5},
        {"large_share": 0.2, "threshold": 0.5},
        {"max_quality_drop": -0.1},
        {"large_share": 1.5},
        {"threshold": float("nan")},
    ],
)
def test_knobs_must_be_exactly_one_and_valid(
    planted_router: Router, knobs: dict[str, float]
) -> None:
    with pytest.raises(KnobError):
        planted_router.route("What is 2 + 2?", **knobs)
    with pytest.raises(KnobError):
        planted_router.route_batch(["What is 2 + 2?"], **knobs)


def test_no_knob_error_points_to_the_default(planted_router: Router) -> None:
    with pytest.raises(KnobError, match="got none.*default_knobs"):
        planted_router.route("What is 2 + 2?")
    assert planted_router.default_knobs == QualityKnobs(max_quality_drop=0.01)
    decision = planted_router.route("What is 2 + 2?", **planted_router.default_knobs.set_knobs())
    assert decision.knob == "max_quality_drop" and decision.knob_value == 0.01
    with pytest.raises(KnobError):
        planted_router.threshold_for(QualityKnobs())


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \r\n"])
def test_empty_text_goes_large_without_scoring(planted_router: Router, text: str) -> None:
    decision = planted_router.route(text, threshold=0.0)
    assert decision == RouteDecision(
        model="large",
        score=None,
        threshold=None,
        knob="threshold",
        knob_value=0.0,
        reason="empty text: routed to the large model",
    )


def test_empty_text_does_not_need_calibration_but_bad_knobs_still_raise() -> None:
    router = Router()  # not even fitted: empty text never reaches the model
    with pytest.raises(KnobError):
        router.route("", threshold=2.0)
    with pytest.raises(RoutingError, match="not fitted"):
        router.route("hello", threshold=0.5)


def test_score_at_or_above_threshold_goes_small(planted_router: Router) -> None:
    text = "What is 13 + 9?"
    s = float(planted_router.score([text])[0])
    at = planted_router.route(text, threshold=s)
    assert (at.model, at.score, at.threshold, at.knob) == ("small", s, s, "threshold")
    assert ">=" in at.reason
    above = planted_router.route(text, threshold=float(np.nextafter(s, 2.0)))
    assert above.model == "large" and "<" in above.reason
    assert planted_router.route(text, threshold=0.0).model == "small"


def test_quality_and_share_knobs_use_the_calibration_table(
    planted_router: Router, texts: list[str]
) -> None:
    table = planted_router.calibration_
    assert table is not None
    decision = planted_router.route("What is 2 + 2?", max_quality_drop=0.05)
    assert decision.threshold == table.threshold_for_quality_drop(0.05)
    assert planted_router.threshold_for(QualityKnobs(large_share=0.5)) == (
        table.threshold_for_large_share(0.5)
    )
    decisions = planted_router.route_batch(texts, large_share=0.5)
    large = sum(d.model == "large" for d in decisions)
    assert abs(large - len(texts) / 2) <= 2  # the median of the calibration scores
    assert planted_router.threshold_for(QualityKnobs(threshold=0.3)) == 0.3


def test_uncalibrated_router_explains_what_to_do(planted_router: Router) -> None:
    router = copy.copy(planted_router)
    router.calibration_ = None
    for knob in ({"max_quality_drop": 0.01}, {"large_share": 0.3}):
        with pytest.raises(CalibrationError, match=r"no calibration table.*calibrate\("):
            router.route("What is 2 + 2?", **knob)
    assert router.route("What is 2 + 2?", threshold=0.5).model == "small"


def test_batch_equals_one_by_one(planted_router: Router, texts: list[str]) -> None:
    texts = [*texts[:10], "", *texts[-10:], "  "]
    batch = planted_router.route_batch(texts, max_quality_drop=0.02)
    single = [planted_router.route(t, max_quality_drop=0.02) for t in texts]
    assert [d.model for d in batch] == [d.model for d in single]
    for b, s in zip(batch, single, strict=True):
        assert (b.knob, b.threshold, b.knob_value) == (s.knob, s.threshold, s.knob_value)
        if s.score is None:
            assert b.score is None and b.reason == s.reason
        else:
            assert b.score == pytest.approx(s.score, abs=1e-6)


def test_route_batch_rejects_bad_texts(planted_router: Router) -> None:
    with pytest.raises(RoutingError, match="use route"):
        planted_router.route_batch("one text", threshold=0.5)
    with pytest.raises(RoutingError, match=r"texts\[1\] must be a str"):
        planted_router.route_batch(["ok", None], threshold=0.5)  # type: ignore[list-item]
    with pytest.raises(RoutingError, match="text must be a str"):
        planted_router.route(42, threshold=0.5)  # type: ignore[arg-type]


def test_many_threads_give_the_sequential_answers(planted_router: Router, texts: list[str]) -> None:
    expected = [planted_router.route(t, max_quality_drop=0.01) for t in texts]
    results: dict[int, list[RouteDecision]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(k: int) -> None:
        try:
            barrier.wait()
            order = texts[k:] + texts[:k]
            if k % 2:
                got = planted_router.route_batch(order, max_quality_drop=0.01)
            else:
                got = [planted_router.route(t, max_quality_drop=0.01) for t in order]
            results[k] = got[len(texts) - k :] + got[: len(texts) - k]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for got in results.values():
        assert [d.model for d in got] == [d.model for d in expected]
        for g, e in zip(got, expected, strict=True):
            assert g.score == pytest.approx(e.score, abs=1e-6)


def test_save_and_load_give_identical_scores(
    planted_router: Router, tmp_path: Path, texts: list[str]
) -> None:
    folder = planted_router.save(tmp_path / "router")
    loaded = Router.load(folder)
    np.testing.assert_array_equal(loaded.score(texts), planted_router.score(texts))
    assert loaded.name == "planted-test-router"
    assert loaded.default_knobs == planted_router.default_knobs
    assert loaded.calibration_ is not None and planted_router.calibration_ is not None
    assert loaded.calibration_.to_dict() == planted_router.calibration_.to_dict()
    again, before = (r.route_batch(texts, max_quality_drop=0.01) for r in (loaded, planted_router))
    assert again == before
    config = json.loads((folder / "config.json").read_text())
    assert config["encoder"]["name"] == "all-MiniLM-L6-v2"
    assert config["encoder"]["max_tokens"] == 256 and config["encoder"]["dim"] == 384
    assert "path" not in config["encoder"]
    assert config["head"] == {"type": "mlp", "input_dim": 384, "hidden_sizes": []}
    assert config["training"]["lr"] == 0.05 and config["training"]["epochs"] == 300
    assert not list(folder.glob("*.pkl")) and not list(folder.glob("*.pt"))


def test_describe_summarises_config_and_calibration(
    planted_router: Router, texts: list[str]
) -> None:
    info = planted_router.describe()
    json.dumps(info)  # JSON-ready
    assert info["name"] == "planted-test-router"
    assert info["calibration"]["n"] == len(texts)
    assert set(info["calibration"]["cost_advantage_at_max_quality_drop"]) == {
        "0.0",
        "0.01",
        "0.02",
        "0.05",
    }


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no router folder"):
        Router.load(tmp_path / "missing")
    with pytest.raises(RoutingError, match="not fitted"):
        Router().save(tmp_path / "r")


def test_load_default_reads_the_bundled_folder() -> None:
    from importlib import resources

    bundled = Path(str(resources.files("shared_router.model") / "default"))
    if (bundled / "config.json").is_file():
        router = Router.load("default")
        assert router.calibration_ is not None
        score = router.score(["What is 2 + 2?"])
        assert 0.0 <= float(score[0]) <= 1.0
    else:
        with pytest.raises(ArtifactError, match="bundled default router is not in this install"):
            Router.load("default")


def _pair_data() -> PairData:
    queries = ARITHMETIC + LAW
    n_small = len(ARITHMETIC)
    splits = tuple(("train", "train", "val", "test")[i % 4] for i in range(len(queries)))
    small_samples = tuple(
        np.array([1.0, 1.0, 1.0]) if i < n_small else np.array([0.0, 0.0, 0.5])
        for i in range(len(queries))
    )
    large_samples = tuple(np.array([1.0, 1.0, 1.0]) for _ in queries)
    return PairData(
        small="small-lm",
        large="large-lm",
        source="synthetic",
        ids=tuple(f"q{i}" for i in range(len(queries))),
        queries=tuple(queries),
        splits=splits,
        small_quality=np.array([s.mean() for s in small_samples]),
        large_quality=np.ones(len(queries)),
        small_samples=small_samples,
        large_samples=large_samples,
    )


@pytest.mark.torch
@pytest.mark.parametrize("label_type", ["trans", "det"])
def test_train_router_records_what_it_was_trained_on(
    tmp_cache: EmbeddingCache, tmp_path: Path, label_type: str
) -> None:
    data = _pair_data()
    router = Router(
        Encoder("default", cache=tmp_cache), hidden_sizes=(), epochs=80, lr=0.05, progress=False
    )
    trained = train_router(data, label_type=label_type, router=router, n_bootstrap=50)  # type: ignore[arg-type]
    train, val = data.split("train"), data.split("val")
    assert trained is router
    assert trained.label_type_ == label_type
    expected_t = make_labels(train, "trans").t_star if label_type == "trans" else None
    assert trained.t_star_ == expected_t
    assert trained.pair_ == ModelPair("small-lm", "large-lm")
    assert trained.metadata_["training_data_hash"] == data.data_hash
    assert trained.metadata_["quality_metric"] == "score"
    assert trained.metadata_["n_train"] == len(train)
    assert trained.calibration_ is not None and trained.calibration_.n == len(val)
    val_metrics = trained.metadata_["metrics"]["val"]
    assert val_metrics["n"] == len(val) and val_metrics["gap_recovered"] > 0.5
    config = json.loads((trained.save(tmp_path / "r") / "config.json").read_text())
    assert config["pair"] == {"small": "small-lm", "large": "large-lm"}
    assert config["label_type"] == label_type and config["t_star"] == expected_t
    assert config["training_data_hash"] == data.data_hash
    assert config["default_knobs"]["max_quality_drop"] == 0.01
    test = data.split("test")
    scores = trained.score(list(test.queries))
    assert _auc(scores, test.small_quality > 0.5) > 0.9


@pytest.mark.slow
def test_fine_tuned_router_saves_its_encoder_and_loads_back(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    texts = ARITHMETIC[:8] + LAW[:8]
    y = np.array([1.0] * 8 + [0.0] * 8)
    router = Router(
        Encoder("default", device="cpu"),
        hidden_sizes=(4,),
        fine_tune=True,
        fine_tune_epochs=1,
        batch_size=16,
        device="cpu",
        progress=False,
        name="tuned",
    )
    router.fit(texts, y)
    assert router.encoder_.path is not None and router.encoder_.path.name == "encoder"
    folder = router.save(tmp_path / "router")
    config = json.loads((folder / "config.json").read_text())
    assert config["encoder"]["path"] == "encoder"
    assert config["encoder"]["name"] == "all-MiniLM-L6-v2"
    assert config["training"]["fine_tune"] is True
    assert (folder / "encoder" / "model.safetensors").is_file()
    loaded = Router.load(folder)
    np.testing.assert_allclose(loaded.score(texts), router.score(texts), atol=1e-5)


def test_import_shared_router_stays_light() -> None:
    code = (
        "import sys\n"
        "import shared_router\n"
        "from shared_router import Router, QualityKnobs, RouteDecision, Encoder, MLPHead\n"
        "from shared_router import train_router, CalibrationTable, RoutingService, train_head\n"
        "heavy = ['torch', 'sentence_transformers', 'transformers', 'langchain_core',\n"
        "         'langchain', 'llama_index', 'matplotlib']\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        "print(all(hasattr(shared_router, n) for n in shared_router.__all__))\n"
        "public = set(shared_router.__all__) - {'__version__'}\n"
        "print(sorted(shared_router._EXPORTS) == sorted(public))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.splitlines() == ["[]", "True", "True"]


def test_logistic_head_router_learns_saves_and_loads(
    tmp_cache: EmbeddingCache, tmp_path: Path
) -> None:
    # The exact L2 logistic head: no torch at fit time, l2 chosen on validation data, and
    # the choice travels with the saved router.
    texts = ARITHMETIC + LAW
    y = np.array([1.0] * len(ARITHMETIC) + [0.0] * len(LAW))
    train = np.arange(len(texts)) % 3 != 0
    grid = (1e-3, 1e-1, 10.0)
    router = Router(
        Encoder("default", cache=tmp_cache), head_type="logistic", l2=grid, progress=False
    )
    router.fit(
        [t for t, k in zip(texts, train, strict=True) if k],
        y[train],
        val_texts=[t for t, k in zip(texts, train, strict=True) if not k],
        val_y=y[~train],
    )
    held_out = [t for t, k in zip(texts, train, strict=True) if not k]
    assert router.head_.hidden_sizes == ()
    assert router.metadata_["l2_chosen"] in grid
    assert _auc(router.score(held_out), y[~train] == 1.0) > 0.9
    folder = router.save(tmp_path / "logistic")
    config = json.loads((folder / "config.json").read_text())
    assert config["head"] == {"type": "mlp", "input_dim": 384, "hidden_sizes": []}
    assert config["training"]["head_type"] == "logistic"
    assert config["training"]["l2"] == list(grid)
    assert config["training"]["l2_chosen"] == router.metadata_["l2_chosen"]
    loaded = Router.load(folder, cache=tmp_cache)
    assert loaded.head_type == "logistic" and loaded.l2 == grid
    assert loaded.metadata_["l2_chosen"] == router.metadata_["l2_chosen"]
    np.testing.assert_array_equal(loaded.score(held_out), router.score(held_out))


def test_logistic_head_refuses_what_it_cannot_do(tmp_cache: EmbeddingCache) -> None:
    texts, y = ARITHMETIC[:6] + LAW[:6], np.array([1.0] * 6 + [0.0] * 6)
    encoder = Encoder("default", cache=tmp_cache)
    with pytest.raises(TrainingError, match="needs validation data"):
        Router(encoder, head_type="logistic", progress=False).fit(texts, y)
    with pytest.raises(TrainingError, match="fine_tune=True"):
        Router(encoder, head_type="logistic", fine_tune=True, progress=False).fit(texts, y)
    with pytest.raises(TrainingError, match="head_type must be"):
        Router(encoder, head_type="forest", progress=False).fit(texts, y)  # type: ignore[arg-type]
    single = Router(encoder, head_type="logistic", l2=0.01, progress=False).fit(texts, y)
    assert single.metadata_["l2_chosen"] == 0.01


def test_fine_tuning_refuses_an_int8_encoder(tmp_cache: EmbeddingCache) -> None:
    texts, y = ARITHMETIC[:6] + LAW[:6], np.array([1.0] * 6 + [0.0] * 6)
    encoder = Encoder("default", precision="int8", cache=tmp_cache)
    with pytest.raises(TrainingError, match="precision='int8'"):
        Router(encoder, fine_tune=True, progress=False).fit(texts, y)


def test_logistic_router_trains_and_routes_without_torch(tmp_path: Path) -> None:
    # head_type="logistic" needs no torch at all: numpy encoder, numpy Newton fit, numpy head.
    code = (
        "import sys\n"
        "from shared_router import Encoder, EmbeddingCache, Router\n"
        f"cache = EmbeddingCache({str(tmp_path / 'cache.sqlite')!r})\n"
        "texts = [f'What is {a} plus {b}?' for a in range(6) for b in range(4)]\n"
        "texts += [f'Draft a legal memo on clause {a} of contract {b}.' for a in range(6)"
        " for b in range(4)]\n"
        "y = [1.0] * 24 + [0.0] * 24\n"
        "router = Router(Encoder('default', cache=cache), head_type='logistic', progress=False)\n"
        "router.fit(texts[::2], y[::2], val_texts=texts[1::2], val_y=y[1::2])\n"
        "print(router.route('What is 3 plus 9?', threshold=0.5).model)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sklearn')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.splitlines() == ["small", "[]"]
