"""Run pipeline work on Ray: the scale-out engine of ``collect`` and ``judge``.

The driver (this process) keeps the journal: it cuts the pending work into batches, hands
them to a pool of Ray actors and writes each batch's records to the journal as soon as the
batch comes back. Each actor builds its worker once (model clients, a metric's model) from a
picklable factory, so the output is the same as the local engine's; a killed driver loses at
most the batches in flight.

Needs ``pip install 'hybrid-llm[ray]'``. With no address and no running Ray, a local Ray
instance is started for the run (Ray's defaults, no dashboard) and stopped after it; its
workers see this process's import path, so ``module:callable`` SPECs resolve there too. To
run on a cluster, pass its address or call ``ray.init(...)`` yourself first.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from shared_router._internal.extras import require_extra
from shared_router.errors import ConfigurationError

__all__ = ["run_on_ray"]

Job = TypeVar("Job")
Records = list[dict[str, Any]]
BATCHES_IN_FLIGHT_PER_WORKER = 2


class _BatchWorker(Generic[Job]):
    """The Ray actor: builds its worker once, then runs batches on it."""

    def __init__(self, make_worker: Callable[[], Callable[[Sequence[Job]], Records]]) -> None:
        self._work = make_worker()

    def run(self, batch: Sequence[Job]) -> Records:
        return self._work(batch)


def run_on_ray(
    make_worker: Callable[[], Callable[[Sequence[Job]], Records]],
    batches: Sequence[Sequence[Job]],
    on_records: Callable[[Records], None],
    *,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
) -> None:
    """Run batches on a pool of Ray actors, handing each batch's records back as it ends.

    Args:
        make_worker: A picklable factory, called once in every actor, returning the function
            that turns a batch into journal records.
        batches: The work.
        on_records: Called in this process with each finished batch's records.
        address: A Ray cluster address (``"auto"``, ``"ray://host:10001"``); None reuses a
            running Ray or starts a local one.
        workers: Actors to start; None starts one per CPU Ray offers (at most one per batch).
        cpus_per_worker: CPUs Ray reserves for each actor.

    Raises:
        ConfigurationError: If ``workers`` is not positive.
        MissingDependencyError: If Ray is not installed.
    """
    if workers is not None and workers < 1:
        raise ConfigurationError(f"workers must be >= 1, got {workers}")
    if not batches:
        return
    ray = require_extra("ray", extra="ray", purpose="engine 'ray'")
    started_here = not ray.is_initialized()
    if started_here:
        _start_ray(ray, address)
    actors: list[Any] = []
    try:
        cpus = ray.available_resources().get("CPU", 1)
        count = workers or max(1, int(cpus // cpus_per_worker))
        actor_class = ray.remote(num_cpus=cpus_per_worker)(_BatchWorker)
        actors = [actor_class.remote(make_worker) for _ in range(min(count, len(batches)))]
        queue: Iterator[Sequence[Job]] = iter(batches)
        pending: dict[Any, Any] = {}

        def submit(actor: Any) -> None:
            batch = next(queue, None)
            if batch is not None:
                pending[actor.run.remote(batch)] = actor

        for actor in actors:
            for _ in range(BATCHES_IN_FLIGHT_PER_WORKER):
                submit(actor)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(ready[0])
            on_records(ray.get(ready[0]))
            submit(actor)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started_here:
            ray.shutdown()


def _start_ray(ray: Any, address: str | None) -> None:
    if address is not None:
        ray.init(address=address, logging_level=logging.WARNING)
        return
    paths = [os.path.abspath(p or os.curdir) for p in sys.path]
    ray.init(
        include_dashboard=False,
        logging_level=logging.WARNING,
        runtime_env={
            "env_vars": {"PYTHONPATH": os.pathsep.join(p for p in paths if os.path.isdir(p))}
        },
    )
