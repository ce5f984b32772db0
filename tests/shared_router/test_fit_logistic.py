"""fit_logistic: exact L2-regularised logistic regression on soft labels (numpy, no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from shared_router.errors import TrainingError
from shared_router.training.logistic import fit_logistic
from tests.shared_router.training_data import bce, separable, sigmoid


def _gradient(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float, l2: float) -> np.ndarray:
    """Gradient of mean BCE + l2/2 |w|^2 (bias unpenalised) at (w, b)."""
    p = sigmoid(X @ w + b)
    return np.append(X.T @ (p - y) / len(y) + l2 * w, np.mean(p - y))


def test_fit_logistic_recovers_soft_labels_exactly() -> None:
    # Soft labels y = sigmoid(2x - 0.5) are fitted exactly by w = 2, b = -0.5 when the
    # penalty is negligible (the BCE minimiser predicts the labels themselves).
    x = np.linspace(-3.0, 3.0, 301)
    y = sigmoid(2.0 * x - 0.5)
    fit = fit_logistic(x[:, None], y, l2=1e-9)
    state = fit.head.state_dict()
    assert fit.head.hidden_sizes == () and fit.l2 == 1e-9 and fit.val_losses == {}
    assert state["layers.0.weight"][0, 0] == pytest.approx(2.0, abs=1e-4)
    assert state["layers.0.bias"][0] == pytest.approx(-0.5, abs=1e-4)


def test_fit_logistic_reaches_the_penalised_optimum() -> None:
    # At the optimum the gradient of the penalised objective is zero (checked in float64).
    X, y = separable(n=120, seed=3)
    y = np.where(np.arange(len(y)) % 7 == 0, 1.0 - y, y)  # some noise
    fit = fit_logistic(X, y, l2=0.05)
    state = fit.head.state_dict()
    w, b = state["layers.0.weight"][0].astype(np.float64), float(state["layers.0.bias"][0])
    np.testing.assert_allclose(_gradient(X.astype(np.float64), y, w, b, 0.05), 0.0, atol=1e-6)
    stronger = fit_logistic(X, y, l2=5.0).head.state_dict()["layers.0.weight"]
    assert np.linalg.norm(stronger) < np.linalg.norm(w)


def test_fit_logistic_chooses_l2_on_validation_loss() -> None:
    X, y = separable(n=200, seed=4)
    X_val, y_val = separable(n=200, seed=5)
    grid = (10.0, 1e-3)
    fit = fit_logistic(X, y, X_val=X_val, y_val=y_val, l2=grid)
    assert set(fit.val_losses) == set(grid)
    for l2, loss in fit.val_losses.items():
        single = fit_logistic(X, y, l2=l2).head.predict_proba(X_val)
        assert loss == pytest.approx(bce(single, y_val), rel=1e-4)
    # A separable rule: the weak penalty generalises better than the strong one.
    assert fit.l2 == 1e-3 and fit.val_losses[1e-3] < fit.val_losses[10.0]
    # Validation labels that invert the rule favour the strong penalty (predictions near 0.5).
    flipped = fit_logistic(X, y, X_val=X_val, y_val=1.0 - y_val, l2=grid)
    assert flipped.l2 == 10.0


def test_fit_logistic_rejects_bad_arguments() -> None:
    X, y = separable(n=40)
    with pytest.raises(TrainingError, match="needs validation data"):
        fit_logistic(X, y, l2=(0.1, 1.0))
    with pytest.raises(TrainingError, match="positive finite"):
        fit_logistic(X, y, l2=0.0)
    with pytest.raises(TrainingError, match="positive finite"):
        fit_logistic(X, y, l2=())
    with pytest.raises(TrainingError, match="together"):
        fit_logistic(X, y, X_val=X, l2=0.1)
    with pytest.raises(TrainingError, match="columns"):
        fit_logistic(X, y, X_val=X[:, :2], y_val=y, l2=0.1)
    with pytest.raises(TrainingError, match="labels equal"):
        fit_logistic(X, np.ones(len(y)), l2=0.1)
    with pytest.raises(TrainingError, match="max_iter"):
        fit_logistic(X, y, l2=0.1, max_iter=0)
