"""Tests of the JSONL contract and the pair loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared_router.data import PairData, load_pair, model_names, read_jsonl
from shared_router.errors import DataError, ModelNotInDataError


def _row(i: int, models: dict[str, Any], split: str | None = "train") -> dict[str, Any]:
    row: dict[str, Any] = {"id": f"q{i}", "query": f"question {i}", "models": models}
    if split is not None:
        row["split"] = split
    return row


def _write(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    text = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def pair_file(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "pairs.jsonl",
        [
            _row(0, {"s": {"score": 1.0}, "l": {"score": 0.0}, "x": {"score": 0.5}}),
            "",
            _row(1, {"s": {"score": 0.5, "scores": [1.0, 0.0]}, "l": {"score": 1.0}}, "val"),
            _row(2, {"s": {"score": 1.0}}, "test"),  # large missing: skipped
            _row(3, {"s": {"score": None}, "l": {"score": 1.0}}),  # null score: skipped
            _row(4, {"s": {"score": 0.25}, "l": {"score": 0.75, "scores": [0.5, 1.0]}}, None),
            _row(5, {"s": {"score": 0.0}, "l": {"score": 1.0}}, "test"),
        ],
    )


def test_read_jsonl_yields_line_numbers_and_skips_blank_lines(pair_file: Path) -> None:
    numbers = [number for number, _ in read_jsonl(pair_file)]
    assert numbers == [1, 3, 4, 5, 6, 7]


def test_model_names_is_the_sorted_union(pair_file: Path) -> None:
    assert model_names(pair_file) == ["l", "s", "x"]


def test_load_pair_skips_rows_missing_a_model_and_keeps_splits(pair_file: Path) -> None:
    data = load_pair(pair_file, "s", "l")
    assert data.ids == ("q0", "q1", "q4", "q5")
    assert data.queries == ("question 0", "question 1", "question 4", "question 5")
    assert data.splits == ("train", "val", None, "test")
    np.testing.assert_array_equal(data.small_quality, [1.0, 0.5, 0.25, 0.0])
    np.testing.assert_array_equal(data.large_quality, [0.0, 1.0, 0.75, 1.0])
    assert data.small_quality.dtype == np.float64
    np.testing.assert_array_equal(data.small_samples[1], [1.0, 0.0])
    np.testing.assert_array_equal(data.small_samples[0], [1.0])
    np.testing.assert_array_equal(data.large_samples[2], [0.5, 1.0])
    assert len(data) == 4 and data.skipped == 2
    assert data.source == str(pair_file)
    assert data.split("test").skipped == 0  # rows taken from rows: none left out there


def test_split_take_and_split_names(pair_file: Path) -> None:
    data = load_pair(pair_file, "s", "l")
    assert data.split_names == ("test", "train", "val")
    test = data.split("test")
    assert test.ids == ("q5",)
    np.testing.assert_array_equal(test.large_quality, [1.0])
    taken = data.take([2, 0])
    assert taken.ids == ("q4", "q0")
    np.testing.assert_array_equal(taken.small_quality, [0.25, 1.0])
    np.testing.assert_array_equal(taken.large_samples[0], [0.5, 1.0])
    masked = data.take(np.array([False, True, False, True]))
    assert masked.ids == ("q1", "q5")
    with pytest.raises(DataError, match="no row has split 'dev'"):
        data.split("dev")
    with pytest.raises(DataError, match="row indices"):
        data.take([7])


def test_several_paths_are_concatenated(pair_file: Path, tmp_path: Path) -> None:
    other = _write(tmp_path / "more.jsonl", [_row(9, {"s": {"score": 0.0}, "l": {"score": 0.0}})])
    data = load_pair([pair_file, other], "s", "l")
    assert data.ids[-1] == "q9"
    assert len(data) == 5


def test_score_field_selects_another_quality(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "judge.jsonl",
        [
            _row(0, {"s": {"score": 0.1, "judge": 0.25}, "l": {"score": 0.9, "judge": 0.75}}),
            _row(1, {"s": {"score": 0.1, "judge": None}, "l": {"score": 0.9, "judge": 0.5}}),
        ],
    )
    data = load_pair(path, "s", "l", score_field="judge")
    assert data.ids == ("q0",)
    np.testing.assert_array_equal(data.small_quality, [0.25])
    np.testing.assert_array_equal(data.small_samples[0], [0.25])


def test_malformed_line_names_file_and_line(pair_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    lines = pair_file.read_text(encoding="utf-8").splitlines()
    lines.insert(2, '{"id": "bad", "query": ')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_pair(path, "s", "l")
    assert info.value.path == str(path)
    assert info.value.line == 3
    assert f"{path}:3:" in str(info.value)
    assert "invalid JSON" in str(info.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"id": "a", "models": {"s": {"score": 1}, "l": {"score": 1}}}), "'query'"),
        (json.dumps(_row(0, {"s": {"score": 1.5}, "l": {"score": 1.0}})), r"\[0, 1\]"),
        (json.dumps(_row(0, {"s": {"score": "high"}, "l": {"score": 1.0}})), "number"),
        (json.dumps(_row(0, {"s": {"score": 1.0, "scores": []}, "l": {"score": 1.0}})), "scores"),
        (json.dumps({"id": "a", "query": "q", "models": [1]}), "'models'"),
    ],
)
def test_bad_rows_raise_data_error_with_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps(_row(0, {"s": {"score": 1.0}, "l": {"score": 0.0}}))
    path.write_text(f"{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        load_pair(path, "s", "l")
    assert info.value.line == 2


def test_missing_model_lists_the_names(pair_file: Path) -> None:
    with pytest.raises(ModelNotInDataError) as info:
        load_pair(pair_file, "s", "gpt-9")
    assert info.value.name == "gpt-9"
    assert info.value.available == ["l", "s", "x"]
    assert "'gpt-9'" in str(info.value)
    assert "l, s, x" in str(info.value)


def test_models_never_together_and_same_model_are_errors(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "apart.jsonl", [_row(0, {"s": {"score": 1}}), _row(1, {"l": {"score": 1}})]
    )
    with pytest.raises(DataError, match="no row has"):
        load_pair(path, "s", "l")
    with pytest.raises(DataError, match="two different models"):
        load_pair(path, "s", "s")


def test_an_empty_file_and_a_misspelt_score_field_say_so(tmp_path: Path, pair_file: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty.jsonl: the data holds no rows \(is the file"):
        load_pair(empty, "s", "l")
    with pytest.raises(
        DataError,
        match="no result of 's' or 'l' has a field 'scor'; their fields there are "
        "score, scores: pick one of those",
    ):
        load_pair(pair_file, "s", "l", score_field="scor")


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_pair(tmp_path / "nope.jsonl", "s", "l")


def test_data_hash_is_stable_and_tracks_content(pair_file: Path) -> None:
    data = load_pair(pair_file, "s", "l")
    again = load_pair(pair_file, "s", "l")
    assert data.data_hash == again.data_hash
    assert len(data.data_hash) == 64
    changed = PairData(
        small=data.small,
        large=data.large,
        source=data.source,
        ids=data.ids,
        queries=data.queries,
        splits=data.splits,
        small_quality=data.small_quality,
        large_quality=data.large_quality + np.array([0.0, 0.0, 0.0, -0.5]),
        small_samples=data.small_samples,
        large_samples=data.large_samples,
    )
    assert changed.data_hash != data.data_hash
    assert data.take([1, 0]).data_hash != data.take([0, 1]).data_hash


def test_pair_data_rejects_unequal_lengths() -> None:
    with pytest.raises(DataError, match="one entry per id"):
        PairData(
            small="s",
            large="l",
            source="memory",
            ids=("a", "b"),
            queries=("x", "y"),
            splits=(None, None),
            small_quality=np.array([1.0]),
            large_quality=np.array([1.0, 0.0]),
            small_samples=(np.array([1.0]), np.array([0.0])),
            large_samples=(np.array([1.0]), np.array([0.0])),
        )


def test_real_mmlu_pro_pair(shared_data: Path) -> None:
    path = shared_data / "mmlu_pro" / "mmlu_pro_scores.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    data = load_pair(path, "Meta-Llama-3.1-8B-Instruct", "Meta-Llama-3.1-70B-Instruct")
    assert len(data) > 10_000
    assert set(np.unique(data.small_quality)) <= {0.0, 1.0}
    assert data.small_quality.mean() < data.large_quality.mean()
    assert data.split_names == ("test", "train", "val")
    sizes = [len(data.split(name)) for name in data.split_names]
    assert sum(sizes) == len(data)
    assert all(len(samples) == 1 for samples in data.small_samples)
    with pytest.raises(ModelNotInDataError, match="Meta-Llama-3.1-8B-Instruct"):
        load_pair(path, "Meta-Llama-3.1-8B-Instruct", "no-such-model")
