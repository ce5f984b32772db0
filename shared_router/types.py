"""Frozen values shared by the core and the adapters."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from shared_router.errors import KnobError

__all__ = [
    "KNOB_NAMES",
    "ModelChoice",
    "ModelPair",
    "QualityKnobs",
    "RouteDecision",
    "RoutingRecord",
    "other_model",
]

ModelChoice = Literal["small", "large"]


def other_model(model: ModelChoice) -> ModelChoice:
    """The model of the pair that is not ``model``."""
    return "large" if model == "small" else "small"


KnobName = Literal["max_quality_drop", "large_share", "threshold"]
KNOB_NAMES: tuple[KnobName, ...] = ("max_quality_drop", "large_share", "threshold")
_PLAIN_NUMBERS: frozenset[type[object]] = frozenset({int, float})


@dataclass(frozen=True)
class ModelPair:
    """The (small, large) pair a router was trained for.

    Attributes:
        small: Name of the cheap model.
        large: Name of the expensive model.
    """

    small: str
    large: str


@dataclass(frozen=True)
class QualityKnobs:
    """The test-time quality level: at most one of three knobs.

    A knob is any real number (``int``, ``float``, a numpy scalar such as ``np.float32``);
    one that is not an ``int`` or ``float`` is stored as a ``float``. ``bool`` is refused.

    Attributes:
        max_quality_drop: The most relative quality drop accepted versus always using the large
            model, as a fraction (0.01 is 1%). Turned into a threshold by the router's
            calibration table.
        large_share: The share of queries to send to the large model (0.3 is 30%). Turned into
            a threshold by a score quantile.
        threshold: A raw threshold on p(small is good enough); p >= threshold goes small.
    """

    max_quality_drop: float | None = None
    large_share: float | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        for name in KNOB_NAMES:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise KnobError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
            if type(value) not in _PLAIN_NUMBERS:  # a numpy scalar, a Fraction, ...
                value = _plain_float(value)
                object.__setattr__(self, name, value)
            if not math.isfinite(float(value)):
                raise KnobError(f"{name} must be finite, got {value!r}")
            if name == "max_quality_drop" and not 0.0 <= float(value) <= 1.0:
                raise KnobError(
                    "max_quality_drop is a fraction of the large model's quality, in [0, 1] "
                    f"(for 5% write 0.05), got {value!r}"
                )
            if name in ("large_share", "threshold") and not 0.0 <= float(value) <= 1.0:
                raise KnobError(f"{name} must be in [0, 1], got {value!r}")
        if len(self.set_knobs()) > 1:
            given = ", ".join(f"{k}={v!r}" for k, v in self.set_knobs().items())
            raise KnobError(
                f"give at most one of max_quality_drop, large_share, threshold; got {given}"
            )

    def set_knobs(self) -> dict[str, float]:
        """Return the knobs that are set, by name."""
        return {name: float(v) for name in KNOB_NAMES if (v := getattr(self, name)) is not None}

    @property
    def is_empty(self) -> bool:
        """Whether no knob is set."""
        return not self.set_knobs()

    @property
    def active(self) -> tuple[KnobName, float] | None:
        """The one knob that is set, as ``(name, value)``, or None."""
        for name in KNOB_NAMES:
            value = getattr(self, name)
            if value is not None:
                return name, float(value)
        return None

    def or_else(self, fallback: QualityKnobs) -> QualityKnobs:
        """Return self when a knob is set, else ``fallback`` (a per-call level wins)."""
        return fallback if self.is_empty else self

    def as_dict(self) -> dict[str, float | None]:
        """Return the three knobs as a plain dict."""
        return {name: getattr(self, name) for name in KNOB_NAMES}


def _plain_float(value: numbers.Real) -> float:
    """A real number that is not an ``int`` or ``float`` (a numpy scalar, ...) as a float.

    A float16 / float32 becomes the decimal it prints as (``np.float32(0.05)`` is 0.05, not
    0.05000000074505806), which is the knob its caller wrote.
    """
    narrow = getattr(getattr(value, "dtype", None), "itemsize", 8) < 8
    if narrow and not isinstance(value, numbers.Integral):
        return float(str(value))
    return float(value)


@dataclass(frozen=True)
class RouteDecision:
    """One routing decision.

    Attributes:
        model: ``"small"`` or ``"large"``.
        score: p(small is good enough) from the router, or None when the router did not score
            (empty text, router failure, forced routing).
        threshold: The threshold the score was compared with, or None when not scored.
        knob: Which knob produced the threshold (``"max_quality_drop"``, ``"large_share"``,
            ``"threshold"``, ``"pacer"``) or why none applied (``"none"``).
        knob_value: The value of that knob, or None.
        reason: A short human-readable explanation.
    """

    model: ModelChoice
    score: float | None
    threshold: float | None
    knob: str
    knob_value: float | None = None
    reason: str = ""

    @property
    def is_small(self) -> bool:
        """Whether the small model was chosen."""
        return self.model == "small"

    def as_dict(self) -> dict[str, Any]:
        """Return the decision as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class RoutingRecord:
    """What an adapter attaches to every response: which model answered, and why.

    The LangChain adapter puts ``as_dict()`` in ``response_metadata["routing"]`` and the
    LlamaIndex adapter in ``additional_kwargs["routing"]``.

    Attributes:
        model: ``"small"`` or ``"large"``: the model that produced the answer.
        model_name: The answering model's own name.
        score: The router's score, or None when it did not score.
        threshold: The threshold used, or None.
        knob: Which knob set the threshold (see :class:`RouteDecision`).
        router: The name of the router that decided (with a live loop, the version routing now).
        router_ms: Time spent deciding, in milliseconds: ``router_queue_ms`` plus
            ``router_compute_ms`` plus the time the caller took to run again once its batch
            was scored (an async caller waits for its turn on the event loop: tens of
            milliseconds under hundreds of concurrent calls), loading the router on the
            process's first call, and the service's own work.
        fallback: True when the answer came from the large model after the small model or
            the router failed.
        reason: A short human-readable explanation.
        router_queue_ms: Of ``router_ms``, the time the decision waited for the router's
            thread (behind other decisions) before its batch started.
        router_compute_ms: Of ``router_ms``, the time the router spent scoring the batch this
            decision was part of (the whole batch: what the caller waited for).
        cached: True when the answer came from an LLM cache instead of a model call.
    """

    model: ModelChoice
    model_name: str
    score: float | None
    threshold: float | None
    knob: str
    router: str
    router_ms: float
    fallback: bool = False
    reason: str = ""
    router_queue_ms: float = 0.0
    router_compute_ms: float = 0.0
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict with the documented keys.

        Built field by field (no deep copy): this runs on every routed call.
        """
        out = {name: getattr(self, name) for name in _RECORD_FIELDS}
        out.update(self.extra)
        return out


_RECORD_FIELDS = tuple(f.name for f in fields(RoutingRecord) if f.name != "extra")
