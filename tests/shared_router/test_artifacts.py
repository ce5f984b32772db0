"""The router folder format: round trip and rejection of broken folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from shared_router.errors import ArtifactError
from shared_router.model.artifacts import (
    CALIBRATION_FILE,
    CARD_FILE,
    CONFIG_FILE,
    ENCODER_DIR,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    load_router_folder,
    save_router_folder,
)
from shared_router.model.calibration import CalibrationTable
from shared_router.model.head import MLPHead


def _config(hidden: list[int] | None = None) -> dict[str, Any]:
    return {
        "name": "unit-router",
        "encoder": {"name": "all-MiniLM-L6-v2", "max_tokens": 256, "dim": 6},
        "head": {"type": "mlp", "input_dim": 6, "hidden_sizes": [4] if hidden is None else hidden},
        "label_type": "trans",
        "t_star": 0.12,
        "pair": {"small": "llama-7b", "large": "gpt-4"},
        "quality_metric": "score",
        "training_data_hash": "ab" * 32,
        "default_knobs": {"max_quality_drop": 0.02, "large_share": None, "threshold": None},
        "metrics": {"val": {"gap_recovered": 0.4321, "n": 50}},
    }


def _table() -> CalibrationTable:
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=40)
    return CalibrationTable.from_scores(
        scores, (scores > 0.5).astype(float), np.ones(40), n_bootstrap=50
    )


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save_router_folder(
        tmp_path / "router", config=_config(), head=MLPHead(6, (4,), seed=1), calibration=_table()
    )


def test_round_trip(saved: Path) -> None:
    assert sorted(p.name for p in saved.iterdir()) == sorted(
        [CONFIG_FILE, WEIGHTS_FILE, CALIBRATION_FILE, CARD_FILE]
    )
    loaded = load_router_folder(saved)
    assert loaded.config["format_version"] == FORMAT_VERSION == 1
    assert isinstance(loaded.config["package_version"], str)
    for key, value in _config().items():
        assert loaded.config[key] == value
    X = np.random.default_rng(1).normal(size=(5, 6))
    np.testing.assert_array_equal(
        loaded.head.predict_proba(X), MLPHead(6, (4,), seed=1).predict_proba(X)
    )
    assert loaded.calibration is not None
    assert loaded.calibration.to_dict() == _table().to_dict()
    assert loaded.encoder_path is None


def test_model_card_shows_the_pair_and_metrics(saved: Path) -> None:
    card = (saved / CARD_FILE).read_text(encoding="utf-8")
    assert "# unit-router" in card
    assert "| small model | llama-7b |" in card and "| large model | gpt-4 |" in card
    assert "| val.gap_recovered | 0.4321 |" in card
    assert "trans (t* = 0.12)" in card
    assert "max_quality_drop=0.02" in card


def test_model_card_tabulates_curve_metrics(tmp_path: Path) -> None:
    curve = {
        "name": "router",
        "gap_recovered": 0.25,
        "apgr": 0.61,
        "cost_advantage_at_drop": {"0.01": 0.125, "0.05": 0.5},
    }
    metrics = {"test": {"pair-a": {"router": curve, "n": 90}}}
    folder = save_router_folder(
        tmp_path / "r",
        config={**_config([]), "metrics": metrics},
        head=MLPHead(6, ()),
        calibration=None,
    )
    card = (folder / CARD_FILE).read_text(encoding="utf-8")
    assert "| test.pair-a | router | 0.250 | 0.610 | 0.125 | 0.500 |" in card
    assert "| test.pair-a.n | 90 |" in card


def test_model_card_shows_the_description(tmp_path: Path) -> None:
    about = "Trained on 8 pairs.\n\n- Known limit: not above random on mmlu_pro."
    folder = save_router_folder(
        tmp_path / "r",
        config={**_config([]), "description": about},
        head=MLPHead(6, ()),
        calibration=None,
    )
    card = (folder / CARD_FILE).read_text(encoding="utf-8")
    assert f"## About this router\n\n{about}\n" in card
    assert card.index("About this router") < card.index("## Metrics")
    assert load_router_folder(folder).config["description"] == about
    plain = (
        save_router_folder(
            tmp_path / "p", config=_config([]), head=MLPHead(6, ()), calibration=None
        )
        / CARD_FILE
    ).read_text(encoding="utf-8")
    assert "About this router" not in plain
    (folder / CONFIG_FILE).write_text(
        json.dumps({**json.loads((folder / CONFIG_FILE).read_text()), "description": 3})
    )
    with pytest.raises(ArtifactError, match="'description' must be a string or null"):
        load_router_folder(folder)


def test_uncalibrated_router_round_trips_with_null_calibration(tmp_path: Path) -> None:
    folder = save_router_folder(
        tmp_path / "r", config=_config([]), head=MLPHead(6, ()), calibration=None
    )
    assert json.loads((folder / CALIBRATION_FILE).read_text()) is None
    loaded = load_router_folder(folder)
    assert loaded.calibration is None and loaded.head.hidden_sizes == ()


@pytest.mark.parametrize("name", [CONFIG_FILE, WEIGHTS_FILE, CALIBRATION_FILE])
def test_missing_file_is_named(saved: Path, name: str) -> None:
    (saved / name).unlink()
    with pytest.raises(ArtifactError, match=rf"{name}: missing"):
        load_router_folder(saved)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no router folder"):
        load_router_folder(tmp_path / "nothing-here")


def _edit_config(folder: Path, **changes: Any) -> None:
    config = json.loads((folder / CONFIG_FILE).read_text())
    config.update(changes)
    (folder / CONFIG_FILE).write_text(json.dumps(config))


@pytest.mark.parametrize("version", [2, 0])
def test_unknown_format_version(saved: Path, version: int) -> None:
    _edit_config(saved, format_version=version)
    with pytest.raises(ArtifactError, match=rf"config.json: unknown format version {version}"):
        load_router_folder(saved)


def test_format_version_must_be_an_integer(saved: Path) -> None:
    _edit_config(saved, format_version="1")
    with pytest.raises(ArtifactError, match="'format_version' must be an integer"):
        load_router_folder(saved)


def test_shape_mismatch_between_config_and_weights(saved: Path) -> None:
    # The config says a 4-unit hidden layer; the weights have 5 units.
    save_file(MLPHead(6, (5,)).state_dict(), str(saved / WEIGHTS_FILE))
    with pytest.raises(ArtifactError, match=r"model.safetensors: shape mismatch: layers.0.weight"):
        load_router_folder(saved)


def test_layer_count_mismatch_between_config_and_weights(saved: Path) -> None:
    save_file(MLPHead(6, (4, 3)).state_dict(), str(saved / WEIGHTS_FILE))
    with pytest.raises(ArtifactError, match=r"model.safetensors: weights do not match"):
        load_router_folder(saved)


def test_head_and_encoder_dims_must_agree(saved: Path) -> None:
    _edit_config(saved, encoder={"name": "x", "max_tokens": 256, "dim": 384})
    with pytest.raises(ArtifactError, match=r"'head.input_dim' \(6\) differs"):
        load_router_folder(saved)


@pytest.mark.parametrize("name", [CONFIG_FILE, CALIBRATION_FILE])
def test_bad_json_is_named(saved: Path, name: str) -> None:
    (saved / name).write_text('{"name": "unit-router", ')
    with pytest.raises(ArtifactError, match=rf"{name}: not valid JSON \(line 1"):
        load_router_folder(saved)


def test_bad_calibration_content(saved: Path) -> None:
    (saved / CALIBRATION_FILE).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ArtifactError, match="calibration.json: invalid calibration table"):
        load_router_folder(saved)


def test_corrupt_weights(saved: Path) -> None:
    (saved / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ArtifactError, match="model.safetensors: not a readable safetensors"):
        load_router_folder(saved)


def test_invalid_config_fields_are_listed(saved: Path) -> None:
    _edit_config(saved, name="", label_type="fuzzy", pair={"small": 1})
    with pytest.raises(ArtifactError) as info:
        load_router_folder(saved)
    message = str(info.value)
    assert "'name' must be a non-empty string" in message
    assert "'label_type'" in message and "'pair'" in message


def test_config_must_be_an_object(saved: Path) -> None:
    (saved / CONFIG_FILE).write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="expected a JSON object"):
        load_router_folder(saved)


def test_save_checks_config_against_head(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="shape mismatch"):
        save_router_folder(
            tmp_path / "r", config=_config([4]), head=MLPHead(6, (5,)), calibration=None
        )
    assert not (tmp_path / "r").exists()


def test_save_refuses_a_non_router_folder(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="not a router folder"):
        save_router_folder(
            tmp_path / "docs", config=_config(), head=MLPHead(6, (4,)), calibration=None
        )
    assert (tmp_path / "docs" / "notes.txt").read_text() == "keep me"


def test_save_overwrites_a_router_folder(saved: Path) -> None:
    config = _config()
    config["name"] = "second"
    save_router_folder(saved, config=config, head=MLPHead(6, (4,), seed=9), calibration=None)
    loaded = load_router_folder(saved)
    assert loaded.config["name"] == "second" and loaded.calibration is None


def test_fine_tuned_encoder_is_kept_in_a_subfolder(tmp_path: Path) -> None:
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    (tuned / "modules.json").write_text("[]")
    folder = save_router_folder(
        tmp_path / "r",
        config=_config(),
        head=MLPHead(6, (4,)),
        calibration=None,
        encoder_dir=tuned,
    )
    assert (folder / ENCODER_DIR / "modules.json").read_text() == "[]"
    loaded = load_router_folder(folder)
    assert loaded.config["encoder"]["path"] == ENCODER_DIR
    assert loaded.encoder_path == (folder / ENCODER_DIR).resolve()
    # Saving again from the folder's own encoder leaves it in place.
    save_router_folder(
        folder,
        config=loaded.config,
        head=loaded.head,
        calibration=None,
        encoder_dir=loaded.encoder_path,
    )
    assert (folder / ENCODER_DIR / "modules.json").is_file()


@pytest.mark.parametrize("path", ["../elsewhere", "missing-subfolder"])
def test_encoder_path_must_be_an_existing_subfolder(saved: Path, path: str) -> None:
    (saved.parent / "elsewhere").mkdir()
    _edit_config(saved, encoder={"name": "x", "max_tokens": 256, "dim": 6, "path": path})
    with pytest.raises(ArtifactError, match="encoder.path"):
        load_router_folder(saved)


@pytest.mark.parametrize(
    ("training", "problem"),
    [
        ({"head_type": "forest"}, "'training.head_type'"),
        ({"l2": -1.0}, "'training.l2'"),
        ({"l2": [0.1, "big"]}, "'training.l2'"),
        ({"l2": []}, "'training.l2'"),
        ([1, 2], "'training' must be an object"),
    ],
)
def test_invalid_training_settings_are_rejected(
    saved: Path, training: object, problem: str
) -> None:
    _edit_config(saved, training=training)
    with pytest.raises(ArtifactError, match=problem):
        load_router_folder(saved)


def test_logistic_training_settings_load(saved: Path) -> None:
    _edit_config(saved, training={"head_type": "logistic", "l2": [0.001, 0.01], "l2_chosen": 0.01})
    assert load_router_folder(saved).config["training"]["head_type"] == "logistic"
