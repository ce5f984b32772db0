"""One router per process per source; services that fail to load raise; copies and pickling."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shared_router.errors import ArtifactError, ConfigurationError, UsageError
from shared_router.routing import registry
from shared_router.routing.accounting import ModelPrices
from shared_router.routing.router import Router
from shared_router.routing.router_folder import router_folder_path
from shared_router.routing.serving import RoutingService
from shared_router.types import QualityKnobs
from tests.conftest import EASY_QUERIES, HARD_QUERIES

REPO = Path(__file__).resolve().parents[2]


def test_services_over_one_source_share_one_router(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = router_folder_path("default")
    services = [RoutingService("default") for _ in range(5)]
    services += [RoutingService(bundled), RoutingService(str(bundled))]
    routers = {id(service.router) for service in services}
    assert len(routers) == 1
    assert services[0].router is registry.shared_router("default")
    monkeypatch.chdir(bundled.parent)
    assert RoutingService(Path(bundled.name)).router is services[0].router


def test_a_source_is_loaded_once_by_racing_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = registry.shared_router("default").save(tmp_path / "copy")
    loads: list[str] = []
    real_load = Router.load.__func__  # type: ignore[attr-defined]

    def counting_load(cls: type[Router], spec: str | Path, **kw: object) -> Router:
        loads.append(str(spec))
        return real_load(cls, spec, **kw)  # type: ignore[no-any-return]

    monkeypatch.setattr(Router, "load", classmethod(counting_load))
    barrier = threading.Barrier(8)
    found: list[Router] = []

    def load() -> None:
        barrier.wait()
        found.append(RoutingService(folder).router)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and len({id(router) for router in found}) == 1
    assert loads == [str(folder.resolve())]


def test_a_misspelt_folder_fails_when_the_service_is_made(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"'.*no-such-router': no such folder"):
        RoutingService(tmp_path / "no-such-router")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match=r"is not a router folder \(it has no config.json\)"):
        RoutingService(tmp_path / "empty")


async def test_a_router_that_cannot_load_raises_instead_of_routing_large(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"name": "half-written"}))
    service = RoutingService(folder)
    with pytest.raises(ArtifactError, match=r"router '.*broken' could not be loaded"):
        service.decide("What is 2 + 2?")
    with pytest.raises(ArtifactError, match=r"could not be loaded"):
        await service.adecide("What is 2 + 2?")
    assert service.stats.router_errors == 0


async def test_a_router_that_fails_to_score_still_falls_back() -> None:
    router = Router.load("default")  # a router of this test's own, not the shared one

    def broken(texts: object) -> None:
        raise RuntimeError("encoder exploded")

    router.score = broken  # type: ignore[assignment,method-assign]
    service = RoutingService(router)
    for routed in (service.decide("What is 2 + 2?"), await service.adecide("What is 2 + 2?")):
        assert routed.router_failed and routed.model == "large"
        assert routed.decision.reason == "router failed: RuntimeError: encoder exploded"


async def test_adecide_equals_decide_and_leaves_the_default_executor_alone() -> None:
    service = RoutingService("default")
    texts = [*EASY_QUERIES[:6], *HARD_QUERIES[:3], "   "]
    expected = [service.decide(text).decision for text in texts]

    class NoDefaultExecutor(Exception):
        pass

    def refuse(*args: object, **kwargs: object) -> None:
        raise NoDefaultExecutor("routing used the loop's default executor")

    loop = asyncio.get_running_loop()
    loop.run_in_executor = refuse  # type: ignore[assignment,method-assign]
    try:
        routed = await asyncio.gather(*(service.adecide(text) for text in texts))
    finally:
        del loop.run_in_executor  # type: ignore[attr-defined]
    assert [r.decision for r in routed] == expected
    assert all(not r.router_failed for r in routed)


def test_records_split_router_time_into_queue_and_compute() -> None:
    service = RoutingService("default")
    routed = service.decide(EASY_QUERIES[0])
    record = service.record(routed, answered_by=routed.model, model_name="m").as_dict()
    assert {"router_queue_ms", "router_compute_ms", "cached"} <= set(record)
    assert record["cached"] is False and record["router_compute_ms"] > 0
    assert record["router_queue_ms"] + record["router_compute_ms"] <= record["router_ms"] + 1e-3
    forced = service.decide("x", force_large="tools")
    assert (forced.queue_ms, forced.compute_ms) == (0.0, 0.0)


def test_replace_shares_the_router_and_starts_fresh() -> None:
    prices = {"small": ModelPrices(1.0, 2.0), "large": ModelPrices(10.0, 20.0)}
    service = RoutingService("default", knobs=QualityKnobs(threshold=0.5), sticky=True)
    routed = service.decide(EASY_QUERIES[0], conversation_key="c1")
    service.record(routed, answered_by="large", model_name="big")
    copy_ = service.replace(knobs=QualityKnobs(large_share=0.3), prices=prices)
    assert copy_.router is service.router and copy_._batcher is service._batcher
    assert copy_.knobs == QualityKnobs(large_share=0.3) and copy_.prices == prices
    assert copy_.sticky and copy_.stats.calls == 0 and service.stats.calls == 1
    assert copy_.decide(EASY_QUERIES[0], conversation_key="c1").decision.knob == "large_share"
    deep = copy.deepcopy(service)
    assert deep.router is service.router and deep.knobs == service.knobs
    assert deep.stats.calls == 0
    with pytest.raises(ConfigurationError, match="got colour"):
        service.replace(colour="blue")


def test_a_service_pickles_as_its_source_and_settings(tmp_path: Path) -> None:
    folder = registry.shared_router("default").save(tmp_path / "saved")
    for source in ("default", folder):
        service = RoutingService(source, knobs=QualityKnobs(threshold=0.4), sticky=True)
        service.decide(EASY_QUERIES[0])
        data = pickle.dumps(service)
        assert b"_lock" not in data and b"_counts" not in data
        restored = pickle.loads(data)
        assert restored.router is service.router
        assert (restored.knobs, restored.sticky) == (service.knobs, service.sticky)
        assert restored.stats.calls == 0


def test_a_loaded_router_pickles_as_its_folder_and_an_in_memory_one_refuses() -> None:
    loaded = Router.load("default")
    restored = pickle.loads(pickle.dumps(loaded))
    assert restored is registry.shared_router("default")
    service = pickle.loads(pickle.dumps(RoutingService(loaded)))
    assert service.router is registry.shared_router("default")
    changed = Router.load("default")
    changed.default_knobs = QualityKnobs(threshold=0.3)
    for unsaved in (changed, Router()):
        with pytest.raises(UsageError, match=r"router.save\(folder\)"):
            pickle.dumps(unsaved)
    deep = copy.deepcopy(changed)
    assert deep is not changed and deep.encoder_ is changed.encoder_
    assert deep.default_knobs == QualityKnobs(threshold=0.3)


def test_a_pickled_service_decides_in_another_process() -> None:
    service = RoutingService("default", knobs=QualityKnobs(threshold=0.5))
    expected = service.decide(EASY_QUERIES[0]).decision
    script = (
        "import pickle, sys\n"
        "service = pickle.loads(sys.stdin.buffer.read())\n"
        f"print(service.decide({EASY_QUERIES[0]!r}).decision.score)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=pickle.dumps(service),
        capture_output=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert float(result.stdout.decode().strip()) == pytest.approx(expected.score, abs=1e-12)
