"""MLPHead: numpy inference against hand-computed values, state dicts, validation."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from shared_router.errors import ArtifactError, RoutingError
from shared_router.model.head import MLPHead


def _logistic() -> MLPHead:
    weights = {
        "layers.0.weight": np.array([[1.0, -2.0]], dtype=np.float32),
        "layers.0.bias": np.array([0.5], dtype=np.float32),
    }
    return MLPHead(2, (), weights=weights)


def _two_layer() -> MLPHead:
    weights = {
        "layers.0.weight": np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
        "layers.0.bias": np.array([0.0, -1.0], dtype=np.float32),
        "layers.1.weight": np.array([[2.0, 3.0]], dtype=np.float32),
        "layers.1.bias": np.array([-1.0], dtype=np.float32),
    }
    return MLPHead(2, (2,), weights=weights)


def test_logistic_regression_matches_hand_computed_sigmoid() -> None:
    head = _logistic()
    # z = x1 - 2 x2 + 0.5: (1, 1) -> -0.5 and (0, 0) -> 0.5.
    p = head.predict_proba(np.array([[1.0, 1.0], [0.0, 0.0]]))
    np.testing.assert_allclose(p, [0.3775406687981454, 0.6224593312018546], rtol=1e-12)
    np.testing.assert_allclose(head.logits(np.array([[1.0, 1.0]])), [-0.5])
    assert p.dtype == np.float64
    assert head.hidden_sizes == () and head.n_layers == 1


def test_hidden_layer_applies_relu() -> None:
    head = _two_layer()
    # (1, 2): hidden relu(1, 1) = (1, 1) -> z = 2 + 3 - 1 = 4.
    # (-1, 0.5): hidden relu(-1, -0.5) = (0, 0) -> z = -1.
    p = head.predict_proba(np.array([[1.0, 2.0], [-1.0, 0.5]]))
    np.testing.assert_allclose(p, [0.9820137900379085, 0.2689414213699951], rtol=1e-12)


def test_sigmoid_is_stable_for_huge_logits() -> None:
    weights = {
        "layers.0.weight": np.array([[1.0]], dtype=np.float32),
        "layers.0.bias": np.array([0.0], dtype=np.float32),
    }
    head = MLPHead(1, (), weights=weights)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = head.predict_proba(np.array([[1000.0], [-1000.0]]))
    np.testing.assert_array_equal(p, [1.0, 0.0])


def test_state_dict_round_trip_through_safetensors(tmp_path: Path) -> None:
    head = MLPHead(8, (5, 3), seed=4)
    state = head.state_dict()
    assert sorted(state) == [f"layers.{i}.{k}" for i in range(3) for k in ("bias", "weight")]
    assert state["layers.0.weight"].shape == (5, 8)
    assert state["layers.2.weight"].shape == (1, 3)
    assert all(v.dtype == np.float32 for v in state.values())
    save_file(state, str(tmp_path / "head.safetensors"))
    again = MLPHead.from_state_dict(load_file(str(tmp_path / "head.safetensors")))
    assert again.input_dim == 8 and again.hidden_sizes == (5, 3)
    X = np.random.default_rng(0).normal(size=(6, 8))
    np.testing.assert_array_equal(again.predict_proba(X), head.predict_proba(X))


def test_state_dict_is_a_copy() -> None:
    head = _logistic()
    head.state_dict()["layers.0.weight"][:] = 100.0
    np.testing.assert_allclose(head.logits(np.array([[1.0, 1.0]])), [-0.5])


def test_initialisation_is_seeded_like_torch_linear() -> None:
    a, b, c = MLPHead(10, (4,), seed=1), MLPHead(10, (4,), seed=1), MLPHead(10, (4,), seed=2)
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[key])
    assert not np.array_equal(a.state_dict()["layers.0.weight"], c.state_dict()["layers.0.weight"])
    # nn.Linear's bound is 1 / sqrt(fan_in).
    assert np.abs(a.state_dict()["layers.0.weight"]).max() <= 1 / np.sqrt(10)
    assert np.abs(a.state_dict()["layers.1.weight"]).max() <= 1 / np.sqrt(4)


def test_wrong_embedding_width_raises_routing_error() -> None:
    with pytest.raises(RoutingError, match=r"shape \(n, 2\), got \(3, 5\)"):
        _logistic().predict_proba(np.zeros((3, 5)))
    with pytest.raises(RoutingError):
        _logistic().predict_proba(np.zeros(2))


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"layers.0.weight": np.zeros((1, 2), np.float32)}, "missing"),
        (
            {"layers.0.weight": np.zeros((2, 2), np.float32), "layers.0.bias": np.zeros(2)},
            "expected",
        ),
        (
            {
                "layers.0.weight": np.full((1, 2), np.nan, np.float32),
                "layers.0.bias": np.zeros(1, np.float32),
            },
            "NaN",
        ),
        (
            {
                "layers.0.weight": np.zeros((1, 2), np.float32),
                "layers.0.bias": np.zeros(1, np.float32),
                "extra": np.zeros(1, np.float32),
            },
            "unexpected",
        ),
    ],
)
def test_bad_weights_raise_artifact_error(weights: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        MLPHead(2, (), weights=weights)


def test_from_state_dict_rejects_a_dict_without_layers() -> None:
    with pytest.raises(ArtifactError, match="layers"):
        MLPHead.from_state_dict({"weight": np.zeros((1, 2), np.float32)})
    with pytest.raises(ArtifactError, match="missing"):
        MLPHead.from_state_dict(
            {
                "layers.0.weight": np.zeros((3, 2), np.float32),
                "layers.0.bias": np.zeros(3, np.float32),
                "layers.2.weight": np.zeros((1, 3), np.float32),
                "layers.2.bias": np.zeros(1, np.float32),
            }
        )


@pytest.mark.parametrize(("input_dim", "hidden"), [(0, ()), (4, (0,)), (4, (8, -1))])
def test_non_positive_sizes_are_rejected(input_dim: int, hidden: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="positive"):
        MLPHead(input_dim, hidden)
