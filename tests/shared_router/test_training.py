"""train_head (BCE on soft labels, seeded, early stopping) and fine_tune_encoder (real MiniLM)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared_router.encoders.encoder import Encoder
from shared_router.errors import TrainingError
from shared_router.model.head import MLPHead
from shared_router.training.fine_tune import fine_tune_encoder
from shared_router.training.torch_head import train_head
from tests.shared_router.training_data import bce, separable, sigmoid

pytestmark = pytest.mark.torch

torch = pytest.importorskip("torch", reason="training needs torch (hybrid-llm[train])")


def test_soft_labels_are_recovered_by_a_logistic_head() -> None:
    # BCE against soft labels is minimised by predicting the labels themselves, so a logistic
    # regression fed y = sigmoid(2x - 0.5) must learn w = 2, b = -0.5.
    x = np.linspace(-3.0, 3.0, 301)
    y = sigmoid(2.0 * x - 0.5)
    head = train_head(
        x[:, None],
        y,
        hidden_sizes=(),
        dropout=0.0,
        lr=0.05,
        weight_decay=0.0,
        epochs=400,
        batch_size=301,
        progress=False,
    )
    state = head.state_dict()
    assert state["layers.0.weight"][0, 0] == pytest.approx(2.0, abs=0.05)
    assert state["layers.0.bias"][0] == pytest.approx(-0.5, abs=0.05)
    np.testing.assert_allclose(head.predict_proba(x[:, None]), y, atol=0.01)


def test_mlp_head_separates_a_planted_rule() -> None:
    X, y = separable()
    head = train_head(X, y, hidden_sizes=(16,), epochs=60, lr=0.01, progress=False)
    assert isinstance(head, MLPHead) and head.hidden_sizes == (16,)
    accuracy = np.mean((head.predict_proba(X) >= 0.5) == (y == 1.0))
    assert accuracy > 0.95


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    X, y = separable(80)
    kwargs = {"hidden_sizes": (8,), "epochs": 5, "batch_size": 16, "progress": False}
    a = train_head(X, y, seed=3, **kwargs).state_dict()
    b = train_head(X, y, seed=3, **kwargs).state_dict()
    c = train_head(X, y, seed=4, **kwargs).state_dict()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["layers.0.weight"], c["layers.0.weight"])


def test_early_stopping_restores_the_best_epoch() -> None:
    # Validation labels are the training labels inverted: the validation loss is lowest after
    # the first epoch and rises after it, so training must stop and hand back epoch 1.
    X, y = separable(120)
    kwargs = {"hidden_sizes": (8,), "batch_size": 32, "seed": 5, "progress": False}
    early = train_head(X, y, X_val=X, y_val=1.0 - y, epochs=200, patience=2, **kwargs)
    first_epoch = train_head(X, y, epochs=1, **kwargs)
    for key, value in early.state_dict().items():
        np.testing.assert_array_equal(value, first_epoch.state_dict()[key])
    longer = train_head(X, y, epochs=20, **kwargs)
    assert bce(early.predict_proba(X), 1.0 - y) < bce(longer.predict_proba(X), 1.0 - y)


def test_training_leaves_torch_global_state_alone() -> None:
    X, y = separable(40)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    before = torch.are_deterministic_algorithms_enabled()
    train_head(X, y, hidden_sizes=(4,), epochs=2, progress=False)
    assert torch.equal(torch.rand(3), expected)
    assert torch.are_deterministic_algorithms_enabled() == before


def test_progress_bar_can_be_turned_off(capsys: pytest.CaptureFixture[str]) -> None:
    X, y = separable(40)
    train_head(X, y, hidden_sizes=(), epochs=2, progress=False)
    assert "training router head" not in capsys.readouterr().err
    train_head(X, y, hidden_sizes=(), epochs=2, progress=True)
    assert "training router head" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.zeros((4, 2)), np.array([0.0, 1.0, 2.0, 0.0]), r"\[0, 1\]"),
        (np.zeros((4, 2)), np.array([0.0, 1.0, np.nan, 0.0]), r"\[0, 1\]"),
        (np.zeros((4, 2)), np.array([0.0, 1.0]), "shape"),
        (np.zeros((1, 2)), np.array([1.0]), "at least 2 rows"),
        (np.full((2, 2), np.inf), np.array([0.0, 1.0]), "infinite"),
        (np.zeros((3, 2)), np.array([0.7, 0.7, 0.7]), "labels equal 0.7"),
    ],
)
def test_bad_inputs_raise_training_error(X: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        train_head(X, y, progress=False)


def test_validation_arguments_are_checked() -> None:
    X, y = separable(20)
    with pytest.raises(TrainingError, match="together"):
        train_head(X, y, X_val=X, progress=False)
    with pytest.raises(TrainingError, match="columns"):
        train_head(X, y, X_val=X[:, :3], y_val=y, progress=False)
    with pytest.raises(TrainingError, match="epochs"):
        train_head(X, y, epochs=0, progress=False)
    with pytest.raises(TrainingError, match="dropout"):
        train_head(X, y, dropout=1.0, progress=False)


FINE_TUNE_TEXTS = [f"What is {a} plus {b}?" for a in (2, 5, 8, 11) for b in (1, 3, 6, 9)] + [
    f"Summarise the {topic} doctrine in {law}."
    for topic in ("estoppel", "negligence", "frustration", "consideration")
    for law in ("English law", "US law", "the GDPR", "maritime law")
]
FINE_TUNE_LABELS = np.array([1.0] * 16 + [0.0] * 16)


@pytest.mark.slow
def test_fine_tune_encoder_trains_and_saves_a_loadable_encoder(tmp_path: Path) -> None:
    base = Encoder("default")
    folder, head = fine_tune_encoder(
        FINE_TUNE_TEXTS,
        FINE_TUNE_LABELS,
        encoder=base,
        output_dir=tmp_path / "tuned",
        val_texts=FINE_TUNE_TEXTS[::4],
        val_y=FINE_TUNE_LABELS[::4],
        hidden_sizes=(8,),
        lr=1e-4,
        head_lr=1e-2,
        epochs=1,
        batch_size=16,
        device="cpu",
        progress=False,
    )
    assert folder == tmp_path / "tuned"
    assert (folder / "model.safetensors").is_file() and (folder / "modules.json").is_file()
    assert head.input_dim == 384 and head.hidden_sizes == (8,)
    tuned = Encoder(folder, max_tokens=base.effective_max_tokens, device="cpu")
    # The weights moved, so the vectors and the identity differ from the base encoder's.
    assert tuned.identity != base.identity
    before, after = base.encode(FINE_TUNE_TEXTS), tuned.encode(FINE_TUNE_TEXTS)
    assert after.shape == (32, 384)
    assert np.abs(after - before).max() > 1e-4
    p = head.predict_proba(after)
    # One epoch of two steps is enough to start separating the planted classes.
    assert p[:16].mean() > p[16:].mean()


def test_fine_tune_encoder_checks_its_inputs(tmp_path: Path) -> None:
    base = Encoder("default")
    with pytest.raises(TrainingError, match="at least 2"):
        fine_tune_encoder(["one"], np.array([1.0]), encoder=base, output_dir=tmp_path / "a")
    with pytest.raises(TrainingError, match="together"):
        fine_tune_encoder(
            FINE_TUNE_TEXTS,
            FINE_TUNE_LABELS,
            encoder=base,
            output_dir=tmp_path / "b",
            val_texts=FINE_TUNE_TEXTS,
        )
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(TrainingError, match="not an empty folder"):
        fine_tune_encoder(
            FINE_TUNE_TEXTS, FINE_TUNE_LABELS, encoder=base, output_dir=tmp_path / "full"
        )
