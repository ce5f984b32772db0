"""The Ray engine gives the same output as the local engine (on a local Ray, loopback only)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared_router.pipeline.collect import collect
from shared_router.pipeline.judge import judge_file
from shared_router.pipeline.quality_metrics import MetricSpec
from shared_router.pipeline.settings import EngineSettings
from shared_router.pipeline.sources import RetryPolicy, SourceSpec
from tests.shared_router.pipeline_standins import make_queries

ray = pytest.importorskip("ray", reason="the Ray engine needs `pip install 'hybrid-llm[ray]'`")

pytestmark = [pytest.mark.integration, pytest.mark.allow_hosts(["127.0.0.1"])]

REPO = Path(__file__).resolve().parents[2]
STANDINS = "tests.shared_router.pipeline_standins"
MODELS = {"small": f"{STANDINS}:small_model", "large": f"{STANDINS}:large_model"}
FAST = RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0, timeout=10.0)


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """A local Ray whose workers can import the stand-ins, bound to 127.0.0.1 only.

    Ray binds its servers to the node address, which it takes from the machine's interfaces
    unless clustering is off (then it is the loopback address).
    """
    import ray._private.ray_constants as ray_constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        patch.setenv("PYTHONPATH", str(REPO))
        ray.init(num_cpus=2, include_dashboard=False)
        assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
        patch.delenv("PYTHONPATH")
        yield
        ray.shutdown()


def rows_without_latency(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        for entry in row["models"].values():
            assert len(entry.pop("latency_s")) == len(entry["responses"])
    return rows


@pytest.fixture(scope="module")
def queries(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray") / "queries.jsonl"
    rows = make_queries(24)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_collect_and_judge_on_ray_equal_the_local_engine(queries: Path, tmp_path: Path) -> None:
    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.jsonl"
        settings = EngineSettings(kind=engine, concurrency=3, retry=FAST, progress=False)
        summary = collect(queries, out, MODELS, samples=2, engine=settings)
        assert (summary.completed, summary.errors) == (96, 0)
        judged = judge_file(
            out, MetricSpec("match", {"mode": "numeric"}), batch_size=5, engine=settings
        )
        assert (judged.responses, judged.errors) == (96, 0)
        outputs[engine] = rows_without_latency(out)
    assert outputs["ray"] == outputs["local"]
    first = outputs["ray"][0]["models"]
    assert first["small"]["scores"] == [0.0, 0.0] and first["large"]["scores"] == [1.0, 1.0]


def test_ray_resumes_from_the_journal_and_retries_errors(queries: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    first = collect(  # the journal is the same whichever engine wrote it
        queries,
        out,
        {"small": SourceSpec(MODELS["small"], {"fail_on": "capital"}), "large": MODELS["large"]},
        engine=EngineSettings(kind="local", retry=FAST, progress=False),
    )
    assert first.errors == 12  # the 12 word questions of make_queries(24) ask for capitals
    entry = json.loads(out.read_text(encoding="utf-8").splitlines()[1])["models"]["small"]
    assert entry["errors"][0]["error"].startswith("RuntimeError: stand-in failure")
    second = collect(
        queries, out, MODELS, engine=EngineSettings(kind="ray", retry=FAST, progress=False)
    )
    assert (second.skipped, second.completed, second.errors) == (36, 12, 0)
