"""What a user sets to turn the live loop on in an adapter: :class:`LiveSettings`.

Both adapters take the same value (``ChatHybrid(..., live=LiveSettings(...))``,
``HybridLLM(..., live=LiveSettings(...))``); the loop it starts is
:class:`~shared_router.live.serving_loop.LiveLoop`, one per settings object and its copies in
a process (:attr:`LiveSettings.loop_key`), so copies of a model (``bind``, ``model_copy``,
``copy.deepcopy``, and models unpickled in one worker process) share one store, one shadow
queue and one live calibration.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared_router._internal.validation import check_positive_int, check_positive_seconds
from shared_router.errors import ConfigurationError

if TYPE_CHECKING:  # imported by the adapters: kept light (no router, encoder or store)
    from shared_router.live.costs import LiveCosts
    from shared_router.live.judges import ShadowJudge
    from shared_router.live.serving_loop import LiveLoop
    from shared_router.live.store import ShadowStore

__all__ = [
    "MIN_RETRAIN_HOLDOUT",
    "MIN_RETRAIN_ROWS",
    "MIN_RETRAIN_SIDE",
    "REFERENCE_KEYWORD",
    "LiveSettings",
    "checked_live_settings",
    "checked_reference",
]

MIN_RETRAIN_HOLDOUT = 20
"""Rows a retraining holds out to compare the new head with the current one, at the least."""

MIN_RETRAIN_SIDE = 10
"""Held-out rows and fitting rows a retraining needs, each."""

MIN_RETRAIN_ROWS = MIN_RETRAIN_HOLDOUT + MIN_RETRAIN_SIDE
"""The fewest rows a retraining runs on (``retrain_min_rows``, ``hybrid-llm retrain
--min-rows``): 20 held out, 10 to fit."""

REFERENCE_KEYWORD = "reference"
"""The keyword argument that gives a call's reference answer to the shadow judge, in both
adapters (``llm.invoke(messages, reference=...)``, ``llm.chat(messages, reference=...)``);
it is taken out of the call, never passed to a model."""


@dataclass(frozen=True)
class LiveSettings:
    """Shadow evaluation, live calibration and retraining for a model's traffic.

    Attributes:
        store: Where the judged rows go: a SQLite file path, ``sqlite:///path``,
            ``postgresql://...``, or an open :class:`~shared_router.live.store.ShadowStore`.
            A SQLite file is kept as its absolute path, so that a model unpickled in another
            working folder writes to the same file.
        judge: Scores both answers of a shadowed call (:mod:`shared_router.live.judges`:
            ``PointwiseJudge``, ``PairwiseJudge``, ``CallableJudge``).
        shadow_rate: Probability that an answered call is shadowed, in [0, 1].
        seed: Seed of the shadow draws (None: unseeded).
        costs: What the calls and a judgement cost, for ``stats.live.shadow_cost`` and
            ``stats.live.cost_saved_net``: per call in any unit (``ShadowCosts``) or per
            token (``TokenCosts``). None: the adapter's ``prices=`` per token when it has
            them (so the live costs are in the currency of ``stats.cost_saved``), else
            ``ShadowCosts()`` (a small call 0.1 of a large one).
        queue_size: Most shadow calls waiting at once; beyond it they are dropped, counted.
        workers: Background threads running shadow calls and judgements.
        shadow_timeout: Seconds a shadow call or a judgement may take before it is abandoned
            and counted as an error.
        keep: ``"text"`` keeps the routed text in each row; ``"embedding"`` only its embedding.
        keep_answers: Keep both answers in each row.
        min_live_rows: Live rows from which the live calibration alone decides; below it
            the more cautious of the router's own and the live threshold decides.
        recalibrate_every: New rows between two rebuilds of the live calibration (each is
            a bootstrap over all the rows, on the loop's thread).
        retrain: Refit the router's head on the live rows when enough have come in, and
            swap it in only when it recovers more of the quality gap on held-out rows
            (:class:`~shared_router.live.retraining.Retrainer`; SQLite stores keep the versions
            beside the file, PostgreSQL ones in ``versions_dir``).
        retrain_min_rows: Rows before the first retraining.
        retrain_every: New rows between two retrainings.
        versions_dir: Where router versions are kept (None: beside a SQLite file).
        refresh_interval_s: Seconds between two refreshes (new rows read, a new version
            picked up, retraining when due, the calibration rebuilt), on the loop's own
            thread: the callers' path never waits for one.
        router_version: The starting router's name in the rows and ``stats`` (None: its
            own name, as the routing records give it, e.g. ``"hybrid-llm-default-v0"``).
        worker: This process's name in the store (None: ``host:pid``).

    Raises:
        ConfigurationError: For a judge that is not callable, a rate outside [0, 1], costs
            of another type, sizes, intervals and timeouts that are not positive, a ``keep``
            other than ``"text"`` and ``"embedding"``, or a store that is neither a path, a
            URL of a known scheme nor a store. (The store is opened when the model is
            built.)
    """

    store: str | Path | ShadowStore
    judge: ShadowJudge
    shadow_rate: float = 0.05
    seed: int | None = None
    costs: LiveCosts | None = None
    queue_size: int = 64
    workers: int = 2
    shadow_timeout: float = 120.0
    keep: str = "text"
    keep_answers: bool = False
    min_live_rows: int = 300
    recalibrate_every: int = 50
    retrain: bool = True
    retrain_min_rows: int = 200
    retrain_every: int = 200
    versions_dir: str | Path | None = None
    refresh_interval_s: float = 5.0
    router_version: str | None = None
    worker: str | None = None

    def __post_init__(self) -> None:
        # Not a field: kept by copies and pickles (a worker's unpickled models share one
        # loop), new for every LiveSettings made, dataclasses.replace included.
        object.__setattr__(self, "_loop_key", uuid.uuid4().hex)
        if not callable(self.judge):
            raise ConfigurationError(
                f"LiveSettings.judge must be callable (a PointwiseJudge, PairwiseJudge or "
                f"CallableJudge), got {type(self.judge).__name__}"
            )
        from shared_router.live.costs import ShadowCosts, TokenCosts

        if self.costs is not None and not isinstance(self.costs, (ShadowCosts, TokenCosts)):
            raise ConfigurationError(
                "LiveSettings.costs must be None, a ShadowCosts(small=..., large=..., "
                f"judge=...) or a TokenCosts(small=ModelPrices, ...), got "
                f"{type(self.costs).__name__}. To price the live traffic per token at the "
                "model's prices=, leave costs unset (or give TokenCosts.from_prices(prices))"
            )
        from shared_router.live.shadow import check_shadow_settings

        check_shadow_settings(
            shadow_rate=self.shadow_rate,
            queue_size=self.queue_size,
            workers=self.workers,
            shadow_timeout=self.shadow_timeout,
            keep=self.keep,
            owner="LiveSettings",
        )
        for name in (
            "min_live_rows",
            "recalibrate_every",
            "retrain_min_rows",
            "retrain_every",
        ):
            check_positive_int(f"LiveSettings.{name}", getattr(self, name))
        if self.retrain_min_rows < MIN_RETRAIN_ROWS:
            raise ConfigurationError(
                f"LiveSettings.retrain_min_rows must be >= {MIN_RETRAIN_ROWS} (a retraining "
                f"holds out {MIN_RETRAIN_HOLDOUT} rows at the least and fits on "
                f"{MIN_RETRAIN_SIDE}), got {self.retrain_min_rows!r}"
            )
        check_positive_seconds("LiveSettings.refresh_interval_s", self.refresh_interval_s)
        from shared_router.live.store import ShadowStore, check_store_url

        if isinstance(self.store, (str, os.PathLike)):  # a URL of an unknown scheme fails here
            kind, target = check_store_url(self.store)
            if kind == "sqlite":  # the same file from any working folder (a pickled model)
                object.__setattr__(self, "store", str(Path(target).expanduser().absolute()))
        elif not isinstance(self.store, ShadowStore):
            raise ConfigurationError(
                "LiveSettings.store must be a SQLite file path, a sqlite:/// or postgresql:// "
                f"URL, or an open store (open_store(url)), got {type(self.store).__name__}: "
                f"{self.store!r:.80}"
            )
        if self.retrain and self.versions_dir is None and not self._versions_beside_store():
            raise ConfigurationError(
                f"LiveSettings(retrain=True) keeps router versions in a folder, and store "
                f"{str(self.store)!r:.80} has none beside it (only a SQLite file does); pass "
                "versions_dir= (a folder every worker can read), or retrain=False"
            )

    def _versions_beside_store(self) -> bool:
        """Whether the store has a folder for router versions of its own (a SQLite file)."""
        from shared_router.live.store import ShadowStore, check_store_url

        if isinstance(self.store, ShadowStore):
            return self.store.versions_dir is not None
        return check_store_url(self.store)[0] == "sqlite"

    @property
    def loop_key(self) -> str:
        """What names these settings' live loop in a process.

        Copies and pickled copies keep it, so every model unpickled in a worker process
        shares one loop there; a ``LiveSettings`` made anew (``dataclasses.replace`` too)
        has its own.
        """
        return str(self.__dict__["_loop_key"])

    def loop(self) -> LiveLoop:
        """The one live loop of these settings in this process (started on first use).

        Raises:
            ConfigurationError: For a store URL of an unknown scheme.
            RoutingError: When the store cannot be opened.
        """
        from shared_router.live.serving_loop import live_loop

        return live_loop(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> LiveSettings:
        """The same object: copies of a model share its live loop (store, queue, calibration)."""
        return self


def checked_live_settings(value: Any) -> LiveSettings | None:
    """An adapter's ``live`` argument: None or a :class:`LiveSettings`.

    Raises:
        ConfigurationError: For anything else (it names what was given).
    """
    if value is None or isinstance(value, LiveSettings):
        return value
    raise ConfigurationError(
        f"live must be None or a LiveSettings(store=..., judge=..., shadow_rate=...), got "
        f"{type(value).__name__}; from shared_router.live.settings import LiveSettings"
    )


def checked_reference(value: Any) -> str | None:
    """A call's ``reference`` argument: None or a string (the reference answer).

    Raises:
        ConfigurationError: For anything else (it names what was given).
    """
    if value is None or isinstance(value, str):
        return value
    raise ConfigurationError(
        f"{REFERENCE_KEYWORD} must be the reference answer as a string (or None), got "
        f"{type(value).__name__}: {value!r:.80}"
    )
