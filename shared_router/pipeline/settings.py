"""The settings the pipeline stages pass down unchanged: how they run, which fields they read.

As httpx takes its ``Timeout`` and ``Limits`` objects, ``collect``, ``judge_file`` and
``build`` each take these small frozen objects instead of a dozen loose keyword arguments,
and hand them on to the engine and the stages below:

- :class:`EngineSettings`: local asyncio or Ray (with its address and workers), the model
  requests in flight and how hard to try each one, progress bars;
- :class:`InputFields`: which fields of a query file hold the prompt, the reference answer
  and the id.

Build one once and reuse it::

    engine = EngineSettings(kind="ray", concurrency=16, retry=RetryPolicy(timeout=60))
    collect("queries.jsonl", "data.jsonl", models, engine=engine)
    judge_file("data.jsonl", "rouge", engine=engine)
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Literal

from shared_router.errors import ConfigurationError
from shared_router.pipeline.sources import RetryPolicy

__all__ = ["DEFAULT_ENGINE", "DEFAULT_FIELDS", "ENGINES", "Engine", "EngineSettings", "InputFields"]

Engine = Literal["local", "ray"]
ENGINES: tuple[Engine, ...] = ("local", "ray")


@dataclass(frozen=True)
class EngineSettings:
    """How a pipeline stage runs its work.

    Attributes:
        kind: ``"local"`` (asyncio in this process) or ``"ray"`` (a pool of Ray actors;
            needs ``pip install 'hybrid-llm[ray]'``). Both give the same output.
        concurrency: Model requests in flight at once in ``collect`` (per Ray worker with
            ``kind="ray"``, where it is also the number of requests per Ray task).
        retry: Tries, backoff and timeout per model request in ``collect``.
        progress: Show progress bars with an ETA on stderr.
        ray_address: The Ray cluster address (``"auto"``, ``"ray://host:10001"``); None
            reuses a running Ray or starts a local one.
        ray_workers: Ray actors to start; None starts one per CPU Ray offers.

    Raises:
        ConfigurationError: If ``kind`` is not in :data:`ENGINES`, ``concurrency`` is not
            a whole number >= 1 or ``ray_workers`` is neither None nor one.
    """

    kind: Engine = "local"
    concurrency: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    progress: bool = True
    ray_address: str | None = None
    ray_workers: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise ConfigurationError(f"engine must be 'local' or 'ray', got {self.kind!r}")
        if not _whole(self.concurrency):
            raise ConfigurationError(
                f"concurrency must be a whole number, got {self.concurrency!r}"
            )
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.ray_workers is not None and not (
            _whole(self.ray_workers) and self.ray_workers >= 1
        ):
            raise ConfigurationError(
                f"ray_workers must be a whole number >= 1 or None, got {self.ray_workers!r}"
            )


def _whole(value: object) -> bool:
    """Whether ``value`` is an integer (a numpy one too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class InputFields:
    """Which fields of a query row hold the prompt, the reference answer and the id.

    Attributes:
        query: The field holding the prompt.
        reference: The field holding the reference answer, where a row has one.
        id: The field holding the id; rows without one get a hash of the query.
    """

    query: str = "query"
    reference: str = "reference"
    id: str = "id"


DEFAULT_ENGINE = EngineSettings()
"""The local engine with 8 requests in flight, :class:`RetryPolicy`'s defaults, progress on."""

DEFAULT_FIELDS = InputFields()
"""The data contract's own field names: ``query``, ``reference``, ``id``."""
