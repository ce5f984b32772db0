"""End to end: collect -> judge -> train -> calibrate -> report with offline stand-in models.

The small stand-in gets arithmetic wrong and everything else right, so the router must learn
"arithmetic goes large" — and be judged on queries it never saw.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared_router.cli.app import main
from shared_router.data import load_pair
from shared_router.errors import DataError, TrainingError
from shared_router.pipeline.build import BuildResult, build
from shared_router.pipeline.collect import collect
from shared_router.pipeline.judge import judge_file
from shared_router.pipeline.quality_metrics import MetricSpec
from shared_router.pipeline.settings import EngineSettings
from shared_router.pipeline.sources import RetryPolicy
from shared_router.routing.router import Router
from tests.shared_router.pipeline_standins import is_arithmetic, make_queries

REPO = Path(__file__).resolve().parents[2]
STANDINS = "tests.shared_router.pipeline_standins"
FAST = RetryPolicy(attempts=1, timeout=10.0)
QUIET = EngineSettings(retry=FAST, progress=False)


def write_queries(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def quick_router() -> Router:
    return Router(hidden_sizes=(), lr=0.05, epochs=40, progress=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    folder = tmp_path_factory.mktemp("build")
    queries = write_queries(folder / "queries.jsonl", make_queries(160))
    return build(
        queries,
        folder / "out",
        small=f"{STANDINS}:small_model",
        large=f"{STANDINS}:large_model",
        small_name="small",
        large_name="large",
        samples=2,
        metric=MetricSpec("match", {"mode": "normalised"}),
        label_type="trans",
        router=quick_router(),
        engine=QUIET,
    )


def test_build_learns_the_planted_pattern_on_unseen_queries(built: BuildResult) -> None:
    router = Router.load(built.router)
    fresh = [row["query"] for row in make_queries(60, offset=17)]
    scores = router.score(fresh)
    arithmetic = np.array([is_arithmetic(q) for q in fresh])
    accuracy = float(np.mean((scores >= 0.5) == ~arithmetic))
    assert accuracy >= 0.9  # random routing gets 0.5
    assert scores[arithmetic].mean() < 0.2 < 0.8 < scores[~arithmetic].mean()
    decision = router.route("What is 61 times 7?", max_quality_drop=0.0)
    assert decision.model == "large"


def test_build_reports_on_the_test_split(built: BuildResult) -> None:
    report = json.loads(built.report_json.read_text(encoding="utf-8"))
    facts = report["build"]
    assert facts["small"] == {"name": "small", "spec": f"{STANDINS}:small_model"}
    assert facts["metric"] == {"name": "match", "args": {"mode": "normalised"}}
    assert facts["label_type"] == "trans" and facts["samples"] == 2
    assert sum(facts["splits"].values()) == 160
    assert report["evaluation"]["n"] == facts["splits"]["test"]
    assert report["evaluation"]["large_mean"] == 1.0
    assert report["evaluation"]["metrics"]["router"]["gap_recovered"] > 0.9
    markdown = built.report_markdown.read_text(encoding="utf-8")
    assert markdown.startswith("# Router: small vs large")
    assert "| router |" in markdown and "| oracle |" in markdown
    assert built.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((built.router / "config.json").read_text(encoding="utf-8"))
    assert config["label_type"] == "trans" and config["quality_metric"] == "match"


def test_build_data_holds_judged_samples(built: BuildResult) -> None:
    pair = load_pair(built.data, "small", "large")
    assert len(pair) == 160
    for query, small in zip(pair.queries, pair.small_samples, strict=True):
        assert small.tolist() == ([0.0, 0.0] if is_arithmetic(query) else [1.0, 1.0])
    assert all(s.tolist() == [1.0, 1.0] for s in pair.large_samples)


def test_rerunning_the_stages_redoes_nothing(built: BuildResult) -> None:
    queries = built.data.parent.parent / "queries.jsonl"
    models = {"small": f"{STANDINS}:small_model", "large": f"{STANDINS}:large_model"}
    again = collect(queries, built.data, models, samples=2, engine=QUIET)
    assert (again.skipped, again.completed, again.errors) == (640, 0, 0)
    judged = judge_file(built.data, MetricSpec("match", {"mode": "normalised"}), engine=QUIET)
    assert (judged.scored, judged.errors) == (0, 0) and judged.skipped > 0
    assert len(load_pair(built.data, "small", "large")) == 160


def test_build_with_too_few_queries_says_so(tmp_path: Path) -> None:
    queries = write_queries(tmp_path / "q.jsonl", make_queries(4))
    with pytest.raises(TrainingError, match="too few scored rows to fill train/val/test"):
        build(
            queries,
            tmp_path / "out",
            small=f"{STANDINS}:small_model",
            large=f"{STANDINS}:large_model",
            metric="match",
            router=quick_router(),
            engine=QUIET,
        )


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("macth", "unknown metric 'macth'; use one of"),
        (MetricSpec("match", {"mdoe": "exact"}), r"metric 'match' does not take \['mdoe'\]"),
    ],
)
def test_build_refuses_a_bad_metric_before_calling_any_model(
    tmp_path: Path, metric: str | MetricSpec, message: str
) -> None:
    queries = write_queries(tmp_path / "q.jsonl", make_queries(20))
    with pytest.raises(DataError, match=message):
        build(
            queries,
            tmp_path / "out",
            small=f"{STANDINS}:small_model",
            large=f"{STANDINS}:large_model",
            metric=metric,
            router=quick_router(),
            engine=QUIET,
        )
    assert not (tmp_path / "out").exists()  # nothing was collected


@pytest.mark.torch
def test_cli_build_writes_router_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = write_queries(tmp_path / "q.jsonl", make_queries(80, offset=5))
    out = tmp_path / "out"
    monkeypatch.setenv("HYBRID_LLM_CACHE", str(tmp_path / "cache.sqlite"))
    main(
        [
            "build",
            str(queries),
            "--small",
            f"{STANDINS}:small_model",
            "--large",
            f"{STANDINS}:large_model",
            "--small-name",
            "s",
            "--large-name",
            "l",
            "--metric",
            "match",
            "--labels",
            "det",
            "--hidden",
            "",
            "--epochs",
            "40",
            "--retries",
            "0",
            "-o",
            str(out),
            "--no-progress",
        ]  # fmt: skip
    )
    printed = capsys.readouterr().out
    assert "# Router: s vs l" in printed and f"router -> {out / 'router'}" in printed
    assert Router.load(out / "router").label_type_ == "det"
    assert (tmp_path / "cache.sqlite").is_file()  # embeddings cached for the next build
    with pytest.raises(SystemExit) as done:
        main(["build", str(queries), "--small", "a:b", "--large", "c:d", "--labels", "x",
              "-o", str(out)])  # fmt: skip
    assert done.value.code == 2


@pytest.mark.torch
def test_cookbook_recipe_runs_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cookbook = REPO / "cookbook"
    monkeypatch.syspath_prepend(str(cookbook))
    spec = importlib.util.spec_from_file_location(
        "train_your_own_router", cookbook / "train_your_own_router.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "train_your_own_router", module)
    spec.loader.exec_module(module)
    result = module.run(["-o", str(tmp_path / "demo"), "--count", "120", "--epochs", "40"])
    router = Router.load(result.router)
    products = router.score(["What is 37 times 12?", "What is 55 times 9?"])
    capitals = router.score(["What is the capital of Japan?", "What is the capital of Kenya?"])
    assert products.max() < 0.5 < capitals.min()
