"""Faults at the public entry points: the types callers pass in.

``score({"query": ...})`` scored the dict's keys; a generator must be consumed once and
completely (the encoder itself returned 0 rows for one); a non-iterable was a raw
``TypeError``; numpy scalar knobs were refused as "not a number".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from shared_router.errors import KnobError, RoutingError, TrainingError
from shared_router.routing.router import Router
from shared_router.types import QualityKnobs

TEXTS = ["What is 2 + 2?", "Prove the Riemann hypothesis.", "Name a colour."]


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.load("default")


def _generator() -> Iterator[str]:
    yield from TEXTS


# --- texts: mappings, generators, non-iterables ------------------------------------------


@pytest.mark.parametrize("mapping", [{"query": TEXTS[0]}, {t: 1 for t in TEXTS}])
def test_score_refuses_a_mapping(router: Router, mapping: dict[str, Any]) -> None:
    with pytest.raises(RoutingError, match="mapping"):
        router.score(mapping)


def test_route_batch_refuses_a_mapping(router: Router) -> None:
    with pytest.raises(RoutingError, match="mapping"):
        router.route_batch({"query": TEXTS[0]}, threshold=0.5)


@pytest.mark.parametrize("value", [5, None, 0.5, object()])
def test_score_and_route_batch_refuse_a_non_iterable(router: Router, value: Any) -> None:
    with pytest.raises(RoutingError, match="must be a sequence of str"):
        router.score(value)
    with pytest.raises(RoutingError, match="must be a sequence of str"):
        router.route_batch(value, threshold=0.5)


def test_bytes_are_refused_with_a_hint(router: Router) -> None:
    with pytest.raises(RoutingError, match="decode"):
        router.score(b"What is 2 + 2?")


def test_a_generator_is_consumed_once_and_completely(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = router.score(TEXTS)
    np.testing.assert_allclose(router.score(_generator()), expected)
    np.testing.assert_allclose(router.score(iter(TEXTS)), expected)
    np.testing.assert_allclose(router.score(t for t in TEXTS), expected)
    decisions = router.route_batch(_generator(), threshold=0.5)
    assert [d.score for d in decisions] == pytest.approx(expected.tolist())
    # The encoder is handed a list it can size, never the generator itself.
    seen: list[object] = []
    encode = router.encoder_.encode
    monkeypatch.setattr(
        router.encoder_, "encode", lambda texts: seen.append(texts) or encode(texts)
    )
    router.score(_generator())
    assert len(seen) == 1 and isinstance(seen[0], list) and len(seen[0]) == len(TEXTS)


def test_other_sequences_still_score(router: Router) -> None:
    expected = router.score(TEXTS)
    np.testing.assert_allclose(router.score(tuple(TEXTS)), expected)
    np.testing.assert_allclose(router.score(np.array(TEXTS)), expected)
    assert router.score(iter([])).shape == (0,)


def test_fit_and_calibrate_refuse_a_mapping(router: Router) -> None:
    with pytest.raises(TrainingError, match="mapping"):
        Router(head_type="logistic", progress=False).fit({t: 1.0 for t in TEXTS}, [1.0, 0.0, 1.0])
    with pytest.raises(TrainingError, match="mapping"):
        router.calibrate({t: 1.0 for t in TEXTS}, [1.0, 0.0, 1.0], [1.0, 1.0, 1.0])


# --- knobs: numpy scalars ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.float64(0.05), 0.05),
        (np.float32(0.05), 0.05),
        (np.float16(0.25), 0.25),
        (np.int64(0), 0.0),
        (Fraction(1, 4), 0.25),
    ],
)
@pytest.mark.parametrize("knob", ["max_quality_drop", "large_share", "threshold"])
def test_a_numpy_scalar_is_a_knob(knob: str, value: Any, expected: float) -> None:
    knobs = QualityKnobs(**{knob: value})
    stored = getattr(knobs, knob)
    assert type(stored) is float and stored == expected
    assert knobs.set_knobs() == {knob: expected}
    json.dumps(knobs.as_dict())  # JSON-ready, as before


def test_plain_numbers_are_kept_as_they_are() -> None:
    assert type(QualityKnobs(threshold=1).threshold) is int
    assert QualityKnobs(large_share=0.3).large_share == 0.3


@pytest.mark.parametrize(
    "value", [np.bool_(True), True, np.float32("nan"), np.float64("inf"), np.array([0.1]), "0.1"]
)
def test_what_is_not_a_finite_real_number_is_still_refused(value: Any) -> None:
    with pytest.raises(KnobError):
        QualityKnobs(threshold=value)


def test_routing_with_numpy_knobs_matches_plain_floats(router: Router) -> None:
    for knob, value in (("max_quality_drop", 0.05), ("large_share", 0.5), ("threshold", 0.8)):
        plain = router.route_batch(TEXTS, **{knob: value})
        for scalar in (np.float64(value), np.float32(value)):
            assert router.route_batch(TEXTS, **{knob: scalar}) == plain
            assert router.route(TEXTS[0], **{knob: scalar}) == plain[0]
