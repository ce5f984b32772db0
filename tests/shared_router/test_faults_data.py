"""Faults in data and artifacts: compressed or mis-encoded JSONL, duplicated ids, train/test
overlap, calibration tables that break their own invariants, symbolic links in a router folder.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared_router.cli.app import main
from shared_router.data import load_pair, model_names, read_jsonl
from shared_router.errors import ArtifactError, CalibrationError, DataError
from shared_router.model.artifacts import CALIBRATION_FILE, load_router_folder
from shared_router.model.calibration import CalibrationTable
from shared_router.routing.router import Router
from shared_router.routing.train_router import train_router

ROW = {"id": "1", "query": "What is 2 + 2?", "models": {"a": {"score": 1.0}, "b": {"score": 0.0}}}


def _line(row: dict[str, Any]) -> bytes:
    return (json.dumps(row) + "\n").encode("utf-8")


# --- readers: gzip and text that is not UTF-8 -------------------------------------------


def test_a_gzip_file_is_named_as_gzip_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(gzip.compress(_line(ROW) * 3))
    with pytest.raises(DataError, match="gzip") as caught:
        list(read_jsonl(path))
    assert str(caught.value).startswith(f"{path}:1: ")
    assert "decompress" in str(caught.value)
    assert (caught.value.path, caught.value.line) == (str(path), 1)


def test_latin1_text_names_the_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        _line(ROW) + _line({**ROW, "id": "2"}) + '{"id": "3", "query": "café"}\n'.encode("latin-1")
    )
    with pytest.raises(DataError, match="not UTF-8") as caught:
        list(read_jsonl(path))
    assert caught.value.line == 3 and str(caught.value).startswith(f"{path}:3: ")
    assert "0xe9" in str(caught.value) and "UTF-8" in str(caught.value)


def test_utf16_text_is_named(tmp_path: Path) -> None:
    path = tmp_path / "utf16.jsonl"
    path.write_bytes(json.dumps(ROW).encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16") as caught:
        list(read_jsonl(path))
    assert caught.value.line == 1


def test_line_numbers_count_every_line_ending_and_a_bom_is_skipped(tmp_path: Path) -> None:
    content = (
        b"\xef\xbb\xbf"  # a byte order mark
        + json.dumps(ROW).encode()
        + b"\r\n\n"
        + json.dumps(
            {**ROW, "id": "2", "query": "line\u2028separator"}, ensure_ascii=False
        ).encode()
        + b"\r"
        + json.dumps({**ROW, "id": "3"}).encode()
        + b"\r"
    )
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(content)
    assert [(n, row["id"]) for n, row in read_jsonl(path)] == [(1, "1"), (3, "2"), (4, "3")]
    path.write_bytes(content + b"\xff\n")
    with pytest.raises(DataError, match="not UTF-8") as caught:
        list(read_jsonl(path))
    assert caught.value.line == 5 and "column 1" in str(caught.value)


@pytest.mark.parametrize("reader", ["load_pair", "model_names"])
def test_the_loaders_report_the_same(reader: str, tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(gzip.compress(_line(ROW)))
    with pytest.raises(DataError, match=r"data\.jsonl\.gz:1: .*gzip"):
        if reader == "load_pair":
            load_pair(path, "a", "b")
        else:
            model_names(path)


@pytest.mark.parametrize("kind", ["gzip", "latin1"])
def test_the_cli_shows_one_error_line_with_file_and_line(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "data.jsonl"
    content = _line(ROW) * 2
    path.write_bytes(gzip.compress(content) if kind == "gzip" else content + b'{"q": "\xe9"}\n')
    with pytest.raises(SystemExit) as done:
        main(["train", str(path), "--small", "a", "--large", "b", "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"error: {path}:{1 if kind == 'gzip' else 3}: ")
    assert ("gzip" if kind == "gzip" else "not UTF-8") in err


# --- training: duplicated ids, train/test overlap ----------------------------------------


def _rows(n_train: int = 12, n_val: int = 6, n_test: int = 4) -> list[dict[str, Any]]:
    rows = []
    for i, split in enumerate(["train"] * n_train + ["val"] * n_val + ["test"] * n_test):
        easy = i % 2 == 0
        query = (
            f"What is {i} + {i}?" if easy else f"Prove theorem number {i} of algebraic topology."
        )
        models = {"a": {"score": 1.0 if easy else 0.0}, "b": {"score": 1.0}}
        rows.append({"id": f"q{i}", "query": query, "split": split, "models": models})
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _logistic() -> Router:
    return Router(head_type="logistic", l2=1.0, progress=False)


def test_training_refuses_duplicated_ids(tmp_path: Path) -> None:
    rows = _rows()
    rows[15]["id"] = rows[3]["id"]
    data = load_pair(_write(tmp_path / "d.jsonl", rows), "a", "b")
    with pytest.raises(DataError, match=r"id 'q3' on 2 rows"):
        train_router(data, router=_logistic())


def test_training_refuses_an_id_repeated_across_files(tmp_path: Path) -> None:
    rows = _rows()
    first = _write(tmp_path / "one.jsonl", rows)
    second = _write(tmp_path / "two.jsonl", rows[:1])
    with pytest.raises(DataError, match="'q0'") as caught:
        train_router(load_pair([first, second], "a", "b"), router=_logistic())
    assert "one.jsonl" in str(caught.value) and "two.jsonl" in str(caught.value)


def test_the_cli_refuses_duplicated_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _rows()
    rows[1]["id"] = rows[0]["id"]
    path = _write(tmp_path / "d.jsonl", rows)
    with pytest.raises(SystemExit) as done:
        main(["train", str(path), "--small", "a", "--large", "b", "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "Traceback" not in err
    assert err.startswith("error: ") and "'q0'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_training_warns_when_held_out_queries_are_also_in_train(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = _rows()
    rows[18]["query"] = rows[0]["query"]  # a test query that is also a train query
    data = load_pair(_write(tmp_path / "d.jsonl", rows), "a", "b")
    with caplog.at_level(logging.WARNING, logger="shared_router.routing.train_router"):
        trained = train_router(data, router=_logistic(), n_bootstrap=10)
    assert trained.calibration_ is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "1 of 4 'test' queries are also in 'train'" in warnings[0]
    assert rows[0]["query"] in warnings[0]


# --- calibration tables that break their own invariants ----------------------------------


def _table() -> CalibrationTable:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.1, 0.9, 200)
    small = (rng.uniform(size=200) < scores).astype(float)
    return CalibrationTable.from_scores(scores, small, np.ones(200), n_bootstrap=20)


def _crafted(change: str) -> dict[str, Any]:
    d = _table().to_dict()
    if change == "last-threshold":  # below 1: large_share=1.0 would send a 0.97 small
        d["thresholds"][-1] = 0.95
    elif change == "inner-threshold":
        d["thresholds"][-2] = 0.99
    elif change == "drop-upper-rises":
        d["drop_upper"][5] = d["drop_upper"][4] + 0.5
    elif change == "drop-at-all-large":
        d["drop_upper"][-1] = d["quality_drop"][-1] = -0.2
    return d


def test_a_crafted_last_threshold_would_send_a_query_small_at_large_share_1() -> None:
    """What the check prevents: the table loaded, and large_share=1.0 sent 0.97 small."""
    d = _crafted("last-threshold")
    with pytest.raises(CalibrationError, match="last threshold must lie above every score"):
        CalibrationTable.from_dict(d)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("last-threshold", "above every score"),
        ("inner-threshold", "calibration score"),
        ("drop-upper-rises", "drop_upper must not increase"),
        ("drop-at-all-large", "must be 0 at the last"),
    ],
)
def test_a_table_that_breaks_its_invariants_is_refused_on_load(
    change: str, message: str, tmp_path: Path
) -> None:
    with pytest.raises(CalibrationError, match=message):
        CalibrationTable.from_dict(_crafted(change))
    folder = Router.load("default").save(tmp_path / "router")
    (folder / CALIBRATION_FILE).write_text(json.dumps(_crafted(change)), encoding="utf-8")
    with pytest.raises(ArtifactError, match=message) as caught:
        load_router_folder(folder)
    assert CALIBRATION_FILE in str(caught.value)
    with pytest.raises(ArtifactError, match=message):
        Router.load(folder)


def test_the_bundled_and_built_tables_keep_their_invariants() -> None:
    table = _table()
    assert CalibrationTable.from_dict(table.to_dict()).thresholds[-1] > 1.0
    bundled = Router.load("default").calibration_
    assert bundled is not None and bundled.threshold_for_large_share(1.0) > 1.0


# --- router folders: symbolic links out of the folder, temporary names -------------------


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.load("default")


@pytest.mark.parametrize(
    "name", ["config.json", "README.md", "calibration.json", "model.safetensors"]
)
def test_save_refuses_a_file_that_links_out_of_the_folder(
    name: str, router: Router, tmp_path: Path
) -> None:
    folder = router.save(tmp_path / "router")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me", encoding="utf-8")
    (folder / name).unlink()
    (folder / name).symlink_to(outside)
    with pytest.raises(ArtifactError, match=f"{name} is a symbolic link to .*outside the folder"):
        router.save(folder)
    assert outside.read_text(encoding="utf-8") == "keep me"
    assert (folder / name).is_symlink()


def test_save_refuses_an_encoder_folder_that_links_out(router: Router, tmp_path: Path) -> None:
    folder = router.save(tmp_path / "router")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "weights.bin").write_bytes(b"not yours")
    (folder / "encoder").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ArtifactError, match="encoder is a symbolic link"):
        router.save(folder)
    assert (outside / "weights.bin").read_bytes() == b"not yours"


def test_save_replaces_a_link_that_stays_inside_the_folder(router: Router, tmp_path: Path) -> None:
    folder = router.save(tmp_path / "router")
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to(folder / CALIBRATION_FILE)
    router.save(folder)
    assert not (folder / "README.md").is_symlink()
    Router.load(folder)


def test_save_writes_through_no_planted_temporary_name(router: Router, tmp_path: Path) -> None:
    """Temporary files get fresh random names; links at predictable names are not followed."""
    folder = tmp_path / "router"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    for name in ("config.json", "calibration.json", "README.md", "model.safetensors"):
        for planted in (f".{name}.tmp", f"{name}.tmp", f".{name}.tmp.0"):
            (folder / planted).symlink_to(victim)
    (folder / "config.json").write_text("{}", encoding="utf-8")  # an old router folder
    router.save(folder)
    assert victim.read_text(encoding="utf-8") == "keep me"
    Router.load(folder)


def test_concurrent_saves_to_one_folder_leave_a_loadable_router(
    router: Router, tmp_path: Path
) -> None:
    folder = router.save(tmp_path / "router")  # overwritten by four saves at once
    errors: list[BaseException] = []

    def save() -> None:
        try:
            router.save(folder)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=save) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert Router.load(folder).calibration_ is not None
